package tcptable

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
	"github.com/postern-mail/postern/internal/testbench"
)

// corpTables is tcptable serving the seeded company from a real Samba AD DC.
type corpTables struct {
	daemon *Daemon
	dir    *directory.Directory
	cfg    *config.Config
}

// startCorpTables starts tcptable for the seeded company in Samba, with extra YAML under
// tcptable: (the socketmap listener, senders, shadow), and every map also over tcp on a
// port the kernel picks. With sync false the directory is left as a daemon finds it when
// AD is down at start: one failed sync, no snapshot.
func startCorpTables(t testing.TB, s *testbench.Samba, tcptableYAML string, sync bool) *corpTables {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.yaml")
	yaml := testbench.CorpConfig(s, dir, "tcptable:\n"+tcptableYAML)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Listeners on port 0 cannot be written in the file (two would be "the same port").
	cfg.Tcptable.TCP = map[string]config.Listen{}
	for _, m := range config.TcptableMaps {
		cfg.Tcptable.TCP[m] = config.Listen{Network: "tcp", Address: "127.0.0.1:0"}
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) // every temporary failure, not the start-up lines
	d, resolver, err := directory.FromConfig(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Sync(ctx); sync && err != nil {
		t.Fatal(err)
	} else if !sync && err == nil {
		t.Fatal("the directory synced although Samba should be down")
	}
	daemon := New(service.Deps{Config: cfg, Log: log, Directory: d, Resolver: resolver})
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		daemon.Shutdown(ctx)
	})
	return &corpTables{daemon: daemon, dir: d, cfg: cfg}
}

// runDirectory starts the directory's own refresh loop (Directory.Run, as `postern run`
// starts it) with the test's context, syncing every directory.refresh (1s in
// testbench.CorpConfig; sooner retries before the first success), until the test ends.
// A test that starts it forces no sync by hand: what it sees of AD, the loop fetched.
func (c *corpTables) runDirectory(t testing.TB) {
	t.Helper()
	if r := c.cfg.Directory.Refresh.D(); r > time.Second {
		t.Fatalf("directory.refresh is %s; the refresh loop of a test wants 1s or less", r)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.dir.Run(t.Context())
	}()
	t.Cleanup(func() { <-done }) // t.Context() is cancelled before cleanups run
}

// waitSynced waits until the directory's refresh loop has a snapshot, at most within,
// and ends the test if it has none by then.
func (c *corpTables) waitSynced(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for !c.dir.Ready() {
		select {
		case <-c.dir.Synced():
		case <-deadline:
			_, err := c.dir.Snapshot()
			t.Fatalf("the directory's refresh loop has no snapshot after %s: %v", within, err)
		}
	}
}

// table is the Postfix table name of a map over a protocol.
func (c *corpTables) table(protocol, m string) string {
	if protocol == "tcp" {
		return "tcp:" + c.daemon.addrs[m].String()
	}
	return "socketmap:" + c.cfg.Tcptable.Socketmap.String() + ":" + m
}

// corpKeys are the resolver's cases for the seeded company, and what each map answers for
// them through Postfix's own client; a map left out does not find the key.
var corpKeys = []mapCase{
	{"mailbox", alice, mailbox(alice, "-", "alice")},
	{"upper case", "ALICE@CORP.EXAMPLE.TEST", mailbox(alice, alice, "alice")},
	{"+extension", "alice+News@corp.example.test", mailbox(alice, "-", "alice")},
	{"+extension, upper case", "Alice+News@CORP.EXAMPLE.TEST", mailbox(alice, "alice+News@corp.example.test", "alice")},
	{"trailing dot", "bob@corp.example.test.", mailbox(bob, bob, "bob")},
	{"alias domain", "carol@alias.example.test", secondary(carol, carol, "carol")},
	{"secondary proxyAddress", "a.anderson@corp.example.test", secondary(alice, alice, "alice")},
	{"secondary in another domain, extension carried", "Erin+Q3@Other.Example.Test", secondary(erin, "erin+Q3@corp.example.test", "erin")},
	{"IDN U-label", "anna@bücher.example.test", secondary(alice, alice, "alice")},
	{"IDN A-label", "anna@xn--bcher-kva.example.test", secondary(alice, alice, "alice")},
	{"nested list", "all@corp.example.test", withSenders(list("all@corp.example.test", alice+","+bob+","+carol+","+erin), "alice,bob,carol,erin")},
	{"list skips the disabled member", "sales@corp.example.test", withSenders(list("sales@corp.example.test", bob+","+erin), "bob,erin")},
	{"group cycle", "cycle-a@corp.example.test", withSenders(list("cycle-a@corp.example.test", alice+","+bob), "alice,bob")},
	{"list with a contact", "partners@corp.example.test", withSenders(list("partners@corp.example.test", "bob@partner.example,"+erin), "erin")},
	{"contact", "partner@corp.example.test", map[string]string{"aliases": "bob@partner.example", "recipients": "bob@partner.example"}},
	{"disabled user", "dave@corp.example.test", nil},
	{"unknown user", "nobody@corp.example.test", nil},
	{"unknown domain", "alice@elsewhere.example", nil},
	{"look-alike domain", "alice@corp.example.test.evil.example", nil},
	{"percent route", "x%evil.example@corp.example.test", nil},
	{"bang route", "evil.example!x@corp.example.test", nil},
	{"quoted local part", `"alice"@corp.example.test`, nil},
	{"two at signs", "alice@evil.example@corp.example.test", nil},
	{"primary domain", corp, map[string]string{"domains": corp}},
	{"primary domain, other case, trailing dot", "Other.Example.TEST.", map[string]string{"domains": "other.example.test"}},
	{"IDN domain", "bücher.example.test", map[string]string{"domains": "xn--bcher-kva.example.test"}},
	{"alias domain alone", "alias.example.test", map[string]string{"alias_domains": corp}},
	{"foreign domain alone", "elsewhere.example", nil},
}

func withSenders(m map[string]string, logins string) map[string]string {
	m["senders"] = logins
	return m
}

// TestPostmapAgainstSamba asks every map, over both protocols, with Postfix's own client
// (postmap -q - TABLE, one process per table), what the seeded company's addresses are.
func TestPostmapAgainstSamba(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	sock := filepath.Join(testbench.Dir(t), "tables.sock")
	tables := startCorpTables(t, s, "  socketmap: unix:"+sock+"\n  senders: {group_send_as: true}\n", true)
	pf := testbench.StartPostfix(t, testbench.PostfixOptions{})

	keys := make([]string, len(corpKeys))
	for i, c := range corpKeys {
		keys[i] = c.key
	}
	for _, protocol := range []string{"socketmap", "tcp"} {
		for _, m := range config.TcptableMaps {
			table := tables.table(protocol, m)
			out, err := pf.PostmapBatch(keys, table)
			if err != nil && !errors.Is(err, testbench.ErrNotFound) {
				t.Fatalf("postmap -q - %s: %v", table, err)
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if k, v, ok := strings.Cut(line, "\t"); ok {
					got[k] = v
				}
			}
			for _, c := range corpKeys {
				want, ok := c.want[m]
				if !ok || want == "-" {
					want = "(not found)"
				}
				g, ok := got[c.key]
				if !ok {
					g = "(not found)"
				}
				if g != want {
					t.Errorf("%s, %s: postmap -q %q %s = %s, want %s", protocol, c.name, c.key, table, g, want)
				}
			}
		}
	}

	t.Run("unknown map name is a table error, not 'not found'", func(t *testing.T) {
		_, err := pf.Postmap(alice, tables.table("socketmap", "virtual"))
		var pe *testbench.PostmapError
		if !errors.As(err, &pe) || errors.Is(err, testbench.ErrNotFound) || !strings.Contains(pe.Stderr, "query error") {
			t.Fatalf("postmap of map \"virtual\": %v", err)
		}
	})

	t.Run("directory down before the first sync: temporary, never not found", func(t *testing.T) {
		s.Stop()
		t.Cleanup(func() { s.Start(t) })
		down := startCorpTables(t, s, "  socketmap: unix:"+filepath.Join(testbench.Dir(t), "down.sock")+"\n", false)
		var wg sync.WaitGroup // postmap sleeps a second before it exits on a table error
		for _, protocol := range []string{"socketmap", "tcp"} {
			for _, m := range []string{"mailboxes", "aliases", "senders", "recipients", "shadow"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := pf.Postmap("nobody@corp.example.test", down.table(protocol, m))
					var pe *testbench.PostmapError
					if !errors.As(err, &pe) || errors.Is(err, testbench.ErrNotFound) || !strings.Contains(pe.Stderr, "query error") {
						t.Errorf("%s %s with AD down: %q %v, want a table error (Postfix defers)", protocol, m, v, err)
					}
				}()
			}
			if v, err := pf.Postmap(corp, down.table(protocol, "domains")); err != nil || v != corp {
				t.Errorf("%s domains with AD down: %q %v; the accepted domains come from the configuration", protocol, v, err)
			}
		}
		wg.Wait()
	})
}
