package lmtpshadow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/testbench"
)

type bench struct {
	cyrus   *testbench.Cyrus
	journal journal.Store
	addr    string
}

// startBench starts Cyrus with the shadow mailbox, a file journal and lmtp-shadow.
func startBench(t testing.TB) *bench {
	t.Helper()
	c := testbench.StartCyrus(t)
	c.CreateMailbox(t, "user/shadow@corp.example.test")
	pw := filepath.Join(t.TempDir(), "cyrus.secret")
	os.WriteFile(pw, []byte(c.AdminPassword), 0o600)
	j, addr := startShadowDaemon(t, fmt.Sprintf("{kind: cyrus, lmtp: inet:%s, imap: inet:%s, admin_user: %s, admin_password_file: %s}",
		c.LMTPAddr, c.IMAPAddr, c.Admin, pw))
	return &bench{cyrus: c, journal: j, addr: addr}
}

const body = "From: Alice <alice@corp.example.test>\r\nTo: bob@corp.example.test\r\nSubject: quarterly figures\r\nMessage-ID: <q3@corp.example.test>\r\nDate: Sun, 22 Nov 2026 09:30:00 +0000\r\n%s\r\nThe figures, as promised.\r\n"

func message(journalID string) []byte {
	h := ""
	if journalID != "" {
		h = journal.Header + ": " + journalID + "\r\n"
	}
	return []byte(fmt.Sprintf(body, h))
}

func TestArchiveCarriesTheWholeEnvelope(t *testing.T) {
	b := startBench(t)
	at := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	e := &journal.Entry{ID: journal.NewID(), Time: at, QueueID: "4F2A1B", ClientAddr: "192.0.2.7", ClientName: "laptop.corp.example.test",
		Helo: "laptop", Login: "alice", Sender: "alice@corp.example.test", Direction: "outbound", MessageID: "<q3@corp.example.test>",
		Recipients: []string{"bob@corp.example.test", "x@partner.example", "erin@corp.example.test", "sales@corp.example.test"}}
	if err := b.journal.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "alice@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: message(e.ID)})
	if err != nil || len(replies) != 1 || replies[0].Code != 250 {
		t.Fatalf("LMTP: %v %v", replies, err)
	}
	msgs := b.cyrus.Messages(t, "shadow@corp.example.test", "INBOX/Outbound/2026/11")
	if len(msgs) != 1 {
		t.Fatalf("the Outbound/2026/11 folder holds %d messages, want 1", len(msgs))
	}
	raw := string(msgs[0].Raw)
	for _, want := range []string{
		"X-Postern-Archive: v=1; journal=ok; id=" + e.ID,
		"X-Postern-Envelope-From: <alice@corp.example.test>",
		"X-Postern-Envelope-To: <bob@corp.example.test>",
		"X-Postern-Envelope-To: <x@partner.example>",
		"X-Postern-Envelope-To: <erin@corp.example.test>", // the Bcc recipient
		"X-Postern-Expanded-To: <sales@corp.example.test>: bob@corp.example.test,\r\n erin@corp.example.test",
		"X-Postern-Direction: outbound",
		"X-Postern-Sasl-Login: alice",
		"X-Postern-Client: laptop.corp.example.test [192.0.2.7]",
		"X-Postern-Queue-Id: 4F2A1B",
		"X-Postern-Received-At: 2026-11-22T09:30:00Z",
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("the archive copy lacks %q:\n%s", want, raw)
		}
	}
	if !strings.HasSuffix(raw, string(message(e.ID))) {
		t.Errorf("the original message is not intact after the archive headers:\n%s", raw)
	}
	got, _ := b.journal.Get(context.Background(), e.ID)
	if got == nil || got.Archived.IsZero() {
		t.Error("the journal entry is not marked archived")
	}
}

func TestArchiveWithoutJournalEntryIsKept(t *testing.T) {
	b := startBench(t)
	for _, id := range []string{"", journal.NewID(), "../../etc/passwd"} {
		replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "x@partner.example", To: []string{"shadow@corp.example.test"}, Data: message(id)})
		if err != nil || replies[0].Code != 250 {
			t.Fatalf("id %q: %v %v", id, replies, err)
		}
	}
	now := time.Now().UTC()
	msgs := b.cyrus.Messages(t, "shadow@corp.example.test", "INBOX/Unjournaled/"+now.Format("2006/01"))
	if len(msgs) != 3 {
		t.Fatalf("Unjournaled holds %d messages, want 3 (never dropped)", len(msgs))
	}
	for _, m := range msgs {
		if !strings.Contains(string(m.Raw), "X-Postern-Archive: v=1; journal=missing") {
			t.Errorf("not marked journal=missing:\n%s", m.Raw)
		}
	}
}

func TestStoreDownDefersThenDelivers(t *testing.T) {
	b := startBench(t)
	// Prime the folder cache, so the outage hits the LMTP delivery itself.
	testbench.DeliverLMTP(b.addr, testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: message("")})
	b.cyrus.Stop()
	m := testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: []byte("Subject: during the outage\r\nMessage-ID: <outage@x>\r\n\r\nx\r\n")}
	replies, err := testbench.DeliverLMTP(b.addr, m)
	if err != nil || replies[0].Code/100 != 4 {
		t.Fatalf("Cyrus down: %v %v, want a 4xx so Postfix retries", replies, err)
	}
	b.cyrus.Start(t)
	replies, err = testbench.DeliverLMTP(b.addr, m)
	if err != nil || replies[0].Code != 250 {
		t.Fatalf("Cyrus back: %v %v", replies, err)
	}
	n := 0
	for _, msg := range b.cyrus.Messages(t, "shadow@corp.example.test", "INBOX/Unjournaled/"+time.Now().UTC().Format("2006/01")) {
		if msg.MessageID == "<outage@x>" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the deferred copy is archived %d times, want once", n)
	}
}

func TestUnknownShadowMailboxIsDeferredNotBounced(t *testing.T) {
	b := startBench(t)
	replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@other.example.test"}, Data: message("")})
	if err != nil || len(replies) != 1 || replies[0].Code/100 != 4 {
		t.Fatalf("a copy Cyrus refuses: %v %v, want 4xx (an archive copy never bounces)", replies, err)
	}
}
