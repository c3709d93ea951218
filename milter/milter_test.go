package milter

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gm "github.com/emersion/go-milter"

	"github.com/postern-mail/postern/internal/journal"
)

const (
	disclaimerLine = "Corp Example GmbH, Berlin. This message is confidential"
	otherLine      = "Other Example AG. Diese Nachricht ist vertraulich"
)

// TestMessages passes one message per scenario through a milter session and checks what
// was inserted, the direction journalled and the reply.
func TestMessages(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	tests := []struct {
		name       string
		mail       mail
		direction  Direction
		disclaimer string // a line of the expected disclaimer; "" none
		signature  string // a line of the expected signature; "" none
	}{
		{"authenticated to outside gets disclaimer and signature",
			mail{client: "192.0.2.7", login: "alice", from: "alice@corp.example.test", to: []string{"x@ext.example"}},
			Outbound, disclaimerLine, "Alice Anderson"},
		{"internal network and internal sender to outside is outbound",
			mail{client: "10.1.2.3", from: "bob@corp.example.test", to: []string{"bob@corp.example.test", "x@ext.example"}},
			Outbound, disclaimerLine, "Bob Brown"},
		{"domain disclaimer for the sender's domain",
			mail{client: "10.1.2.3", login: "alice", from: "alice@other.example.test", to: []string{"x@ext.example"}},
			Outbound, otherLine, "Alice Anderson"},
		{"internal mail gets the signature only",
			mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test", to: []string{"bob@corp.example.test"}},
			Internal, "", "Alice Anderson"},
		{"a list with an external member makes it outbound",
			mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test", to: []string{"partners@corp.example.test"}},
			Outbound, disclaimerLine, "Alice Anderson"},
		{"from the trusted relay is inbound, whatever the sender says",
			mail{client: "10.9.9.9", from: "alice@corp.example.test", to: []string{"bob@corp.example.test"}},
			Inbound, "", ""},
		{"from the internet is inbound",
			mail{client: "198.51.100.1", from: "x@ext.example", to: []string{"bob@corp.example.test"}},
			Inbound, "", ""},
		{"internal network with an external sender is inbound",
			mail{client: "10.1.2.3", from: "x@ext.example", to: []string{"y@ext.example"}},
			Inbound, "", ""},
		{"local client with an internal sender is from inside",
			mail{client: "", from: "carol@corp.example.test", to: []string{"x@ext.example"}},
			Outbound, disclaimerLine, "Carol Clark"},
		{"null sender from inside is inbound (a bounce)",
			mail{client: "10.1.2.3", from: "", to: []string{"x@ext.example"}},
			Inbound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.insertions())
			s := h.session(tt.mail.client)
			tt.mail.body = "Hello,\nthis is the text.\n"
			r := h.send(s, tt.mail)
			if !r.accepted() {
				t.Fatalf("reply %c %d %s, want accepted", r.act.Code, r.act.SMTPCode, r.act.SMTPText)
			}
			id, ok := r.headerAdded(journal.Header)
			if !ok || !journal.ValidID(id) {
				t.Fatalf("journal header = %q, %v; want a journal id", id, ok)
			}
			e := h.journal(t, id)
			if Direction(e.Direction) != tt.direction {
				t.Errorf("direction = %s, want %s", e.Direction, tt.direction)
			}
			body, changed := r.body()
			ins := h.insertions()[before:]
			if tt.disclaimer == "" && tt.signature == "" {
				if changed || len(ins) > 0 {
					t.Fatalf("body changed (%d insertions), want untouched:\n%s", len(ins), body)
				}
				return
			}
			for _, want := range []string{tt.disclaimer, tt.signature} {
				if want != "" && !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if tt.disclaimer == "" && strings.Contains(body, "confidential") {
				t.Errorf("body has a disclaimer it should not:\n%s", body)
			}
			if _, ok := r.headerAdded(markerHeader); !ok {
				t.Errorf("no %s header on a stamped message", markerHeader)
			}
			if strings.Contains(body, "\r") {
				t.Errorf("body packets carry CR; Postfix wants LF line ends")
			}
		})
	}
}

// TestJournalEntry checks that the journal holds the whole envelope, Bcc included, and
// that the message carries nothing but the id (a forged journal header is removed).
func TestJournalEntry(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	s := h.session("10.1.2.3")
	r := h.send(s, mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test",
		to: []string{"to@ext.example", "cc@ext.example", "hidden@ext.example"}, queueID: "7F00112233",
		headers: [][2]string{{"From", "alice@corp.example.test"}, {"To", "to@ext.example"}, {"Cc", "cc@ext.example"},
			{"Message-ID", "<m1@corp.example.test>"}, {journal.Header, "FORGEDFORGEDFORGEDFORGED22"}},
		body: "hi\n"})
	id, _ := r.headerAdded(journal.Header)
	e := h.journal(t, id)
	want := journal.Entry{ID: id, QueueID: "7F00112233", ClientAddr: "10.1.2.3", ClientName: "client.example",
		Helo: "helo.example", Login: "alice", Sender: "alice@corp.example.test",
		Recipients: []string{"to@ext.example", "cc@ext.example", "hidden@ext.example"},
		Direction:  "outbound", MessageID: "<m1@corp.example.test>"}
	got := *e
	got.Time, got.Size = want.Time, 0
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("journal entry\n got %s\nwant %s", g, w)
	}
	if e.Size <= 0 || e.Time.IsZero() {
		t.Errorf("size %d, time %v: want both set", e.Size, e.Time)
	}
	deleted := false
	for _, m := range r.mods {
		if m.Code == gm.ActChangeHeader && m.HeaderName == journal.Header && m.HeaderIndex == 1 && m.HeaderValue == "" {
			deleted = true
		}
		if strings.Contains(m.HeaderValue, "hidden@") || strings.Contains(string(m.Body), "hidden@") {
			t.Errorf("a change names the Bcc recipient: %+v", m)
		}
	}
	if !deleted {
		t.Errorf("the forged %s header was not removed: %+v", journal.Header, r.mods)
	}
}

// TestSecondMessageKeepsConnection: go-milter keeps the session between messages of one
// connection, so the second message still knows the client and HELO.
func TestSecondMessageKeepsConnection(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	s := h.session("10.1.2.3")
	for i, qid := range []string{"1111111111", "2222222222", "3333333333"} {
		r := h.send(s, mail{client: "10.1.2.3", from: "x@ext.example", to: []string{"bob@corp.example.test"},
			queueID: qid, body: "hi\n"})
		id, _ := r.headerAdded(journal.Header)
		e := h.journal(t, id)
		if e.Helo != "helo.example" || e.ClientAddr != "10.1.2.3" || e.QueueID != qid {
			t.Errorf("message %d: helo %q, client %q, queue id %q", i, e.Helo, e.ClientAddr, e.QueueID)
		}
	}
}

// TestAlreadyStamped: the marker header bound to the Message-ID stops a second stamp; a
// marker copied onto another message does not.
func TestAlreadyStamped(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	key := h.d.rules.Load().markerKey
	mk := func(mid, marker string) mail {
		return mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test", to: []string{"x@ext.example"},
			headers: [][2]string{{"From", "alice@corp.example.test"}, {"Message-ID", mid}, {markerHeader, marker}},
			body:    "hi\n"}
	}
	t.Run("loop", func(t *testing.T) {
		r := h.send(h.session("10.1.2.3"), mk("<a@x>", markerValue(key, "<a@x>", "")))
		if _, changed := r.body(); changed {
			t.Error("a message with its own marker was stamped again")
		}
	})
	t.Run("copied marker", func(t *testing.T) {
		r := h.send(h.session("10.1.2.3"), mk("<b@x>", markerValue(key, "<a@x>", "")))
		if _, changed := r.body(); !changed {
			t.Error("a marker from another message stopped the stamp")
		}
		n := 0
		for _, m := range r.mods {
			if strings.EqualFold(m.HeaderName, markerHeader) {
				n++
			}
		}
		if n != 2 { // the stale one removed, the new one added
			t.Errorf("%d changes to %s, want 2: %+v", n, markerHeader, r.mods)
		}
	})
	t.Run("text marker", func(t *testing.T) {
		m := mk("<c@x>", "")
		m.headers = m.headers[:2]
		m.body = "Reply\n\n> " + disclaimerLine + " and meant for its addressees only.\n"
		r := h.send(h.session("10.1.2.3"), m)
		body, _ := r.body()
		if strings.Count(body, "confidential") != 1 {
			t.Errorf("disclaimer not exactly once:\n%s", body)
		}
	})
}

func TestJournalStoreDown(t *testing.T) {
	for _, tt := range []struct {
		onError  string
		accepted bool
	}{{"tempfail", false}, {"accept", true}} {
		t.Run(tt.onError, func(t *testing.T) {
			dir := t.TempDir()
			c := testConfig(t, dir, "")
			c.Milter.Journal.OnStoreError = tt.onError
			h := newHarness(t, c, dir, true)
			breakDir(t, c.Journal.Path)
			r := h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: "alice",
				from: "alice@corp.example.test", to: []string{"x@ext.example"}, body: "hi\n"})
			if r.accepted() != tt.accepted {
				t.Fatalf("reply %c %d %q, want accepted=%v", r.act.Code, r.act.SMTPCode, r.act.SMTPText, tt.accepted)
			}
			if !tt.accepted && (r.act.Code != gm.ActReplyCode || r.act.SMTPCode != 451 || len(r.mods) > 0) {
				t.Errorf("reply %c %d %q with %d changes, want a bare 451", r.act.Code, r.act.SMTPCode, r.act.SMTPText, len(r.mods))
			}
			if _, ok := r.headerAdded(journal.Header); ok {
				t.Error("journal header added without a journal entry")
			}
			if got := h.counter(h.d.metrics.journal.WithLabelValues("error")); got != 1 {
				t.Errorf("journal errors = %v, want 1", got)
			}
		})
	}
}

// breakDir replaces a folder with a file, so that nothing can be written below it even by
// root (who ignores permission bits).
func breakDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a folder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryUnavailable(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, false)
	r := h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test",
		to: []string{"x@ext.example"}, body: "hi\n"})
	if !r.accepted() {
		t.Fatalf("reply %c, want accepted", r.act.Code)
	}
	body, _ := r.body()
	if !strings.Contains(body, disclaimerLine) || strings.Contains(body, "Alice") {
		t.Errorf("want the disclaimer and no signature:\n%s", body)
	}
	if got := h.counter(h.d.metrics.dirUnavailable); got != 1 {
		t.Errorf("directory unavailable = %v, want 1", got)
	}
}

func TestPanicFailsOneMessage(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	calls := 0
	fake := h.d.insert
	h.d.insert = func(hdr []header, body io.Reader, ins insertion, opt insertOptions) (insertOutcome, error) {
		if calls++; calls == 1 {
			panic("boom")
		}
		return fake(hdr, body, ins, opt)
	}
	s := h.session("10.1.2.3")
	m := mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test", to: []string{"x@ext.example"}, body: "hi\n"}
	if r := h.send(s, m); r.act.Code != gm.ActReplyCode || r.act.SMTPCode != 451 {
		t.Fatalf("reply %c %d, want 451", r.act.Code, r.act.SMTPCode)
	}
	if r := h.send(s, m); !r.accepted() {
		t.Fatalf("second message on the same connection: reply %c, want accepted", r.act.Code)
	}
	if got := h.counter(h.d.metrics.panics); got != 1 {
		t.Errorf("panics = %v, want 1", got)
	}
}

func TestTooBig(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t, dir, "")
	c.Milter.MaxBodySize, c.Milter.SpillSize = 100<<10, 16<<10
	h := newHarness(t, c, dir, true)
	for _, tt := range []struct {
		size    int
		stamped bool
	}{{90 << 10, true}, {150 << 10, false}} {
		body := strings.Repeat(strings.Repeat("x", 99)+"\n", tt.size/100)
		r := h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test",
			to: []string{"x@ext.example"}, body: body})
		got, changed := r.body()
		if changed != tt.stamped {
			t.Errorf("%d bytes: stamped %v, want %v", tt.size, changed, tt.stamped)
		}
		if changed && !strings.HasPrefix(got, strings.ReplaceAll(body, "\r\n", "\n")) {
			t.Errorf("%d bytes: spooled body damaged", tt.size)
		}
	}
	if got := h.counter(h.d.metrics.stamps.WithLabelValues(stampDisclaimer, resultTooBig)); got != 1 {
		t.Errorf("too big = %v, want 1", got)
	}
}

func TestTrafficLog(t *testing.T) {
	for _, addresses := range []bool{false, true} {
		dir := t.TempDir()
		c := testConfig(t, dir, "")
		c.Milter.TrafficLog.Addresses = addresses
		h := newHarness(t, c, dir, true)
		h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test",
			to: []string{"bob@corp.example.test", "x@ext.example", "y@ext.example"}, body: "hi\n"})
		f, err := os.Open(filepath.Join(dir, "traffic.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		if !sc.Scan() {
			t.Fatal("traffic log is empty")
		}
		line := sc.Text()
		var l trafficLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if l.Direction != Outbound || l.SenderDomain != "corp.example.test" || l.InternalRecipients != 1 ||
			l.ExternalRecipients != 2 || l.Size <= 0 || l.Action != actionStamp {
			t.Errorf("traffic line %s", line)
		}
		if hasAddr := strings.Contains(line, "@"); hasAddr != addresses {
			t.Errorf("addresses: %v, line %s", addresses, line)
		}
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	h.send(h.session("198.51.100.1"), mail{client: "198.51.100.1", from: "x@ext.example",
		to: []string{"alice@corp.example.test", "bob@corp.example.test"}, body: "hello\n"})
	if got := h.counter(h.d.metrics.messages.WithLabelValues("inbound", actionAccept)); got != 1 {
		t.Errorf("inbound accepted messages = %v, want 1", got)
	}
	if got := h.counter(h.d.metrics.recipients.WithLabelValues("inbound", actionAccept)); got != 2 {
		t.Errorf("inbound recipients = %v, want 2", got)
	}
	if got := h.counter(h.d.metrics.bytes.WithLabelValues("inbound", actionAccept)); got < 7 {
		t.Errorf("inbound bytes = %v", got)
	}
	if got := h.counter(h.d.metrics.inFlight); got != 0 {
		t.Errorf("in flight = %v after the message", got)
	}
}

func TestShutdownRefusesNewMessages(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(t, dir, ""), dir, true)
	s := h.session("10.1.2.3")
	h.d.shutting.Store(true)
	if err := s.Macros(gm.CodeMail, "{auth_authen}", ""); err != nil {
		t.Fatal(err)
	}
	a, err := s.Mail("x@ext.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Code != gm.ActReplyCode || a.SMTPCode != 451 {
		t.Errorf("MAIL during shutdown: %c %d, want 451", a.Code, a.SMTPCode)
	}
	h.d.shutting.Store(false)
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t, dir, "")
	h := newHarness(t, c, dir, true)
	bad := *c
	bad.Milter.Signature.HTMLTemplateFile = filepath.Join(dir, "missing.tmpl")
	old := h.d.rules.Load()
	if err := h.d.Reload(&bad); err == nil {
		t.Fatal("reload with a missing template succeeded")
	}
	if h.d.rules.Load() != old {
		t.Fatal("a failed reload replaced the rules")
	}
	good := *c
	good.Milter.Disclaimer.Directions = []string{"inbound"}
	if err := h.d.Reload(&good); err != nil {
		t.Fatal(err)
	}
	r := h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: "alice", from: "alice@corp.example.test",
		to: []string{"x@ext.example"}, body: "hi\n"})
	if body, _ := r.body(); strings.Contains(body, "confidential") {
		t.Errorf("reloaded rules not used: outbound still got the disclaimer")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGroupsAndPlacement(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t, dir, "")
	c.Milter.Disclaimer.Groups = []string{"interns"} // AD compares group names case-insensitively
	c.Milter.Signature.Groups = []string{"Staff", "Interns"}
	c.Milter.Signature.Placement = "above_quote"
	h := newHarness(t, c, dir, true)
	tests := []struct {
		login                 string
		disclaimer, signature bool
	}{
		{"carol", true, true},  // Interns
		{"alice", false, true}, // Staff only
	}
	for _, tt := range tests {
		before := len(h.insertions())
		h.send(h.session("10.1.2.3"), mail{client: "10.1.2.3", login: tt.login, from: tt.login + "@corp.example.test",
			to: []string{"x@ext.example"}, body: "hi\n"})
		var disc, sig bool
		for _, ins := range h.insertions()[before:] {
			if strings.Contains(ins.text, "confidential") {
				disc = true
				if ins.aboveQuote || len(ins.markers) == 0 {
					t.Errorf("%s: disclaimer insertion %+v: want bottom, with markers", tt.login, ins)
				}
			} else {
				sig = true
				if !ins.aboveQuote || len(ins.markers) != 0 {
					t.Errorf("%s: signature insertion %+v: want above the quote, no markers", tt.login, ins)
				}
			}
		}
		if disc != tt.disclaimer || sig != tt.signature {
			t.Errorf("%s: disclaimer %v signature %v, want %v %v", tt.login, disc, sig, tt.disclaimer, tt.signature)
		}
	}
}
