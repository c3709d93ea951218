package lmtpshadow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/testbench"
)

type bench struct {
	cyrus   *testbench.Cyrus
	journal journal.Store
	addr    string
	metrics prometheus.Gatherer // lmtp-shadow's registry
}

// startBench starts Cyrus with the shadow mailbox, a file journal and lmtp-shadow.
func startBench(t testing.TB) *bench {
	t.Helper()
	c := testbench.StartCyrus(t)
	c.CreateMailbox(t, "user/shadow@corp.example.test")
	d := runShadowDaemon(t, cyrusStore(t, c))
	return &bench{cyrus: c, journal: d.journal, addr: d.addr, metrics: d.metrics}
}

// cyrusStore is lmtp_shadow.store for Cyrus c, as YAML.
func cyrusStore(t testing.TB, c *testbench.Cyrus) string {
	pw := filepath.Join(t.TempDir(), "cyrus.secret")
	os.WriteFile(pw, []byte(c.AdminPassword), 0o600)
	return fmt.Sprintf("{kind: cyrus, lmtp: inet:%s, imap: inet:%s, admin_user: %s, admin_password_file: %s}",
		c.LMTPAddr, c.IMAPAddr, c.Admin, pw)
}

// counter is the value of a counter in g with exactly these labels (name=value pairs),
// as Prometheus would scrape it; 0 if it has not been counted.
func counter(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels)/2 {
				continue
			}
			for _, l := range m.GetLabel() {
				if !slices.ContainsFunc(pairs(labels), func(p [2]string) bool { return p[0] == l.GetName() && p[1] == l.GetValue() }) {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func pairs(kv []string) [][2]string {
	var out [][2]string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

// copiesTotal is postern_shadow_copies_total{direction,result}.
func copiesTotal(t testing.TB, g prometheus.Gatherer, direction, result string) float64 {
	t.Helper()
	return counter(t, g, "postern_shadow_copies_total", "direction", direction, "result", result)
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
	raw := string(b.archiveOne(t, e))
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
	// What an operator's dashboard shows for it.
	if n := copiesTotal(t, b.metrics, "outbound", "archived"); n != 1 {
		t.Errorf(`postern_shadow_copies_total{direction="outbound",result="archived"} = %v, want 1`, n)
	}
	for _, result := range []string{"deferred", "rejected"} {
		if n := copiesTotal(t, b.metrics, "outbound", result); n != 0 {
			t.Errorf(`postern_shadow_copies_total{direction="outbound",result=%q} = %v, want 0`, result, n)
		}
	}
	if n := counter(t, b.metrics, "postern_shadow_journal_misses_total"); n != 0 {
		t.Errorf("postern_shadow_journal_misses_total = %v, want 0: the entry was found", n)
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
	if n := counter(t, b.metrics, "postern_shadow_journal_misses_total"); n != 3 {
		t.Errorf("postern_shadow_journal_misses_total = %v, want 3", n)
	}
	if n := copiesTotal(t, b.metrics, "unknown", "archived"); n != 3 {
		t.Errorf(`postern_shadow_copies_total{direction="unknown",result="archived"} = %v, want 3`, n)
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
	if n := copiesTotal(t, b.metrics, "unknown", "deferred"); n != 1 {
		t.Errorf(`Cyrus down: postern_shadow_copies_total{direction="unknown",result="deferred"} = %v, want 1`, n)
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
	if n := copiesTotal(t, b.metrics, "unknown", "archived"); n != 2 {
		t.Errorf(`postern_shadow_copies_total{direction="unknown",result="archived"} = %v, want 2 (the first copy and the retried one)`, n)
	}
	if n := copiesTotal(t, b.metrics, "unknown", "deferred"); n != 1 {
		t.Errorf(`postern_shadow_copies_total{direction="unknown",result="deferred"} = %v, want still 1`, n)
	}
}

func TestUnknownShadowMailboxIsDeferredNotBounced(t *testing.T) {
	b := startBench(t)
	replies, err := testbench.DeliverLMTP(b.addr, testbench.Mail{From: "a@corp.example.test", To: []string{"shadow@other.example.test"}, Data: message("")})
	if err != nil || len(replies) != 1 || replies[0].Code/100 != 4 {
		t.Fatalf("a copy Cyrus refuses: %v %v, want 4xx (an archive copy never bounces)", replies, err)
	}
	// The store refuses it until an operator creates the mailbox: the alert
	// PosternArchiveRejected fires on this series.
	if n := copiesTotal(t, b.metrics, "unknown", "rejected"); n != 1 {
		t.Errorf(`postern_shadow_copies_total{direction="unknown",result="rejected"} = %v, want 1`, n)
	}
	if n := b.cyrus.AdminCommand(t, `LIST "" "user/shadow/*@other.example.test"`); len(n) != 0 {
		t.Errorf("folders were made for a shadow mailbox that does not exist: %q", n)
	}
}

// archiveOne journals e, delivers the quarterly-figures message with its id to the
// corp shadow mailbox (an ASCII LMTP envelope: Cyrus writes it into Return-Path itself)
// and returns the one copy filed in Outbound/2026/11.
func (b *bench) archiveOne(t *testing.T, e *journal.Entry) []byte {
	t.Helper()
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
	return msgs[0].Raw
}
