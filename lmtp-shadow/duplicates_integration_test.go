package lmtpshadow

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/testbench"
)

// Cyrus's duplicate suppression stays on server-wide (its default; the users' mailboxes
// on the same Cyrus want it), and lmtp-shadow turns it off for the archive alone: it sets
// /shared/vendor/cmu/cyrus-imapd/duplicatedeliver on every folder it prepares.

// TestArchiveKeepsARepeatedMessageIDWhileUsersFoldIt: the same message (one Message-ID)
// archived by two transactions, each with its own journal entry, lands twice in the
// archive folder, while bob, who got it in both transactions too, has it once.
func TestArchiveKeepsARepeatedMessageIDWhileUsersFoldIt(t *testing.T) {
	b := startBench(t)
	conf, err := os.ReadFile(filepath.Join(b.cyrus.Dir, "imapd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?mi)^duplicatesuppression:\s*(0|no|off|false|f|n)\s*$`).Match(conf) {
		t.Fatal("the test Cyrus runs with duplicatesuppression off; this test needs Cyrus's default (on)")
	}
	b.cyrus.CreateMailbox(t, "user/bob@corp.example.test")
	// A folder an earlier lmtp-shadow made, without the annotation: it gets it too.
	b.cyrus.CreateMailbox(t, "user/shadow/Outbound@corp.example.test")

	deliver := func(addr, to string, e *journal.Entry) {
		t.Helper()
		replies, err := testbench.DeliverLMTP(addr, testbench.Mail{From: "alice@corp.example.test", To: []string{to}, Data: message(e.ID)})
		if err != nil || len(replies) != 1 || replies[0].Code != 250 {
			t.Fatalf("LMTP to %s: %v %v", to, replies, err)
		}
	}
	var entries []*journal.Entry
	for range 2 { // the same message, sent twice: two journal entries, one Message-ID
		e := outboundEntry(t, b.journal)
		entries = append(entries, e)
		deliver(b.addr, "shadow@corp.example.test", e)
		deliver(b.cyrus.LMTPAddr, "bob@corp.example.test", e) // Postfix's delivery to bob, straight to Cyrus
	}
	// A restarted lmtp-shadow prepares the folders again, knowing nothing of the first.
	again := runShadowDaemon(t, cyrusStore(t, b.cyrus))
	e := outboundEntry(t, again.journal)
	entries = append(entries, e)
	deliver(again.addr, "shadow@corp.example.test", e)

	archived := b.cyrus.Messages(t, "shadow@corp.example.test", "INBOX/Outbound/2026/11")
	if len(archived) != len(entries) {
		t.Fatalf("the archive folder holds %d copies, want %d: one per transaction, though Cyrus suppresses duplicates", len(archived), len(entries))
	}
	for i, m := range archived {
		if m.MessageID != "<q3@corp.example.test>" || !strings.Contains(string(m.Raw), "; id="+entries[i].ID+"\r\n") {
			t.Errorf("archive copy %d is not the copy of transaction %d (journal id %s):\n%s", i+1, i+1, entries[i].ID, m.Raw)
		}
	}
	if got := b.cyrus.Messages(t, "bob@corp.example.test", "INBOX"); len(got) != 1 {
		t.Errorf("bob's INBOX holds %d copies, want 1: a user's mailbox still folds a repeated Message-ID", len(got))
	}
	for mbox, want := range map[string]string{
		"user/shadow@corp.example.test":                  "true", // where Cyrus files a copy it cannot file in its folder
		"user/shadow/Outbound@corp.example.test":         "true",
		"user/shadow/Outbound/2026@corp.example.test":    "true",
		"user/shadow/Outbound/2026/11@corp.example.test": "true",
		"user/bob@corp.example.test":                     "false",
	} {
		if got := b.cyrus.Metadata(t, mbox, duplicateDeliver); got != want {
			t.Errorf("%s of %s: %q, want %q", duplicateDeliver, mbox, got, want)
		}
	}
	if n := copiesTotal(t, b.metrics, "outbound", "archived"); n != 2 {
		t.Errorf(`postern_shadow_copies_total{direction="outbound",result="archived"} = %v, want 2`, n)
	}
}

// TestCyrusFoldersArePreparedOnce: preparing a folder costs IMAP commands only the first
// time in a process, a new month's folder only its own three, and doing it all again (a
// restart) is harmless.
func TestCyrusFoldersArePreparedOnce(t *testing.T) {
	c := testbench.StartCyrus(t)
	c.CreateMailbox(t, "user/shadow@corp.example.test")
	tap := startIMAPTap(t, c.IMAPAddr)
	newStore := func() *Store {
		return NewStore(config.Store{Kind: "cyrus", IMAP: config.Listen{Network: "tcp", Address: tap.addr},
			AdminUser: c.Admin, AdminPassword: config.NewSecret(c.AdminPassword), Poster: "postern"})
	}
	ensure := func(st *Store, folder string) (conns int, cmds []string) {
		t.Helper()
		conns0, cmds0 := tap.counts()
		if err := st.Ensure(context.Background(), Copy{User: "shadow", Domain: "corp.example.test", Folder: folder}); err != nil {
			t.Fatalf("Ensure %s: %v", folder, err)
		}
		conns1, cmds1 := tap.counts()
		return conns1 - conns0, cmds1[len(cmds0):]
	}
	prepare := []string{"CREATE", "SETACL", "SETMETADATA"}
	whole := slices.Concat([]string{"SETMETADATA"}, prepare, prepare, prepare) // the INBOX, then each level

	st := newStore()
	if conns, cmds := ensure(st, "Outbound/2026/11"); conns != 1 || !slices.Equal(cmds, whole) {
		t.Errorf("first copy into Outbound/2026/11: %d IMAP sessions, commands %v; want 1 session, %v", conns, cmds, whole)
	}
	if conns, cmds := ensure(st, "Outbound/2026/11"); conns != 0 || len(cmds) != 0 {
		t.Errorf("second copy into Outbound/2026/11: %d IMAP sessions, commands %v; want none", conns, cmds)
	}
	if conns, cmds := ensure(st, "Outbound/2026/12"); conns != 1 || !slices.Equal(cmds, prepare) {
		t.Errorf("first copy into Outbound/2026/12: %d IMAP sessions, commands %v; want 1 session, %v", conns, cmds, prepare)
	}
	if conns, cmds := ensure(newStore(), "Outbound/2026/11"); conns != 1 || !slices.Equal(cmds, whole) {
		t.Errorf("after a restart: %d IMAP sessions, commands %v; want 1 session, %v", conns, cmds, whole)
	}
	for _, mbox := range []string{"user/shadow", "user/shadow/Outbound", "user/shadow/Outbound/2026", "user/shadow/Outbound/2026/11", "user/shadow/Outbound/2026/12"} {
		if got := c.Metadata(t, mbox+"@corp.example.test", duplicateDeliver); got != "true" {
			t.Errorf("%s of %s: %q, want \"true\"", duplicateDeliver, mbox, got)
		}
	}
}

// imapTap forwards IMAP connections to a server and notes the commands that prepare
// folders, so a test sees what lmtp-shadow asks of Cyrus.
type imapTap struct {
	addr  string
	mu    sync.Mutex
	conns int
	cmds  []string // CREATE, SETACL, SETMETADATA, in the order sent
}

func startIMAPTap(t testing.TB, server string) *imapTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tap := &imapTap{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tap.mu.Lock()
			tap.conns++
			tap.mu.Unlock()
			go tap.forward(c, server)
		}
	}()
	return tap
}

func (tap *imapTap) forward(client net.Conn, server string) {
	defer client.Close()
	s, err := net.DialTimeout("tcp", server, 10*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { io.Copy(client, s); client.Close() }()
	r := bufio.NewReader(client)
	for {
		line, err := r.ReadString('\n')
		if f := strings.Fields(line); len(f) > 1 {
			if cmd := strings.ToUpper(f[1]); cmd == "CREATE" || cmd == "SETACL" || cmd == "SETMETADATA" {
				tap.mu.Lock()
				tap.cmds = append(tap.cmds, cmd)
				tap.mu.Unlock()
			}
		}
		if _, werr := io.WriteString(s, line); werr != nil || err != nil {
			return
		}
	}
}

func (tap *imapTap) counts() (int, []string) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return tap.conns, slices.Clone(tap.cmds)
}
