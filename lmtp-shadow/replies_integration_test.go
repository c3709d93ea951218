package lmtpshadow

import (
	"bytes"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/testbench"
)

// TestOneReplyPerRecipientInOrder: one transaction carries copies for three shadow
// mailboxes, and each gets its own reply, in the order of the recipients (RFC 2033 4.2),
// as Postfix's log shows them: shadow@corp.example.test is archived (250), the
// non-existent shadow@other.example.test and the over-quota full@corp.example.test are
// deferred (4xx, never 5xx), each with its own reason.
func TestOneReplyPerRecipientInOrder(t *testing.T) {
	b := startBench(t)
	b.cyrus.CreateMailbox(t, "user/full@corp.example.test")
	b.cyrus.AdminCommand(t, `SETQUOTA "user/full@corp.example.test" (STORAGE 1)`) // 1 KiB
	data := []byte("From: alice@corp.example.test\r\nTo: bob@corp.example.test\r\nSubject: the figures, in full\r\nMessage-ID: <in-full@corp.example.test>\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 40)) // 2.6 KB
	// Cyrus's LMTP takes a message into a mailbox not yet over quota (lmtp_strict_quota
	// off), so this one takes full@ over it.
	if r, err := testbench.DeliverLMTP(b.cyrus.LMTPAddr, testbench.Mail{From: "alice@corp.example.test", To: []string{"full@corp.example.test"}, Data: data}); err != nil || r[0].Code != 250 {
		t.Fatalf("filling full@corp.example.test: %v %v", r, err)
	}

	archived := func(r testbench.Reply) bool { return r.Code == 250 }
	unknown := func(r testbench.Reply) bool {
		return r.Code == 451 && strings.Contains(r.Text, "archive store refused")
	}
	overQuota := func(r testbench.Reply) bool { return r.Code/100 == 4 && strings.Contains(r.Text, "4.2.2") }
	for _, tc := range []struct {
		to   []string
		want []func(testbench.Reply) bool
	}{
		{[]string{"shadow@other.example.test", "shadow@corp.example.test", "full@corp.example.test"}, []func(testbench.Reply) bool{unknown, archived, overQuota}},
		{[]string{"full@corp.example.test", "shadow@corp.example.test", "shadow@other.example.test"}, []func(testbench.Reply) bool{overQuota, archived, unknown}},
	} {
		replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "alice@corp.example.test", To: tc.to, Data: data})
		if err != nil || len(replies) != len(tc.to) {
			t.Fatalf("LMTP to %v: %v %v", tc.to, replies, err)
		}
		for i, ok := range tc.want {
			if !ok(replies[i]) {
				t.Errorf("to %v: reply %d (%s) is %s, which is not its own", tc.to, i+1, tc.to[i], replies[i])
			}
		}
	}
	month := "INBOX/Unjournaled/" + time.Now().UTC().Format("2006/01")
	if got := b.cyrus.Messages(t, "shadow@corp.example.test", month); len(got) != 2 {
		t.Errorf("shadow@corp.example.test's %s holds %d copies, want 2: one per transaction", month, len(got))
	}
	if got := b.cyrus.Messages(t, "full@corp.example.test", month); len(got) != 0 {
		t.Errorf("full@corp.example.test's %s holds %d copies, want none (over quota)", month, len(got))
	}
	for result, want := range map[string]float64{"archived": 2, "deferred": 2, "rejected": 2} {
		if n := copiesTotal(t, b.metrics, "unknown", result); n != want {
			t.Errorf(`postern_shadow_copies_total{direction="unknown",result=%q} = %v, want %v`, result, n, want)
		}
	}
}

// TestArchiveHeadersAreASCII: journalled values that are not printable ASCII (an SMTPUTF8
// sender with an IDN domain, a UTF-8 login with control characters and CR LF, an IDN
// client name, a HELO with a DEL, and an address that looks like an encoded word) reach
// the archive as RFC 2047 encoded words: every header line of the stored copy is
// printable 7-bit ASCII, no value starts a header of its own, and each decodes back to
// what the journal holds.
func TestArchiveHeadersAreASCII(t *testing.T) {
	b := startBench(t)
	long := "übermäßig.lange.adresse.mit.umlauten.äöü@sehr-lange-domäne-mit-umlauten.example"
	e := &journal.Entry{ID: journal.NewID(), Time: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC), QueueID: "4F2A1B",
		ClientAddr: "192.0.2.7", ClientName: "mail.bücher.example", Helo: "laptop\x7f",
		Login: "Jörg Müller\x01\r\nX-Injected: yes", Sender: "jörg@bücher.example", Direction: "outbound", MessageID: "<q3@corp.example.test>",
		Recipients: []string{"bob@corp.example.test", "ærlig@例え.jp", long, "=?utf-8?q?admin?=@corp.example.test"}}
	raw := b.archiveOne(t, e)
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header:\n%s", raw)
	}
	for i, line := range strings.Split(string(head), "\r\n") {
		for _, c := range []byte(line) {
			if (c < 0x20 && c != '\t') || c >= 0x7f {
				t.Errorf("header line %d has byte %#02x: %q", i+1, c, line)
				break
			}
		}
		if len(line) > 78 && strings.HasPrefix(strings.ToLower(line), "x-postern-") {
			t.Errorf("header line %d is %d characters long: %q", i+1, len(line), line)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Header["X-Injected"]; ok {
		t.Errorf("the HELO started a header of its own: X-Injected: %q", v)
	}
	decode := func(name string) []string {
		var out []string
		for _, v := range m.Header[name] {
			d, err := new(mime.WordDecoder).DecodeHeader(v)
			if err != nil {
				t.Errorf("%s: %q does not decode: %v", name, v, err)
			}
			out = append(out, d)
		}
		return out
	}
	var to []string
	for _, r := range e.Recipients {
		to = append(to, "<"+r+">")
	}
	for name, want := range map[string][]string{
		"X-Postern-Envelope-From": {"<" + e.Sender + ">"},
		"X-Postern-Envelope-To":   to,
		"X-Postern-Sasl-Login":    {e.Login},
		"X-Postern-Client":        {e.ClientName + " [" + e.ClientAddr + "]"},
		"X-Postern-Helo":          {e.Helo},
		"X-Postern-Queue-Id":      {e.QueueID},
	} {
		if got := decode(name); !slices.Equal(got, want) {
			t.Errorf("%s decodes to %q, want %q (as stored: %q)", name, got, want, m.Header[name])
		}
	}
	if !bytes.HasSuffix(raw, message(e.ID)) {
		t.Errorf("the original message is not intact after the archive headers:\n%s", raw)
	}
}
