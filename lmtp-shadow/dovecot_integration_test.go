package lmtpshadow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/service"
	"github.com/postern-mail/postern/internal/service/servicetest"
	"github.com/postern-mail/postern/internal/testbench"
)

// The same archive, with Dovecot as the store: lmtp-shadow delivers
// shadow+Outbound/2026/11@corp.example.test and Dovecot files it in that folder itself
// (lmtp_save_to_detail_mailbox, lda_mailbox_autocreate), so store.kind: dovecot needs no
// IMAP and no admin.

type dovecotBench struct {
	dovecot *testbench.Dovecot
	journal journal.Store // a second handle, as the milter's process has
	addr    string        // lmtp-shadow's LMTP
}

func startDovecotBench(t testing.TB) *dovecotBench {
	t.Helper()
	d := testbench.StartDovecot(t)
	j, addr := startShadowDaemon(t, "{kind: dovecot, lmtp: inet:"+d.LMTPAddr+"}")
	return &dovecotBench{dovecot: d, journal: j, addr: addr}
}

// startShadowDaemon runs lmtp-shadow in this process on a free port, with a file journal
// and the example directory, delivering into store (lmtp_shadow.store, as YAML). It
// returns a second handle on the journal and lmtp-shadow's address. extra lines go into
// the lmtp_shadow section.
func startShadowDaemon(t testing.TB, store string, extra ...string) (journal.Store, string) {
	t.Helper()
	d := runShadowDaemon(t, store, extra...)
	return d.journal, d.addr
}

// shadowDaemon is lmtp-shadow running in the test process.
type shadowDaemon struct {
	journal journal.Store // a second handle, as the milter's process has
	addr    string        // lmtp-shadow's LMTP
	daemon  service.Daemon
	metrics prometheus.Gatherer // its registry, as /metrics serves it
}

// runShadowDaemon is startShadowDaemon with the daemon and its metrics.
func runShadowDaemon(t testing.TB, store string, extra ...string) *shadowDaemon {
	t.Helper()
	dir := t.TempDir()
	example, _ := filepath.Abs("../examples/directory.yaml")
	addr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	yaml := fmt.Sprintf(`domains: [corp.example.test, other.example.test]
state_dir: %[1]s
directory: {backend: static, static: {file: %[2]s}}
journal: {store: file, path: %[1]s/journal}
lmtp_shadow:
  listen: inet:%[3]s
  store: %[4]s
  timeout: 10s
`, dir, example, addr, store)
	for _, line := range extra {
		yaml += "  " + line + "\n"
	}
	deps := servicetest.Deps(t, dir, yaml)
	d := servicetest.Start(t, deps, Build)
	j, err := journal.Open(deps.Config.Journal, deps.Config.Redis) // a second handle, as the milter has
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &shadowDaemon{journal: j, addr: addr, daemon: d, metrics: deps.Registry.(prometheus.Gatherer)}
}

// outboundEntry journals the envelope of the quarterly-figures message, Bcc included.
func outboundEntry(t testing.TB, j journal.Store) *journal.Entry {
	t.Helper()
	e := &journal.Entry{ID: journal.NewID(), Time: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC), QueueID: "4F2A1B",
		ClientAddr: "192.0.2.7", ClientName: "laptop.corp.example.test", Helo: "laptop", Login: "alice",
		Sender: "alice@corp.example.test", Direction: "outbound", MessageID: "<q3@corp.example.test>",
		Recipients: []string{"bob@corp.example.test", "x@partner.example", "erin@corp.example.test", "sales@corp.example.test"}}
	if err := j.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// checkEnvelope checks that raw is the archive copy of the message journalled as e.
func checkEnvelope(t testing.TB, raw string, e *journal.Entry) {
	t.Helper()
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
}

func TestDovecotArchiveCarriesTheWholeEnvelope(t *testing.T) {
	b := startDovecotBench(t)
	e := outboundEntry(t, b.journal)
	replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "alice@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: message(e.ID)})
	if err != nil || len(replies) != 1 || replies[0].Code != 250 {
		t.Fatalf("LMTP: %v %v", replies, err)
	}
	msgs := b.dovecot.Messages(t, "shadow@corp.example.test", "Outbound/2026/11")
	if len(msgs) != 1 {
		t.Fatalf("the Outbound/2026/11 folder holds %d messages, want 1", len(msgs))
	}
	raw := string(msgs[0].Raw)
	checkEnvelope(t, raw, e)
	// Dovecot puts its Return-Path, Delivered-To and Received above the archive headers.
	if !strings.HasSuffix(raw, string(message(e.ID))) {
		t.Errorf("the original message is not intact after the archive headers:\n%s", raw)
	}
	if got, _ := b.journal.Get(context.Background(), e.ID); got == nil || got.Archived.IsZero() {
		t.Error("the journal entry is not marked archived")
	}
}

func TestDovecotDownDefersThenDelivers(t *testing.T) {
	b := startDovecotBench(t)
	b.dovecot.Stop()
	m := testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: []byte("Subject: during the outage\r\nMessage-ID: <outage@x>\r\n\r\nx\r\n")}
	replies, err := testbench.DeliverLMTP(b.addr, m)
	if err != nil || replies[0].Code/100 != 4 {
		t.Fatalf("Dovecot down: %v %v, want a 4xx so Postfix retries", replies, err)
	}
	b.dovecot.Start(t)
	replies, err = testbench.DeliverLMTP(b.addr, m)
	if err != nil || replies[0].Code != 250 {
		t.Fatalf("Dovecot back: %v %v", replies, err)
	}
	n := 0
	for _, msg := range b.dovecot.Messages(t, "shadow@corp.example.test", "Unjournaled/"+time.Now().UTC().Format("2006/01")) {
		if msg.MessageID == "<outage@x>" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the deferred copy is archived %d times, want once", n)
	}
}

func TestDovecotUnknownShadowMailboxIsDeferredNotBounced(t *testing.T) {
	b := startDovecotBench(t)
	replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@other.example.test"}, Data: message("")})
	if err != nil || len(replies) != 1 || replies[0].Code/100 != 4 {
		t.Fatalf("a copy Dovecot refuses (550 5.1.1): %v %v, want 4xx (an archive copy never bounces)", replies, err)
	}
}

// TestPostfixCopiesReachDovecot: Postfix delivers bob's mail to Dovecot's LMTP and the
// shadow copy, through the shipped transport table, to lmtp-shadow, which files it in
// Dovecot with its journalled envelope.
func TestPostfixCopiesReachDovecot(t *testing.T) {
	b := startDovecotBench(t)
	example, err := os.ReadFile("../examples/postfix/shadow_transport.regexp")
	if err != nil {
		t.Fatal(err)
	}
	transport := filepath.Join(testbench.Dir(t), "shadow_transport.regexp")
	os.WriteFile(transport, []byte(strings.ReplaceAll(string(example), "lmtp:unix:postern/shadow.sock", "lmtp:inet:"+b.addr)), 0o644)
	p := testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: map[string]string{
		"virtual_mailbox_domains": "corp.example.test",
		"virtual_mailbox_maps":    "inline:{ bob@corp.example.test=ok, shadow@corp.example.test=ok }",
		"virtual_transport":       "lmtp:inet:" + b.dovecot.LMTPAddr,
		"transport_maps":          "regexp:" + transport,
		"recipient_bcc_maps":      "inline:{ bob@corp.example.test=shadow@corp.example.test }",
	}})
	e := outboundEntry(t, b.journal)
	if code, text, err := testbench.SendMail(p.SMTPAddr, testbench.Mail{From: "alice@corp.example.test", To: []string{"bob@corp.example.test"}, Data: message(e.ID)}); err != nil || code != 250 {
		t.Fatalf("submit: %d %s %v", code, text, err)
	}
	p.WaitQueueEmpty(t, 30*time.Second)
	if got := b.dovecot.Messages(t, "bob@corp.example.test", "INBOX"); len(got) != 1 || got[0].MessageID != "<q3@corp.example.test>" {
		t.Fatalf("bob has %d messages, want the one", len(got))
	}
	arch := b.dovecot.Messages(t, "shadow@corp.example.test", "Outbound/2026/11")
	if len(arch) != 1 || arch[0].MessageID != "<q3@corp.example.test>" {
		t.Fatalf("the archive holds %d messages, want the one copy", len(arch))
	}
	checkEnvelope(t, string(arch[0].Raw), e)
	if raw := string(arch[0].Raw); !strings.Contains(raw, "Delivered-To: shadow+Outbound/2026/11@corp.example.test") {
		t.Errorf("the copy was not delivered to the folder's address:\n%s", raw)
	}
}

// At the start of a month every archive copy makes a new folder at once. Dovecot 2.3 with
// its mailbox list index on races there: a delivery aborts, or files its copy in INBOX
// while answering 250. The shipped configuration turns the list index off; this test makes
// new folders from concurrent deliveries, round after round, and wants every copy in its
// own folder and none in INBOX.
func TestDovecotConcurrentFirstDeliveries(t *testing.T) {
	b := startDovecotBench(t)
	const rounds, width = 15, 4
	for r := range rounds {
		replies := make([][]testbench.Reply, width)
		errs := make([]error, width)
		var wg sync.WaitGroup
		for k := range width {
			e := &journal.Entry{ID: journal.NewID(), Time: time.Date(2030+r, time.Month(k+1), 1, 0, 0, 0, 0, time.UTC),
				Sender: "alice@corp.example.test", Direction: "outbound", Recipients: []string{"x@partner.example"}}
			if err := b.journal.Put(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				replies[k], errs[k] = testbench.DeliverLMTP(b.addr, testbench.Mail{From: "alice@corp.example.test",
					To: []string{"shadow@corp.example.test"}, Data: message(e.ID)})
			})
		}
		wg.Wait()
		for k := range width {
			if errs[k] != nil || len(replies[k]) != 1 || replies[k][0].Code != 250 {
				t.Errorf("round %d, copy %d: %v %v", r, k, replies[k], errs[k])
				continue
			}
			folder := fmt.Sprintf("Outbound/%d/%02d", 2030+r, k+1)
			if n := len(b.dovecot.Messages(t, "shadow@corp.example.test", folder)); n != 1 {
				t.Errorf("%s holds %d copies, want 1", folder, n)
			}
		}
	}
	if n := len(b.dovecot.Messages(t, "shadow@corp.example.test", "INBOX")); n != 0 {
		t.Errorf("%d archive copies were filed in INBOX instead of their folders", n)
	}
}
