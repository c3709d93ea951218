package milter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/service/servicetest"
	"github.com/postern-mail/postern/internal/testbench"
)

// TestPostfix runs postern's milter behind a real Postfix (smtpd_milters, milter_protocol
// 6, relaying to smtp-sink) against the real Samba AD: one DC for every scenario.
func TestPostfix(t *testing.T) {
	samba := startCorpSamba(t)
	t.Run("corpus", func(t *testing.T) { testCorpus(t, samba) })
	t.Run("dkim after postern", func(t *testing.T) { testDKIM(t, samba) })
	t.Run("journal with bcc", func(t *testing.T) { testJournalBcc(t, samba) })
	t.Run("journal store down", func(t *testing.T) { testStoreDown(t, samba) })
}

// startCorpSamba starts the DC with the seeded company, plus a mobile number and a title
// with markup for erin, so the signature shows dropped lines and escaping from real AD.
func startCorpSamba(t *testing.T) *testbench.Samba {
	t.Helper()
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	s.LDIF(t, fmt.Sprintf(`
		dn: CN=Erin Engel,OU=Staff,%s
		changetype: modify
		replace: title
		title: Head of Sales & <Partners>
		-
		add: mobile
		mobile: +49 170 5550100
		-
		add: department
		department: Sales
		-
	`, s.BaseDN))
	return s
}

// milterBench is one postern milter (in this process) and one Postfix that uses it.
type milterBench struct {
	dir string
	cfg *config.Config
	d   *Daemon
	pf  *testbench.Postfix
}

// benchOptions shape a milterBench.
type benchOptions struct {
	yaml    string              // extra top-level YAML (journal, redis, …); the milter section is built here
	milter  string              // extra YAML lines inside the milter section
	onError string              // milter.journal.on_store_error; default tempfail
	milters func(string) string // smtpd_milters from postern's address; default just postern
	mainCF  map[string]string
}

func startMilterBench(t *testing.T, s *testbench.Samba, o benchOptions) *milterBench {
	t.Helper()
	dir := testbench.Dir(t)
	for _, f := range []string{"disclaimer.txt", "disclaimer.html", "other-disclaimer.txt", "other-disclaimer.html",
		"signature.txt.tmpl", "signature.html.tmpl"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "marker.key"), []byte("integration-marker-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	onError := o.onError
	if onError == "" {
		onError = "tempfail"
	}
	extra := fmt.Sprintf(`%[3]s
milter:
  listen: inet:%[2]s
  marker_key_file: %[1]s/marker.key
  disclaimer:
    html_file: %[1]s/disclaimer.html
    text_file: %[1]s/disclaimer.txt
    domains:
      other.example.test: {html_file: %[1]s/other-disclaimer.html, text_file: %[1]s/other-disclaimer.txt}
  signature: {html_template_file: %[1]s/signature.html.tmpl, text_template_file: %[1]s/signature.txt.tmpl}
  journal: {enabled: true, on_store_error: %[5]s}
  max_body_size: 50MB
%[4]s`, dir, addr, o.yaml, indent(o.milter, "  "), onError)
	y := testbench.CorpConfig(s, filepath.Join(dir, "state"), extra)
	deps := servicetest.Deps(t, dir, y)
	if !deps.Directory.Ready() { // every scenario needs the directory: fail here, not at each message
		t.Fatal("the first directory sync failed (see the log above)")
	}
	d := servicetest.Start(t, deps, newDaemon)
	milters := "inet:" + addr
	if o.milters != nil {
		milters = o.milters(addr)
	}
	main := map[string]string{
		"smtpd_milters":         milters,
		"milter_protocol":       "6",
		"milter_default_action": "tempfail",
		"message_size_limit":    "104857600",
	}
	for k, v := range o.mainCF {
		main[k] = v
	}
	pf := testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: main})
	return &milterBench{dir: dir, cfg: deps.Config, d: d, pf: pf}
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}

// send submits a message as alice (XCLIENT LOGIN, so it is outbound) and fails the test
// unless Postfix queues it.
func (b *milterBench) send(t *testing.T, to []string, data []byte) {
	t.Helper()
	code, text, err := testbench.SendMail(b.pf.SMTPAddr, testbench.Mail{From: "alice@corp.example.test", To: to,
		XClientLogin: "alice", Data: data})
	if err != nil || code != 250 {
		t.Fatalf("send: %d %s %v", code, text, err)
	}
}

// journalEntry reads the entry a delivered message names.
func (b *milterBench) journalEntry(t *testing.T, raw []byte) *journal.Entry {
	t.Helper()
	id := headerOf(raw, journal.Header)
	if !journal.ValidID(id) {
		t.Fatalf("delivered message has %s %q", journal.Header, id)
	}
	st, err := journal.Open(b.cfg.Journal, b.cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// headerOf returns the first value of a header field in a raw message (unfolded).
func headerOf(raw []byte, name string) string {
	hdr, _, _ := strings.Cut(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\n")
	var val string
	found := false
	for _, line := range strings.Split(hdr, "\n") {
		if found && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			val += " " + strings.TrimSpace(line)
			continue
		}
		if found {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			found, val = true, strings.TrimSpace(v)
		}
	}
	return val
}

func testJournalBcc(t *testing.T, s *testbench.Samba) {
	b := startMilterBench(t, s, benchOptions{})
	msg := "From: Alice <alice@corp.example.test>\nTo: to@ext.example\nCc: cc@ext.example\n" +
		"Subject: journal\nMessage-ID: <journal-bcc@corp.example.test>\n\nHello.\n"
	rcpts := []string{"to@ext.example", "cc@ext.example", "hidden.bcc@ext.example"}
	b.send(t, rcpts, []byte(msg))
	got := b.pf.WaitSinkMessages(t, 1, 30*time.Second)
	e := b.journalEntry(t, got[0].Raw)
	if strings.Join(e.Recipients, " ") != strings.Join(rcpts, " ") {
		t.Errorf("journal recipients %v, want %v", e.Recipients, rcpts)
	}
	if e.Sender != "alice@corp.example.test" || e.Login != "alice" || e.Direction != "outbound" ||
		e.MessageID != "<journal-bcc@corp.example.test>" || e.QueueID == "" || e.ClientAddr != "127.0.0.1" || e.Helo == "" {
		t.Errorf("journal entry %+v", e)
	}
	for _, m := range got {
		if strings.Contains(string(m.Raw), "hidden.bcc") {
			t.Errorf("a delivered copy names the Bcc recipient:\n%s", m.Raw)
		}
	}
}

func testStoreDown(t *testing.T, s *testbench.Samba) {
	t.Run("redis stopped", func(t *testing.T) {
		r := testbench.StartRedis(t)
		b := startMilterBench(t, s, benchOptions{yaml: fmt.Sprintf("redis: {addrs: [%s]}\njournal: {store: redis, timeout: 2s}", r.Addr)})
		msg := []byte("From: alice@corp.example.test\nSubject: redis\n\nhi\n")
		b.send(t, []string{"x@ext.example"}, msg)
		r.Stop()
		code, text, err := testbench.SendMail(b.pf.SMTPAddr, testbench.Mail{From: "alice@corp.example.test",
			To: []string{"x@ext.example"}, XClientLogin: "alice", Data: msg})
		if err != nil || code/100 != 4 {
			t.Errorf("with Redis stopped: %d %s %v; want 4xx", code, text, err)
		}
	})
	t.Run("file store unwritable", func(t *testing.T) {
		b := startMilterBench(t, s, benchOptions{})
		breakDir(t, b.cfg.Journal.Path)
		code, text, err := testbench.SendMail(b.pf.SMTPAddr, testbench.Mail{From: "alice@corp.example.test",
			To: []string{"x@ext.example"}, XClientLogin: "alice", Data: []byte("Subject: file\n\nhi\n")})
		if err != nil || code/100 != 4 {
			t.Errorf("with the journal folder gone: %d %s %v; want 4xx", code, text, err)
		}
	})
	t.Run("accept configured", func(t *testing.T) {
		r := testbench.StartRedis(t)
		b := startMilterBench(t, s, benchOptions{yaml: fmt.Sprintf("redis: {addrs: [%s]}\njournal: {store: redis, timeout: 2s}", r.Addr),
			onError: "accept"})
		r.Stop()
		b.send(t, []string{"x@ext.example"}, []byte("From: alice@corp.example.test\nSubject: accept\n\nhi\n"))
		got := b.pf.WaitSinkMessages(t, 1, 30*time.Second)
		if id := headerOf(got[0].Raw, journal.Header); id != "" {
			t.Errorf("accepted without a journal entry, yet it carries %s: %s", journal.Header, id)
		}
	})
}
