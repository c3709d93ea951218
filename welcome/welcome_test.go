package welcome

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern-mail/postern/internal/directory"
)

// sentTo lists the envelope recipients of what the server accepted, sorted.
func sentTo(s *sink) []string {
	var out []string
	for _, m := range s.received() {
		out = append(out, m.To...)
	}
	sort.Strings(out)
	return out
}

func TestFirstRunRecordsAndSendsNothing(t *testing.T) {
	h := newHarness(t, company(), "")
	rep := h.mustRun(Request{})
	if !rep.FirstRun || len(rep.Sent) != 0 || h.sink.sessionCount() != 0 {
		t.Fatalf("first run: %+v, %d SMTP sessions; want a first run that sends nothing and connects nowhere", rep, h.sink.sessionCount())
	}
	l := h.ledger()
	// alice is older than the lookback (14 days) before the newest account: outside every
	// window, so not even recorded; bob and carol are recorded as existing.
	if want := t0.Add(-14 * 24 * time.Hour); !l.Since.Equal(want) {
		t.Errorf("since = %s, want %s", l.Since, want)
	}
	if rep.Baseline != 2 || l.Entries["guid:guid-bob"].Status != statusBaseline || l.Entries["guid:guid-carol"] == nil {
		t.Errorf("baseline %d, entries %v", rep.Baseline, l.Entries)
	}
	if rep := h.mustRun(Request{}); len(rep.Sent) != 0 || rep.FirstRun {
		t.Errorf("second run without new users: %+v", rep)
	}
}

func TestFirstDryRunSaysWhatItWouldDo(t *testing.T) {
	h := newHarness(t, company(), "")
	h.mustRun(Request{DryRun: true})
	if !strings.Contains(h.out.String(), "first run: 2 existing account(s) would be recorded") {
		t.Errorf("output: %s", h.out.String())
	}
	if _, err := os.Stat(h.cfg.LedgerFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry first run wrote the ledger: %v", err)
	}
}

func TestBackfillWritesToUsersSince(t *testing.T) {
	h := newHarness(t, company(), "")
	rep := h.mustRun(Request{Backfill: t0.Add(-3 * 24 * time.Hour)})
	if got := sentTo(h.sink); !slices.Equal(got, []string{"bob@corp.example.test", "carol@corp.example.test"}) {
		t.Fatalf("backfill sent to %v (report %+v)", got, rep)
	}
	if _, err := h.run(Request{Backfill: t0}); !errors.Is(err, ErrConfig) {
		t.Errorf("--backfill with a ledger: %v, want a configuration error", err)
	}
}

// The scenario: three users created, one run, three letters; nothing the second
// time; a fourth user, exactly one; a disabled new user none, until enabled.
func TestNewUsersGetOneLetterEach(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})

	dir.add(person("dan", "Dan Dvořák", t0.Add(2*time.Hour)),
		person("zhang", "张伟", t0.Add(2*time.Hour), "givenName", "伟", "department", "研发部"),
		person("erin", "Erin Engel", t0.Add(3*time.Hour)))
	frank := person("frank", "Frank Disabled", t0.Add(3*time.Hour))
	frank.Disabled = true
	dir.add(frank)
	h.clock.advance(4 * time.Hour)

	rep := h.mustRun(Request{})
	want := []string{"dan@corp.example.test", "erin@corp.example.test", "zhang@corp.example.test"}
	if got := sentTo(h.sink); !slices.Equal(got, want) || len(rep.Failed) != 0 {
		t.Fatalf("first letters went to %v (report %+v), want %v", got, rep, want)
	}
	for _, m := range h.sink.received() {
		p := parseLetter(t, m.Data)
		if !slices.Equal(p.Types, []string{"multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"}) {
			t.Errorf("%v: MIME structure %v", m.To, p.Types)
		}
	}

	if rep := h.mustRun(Request{}); len(rep.Sent) != 0 || len(h.sink.received()) != 3 {
		t.Fatalf("second run sent %v; want nothing", rep.Sent)
	}

	dir.add(person("gina", "Gina Green", t0.Add(5*time.Hour)))
	h.clock.advance(time.Hour)
	if rep := h.mustRun(Request{}); !slices.Equal(rep.Sent, []string{"gina"}) {
		t.Fatalf("after a fourth user the run sent %v, want exactly gina", rep.Sent)
	}

	// Accounts are often created disabled and enabled on the first day: the letter
	// follows the enabling, if it is within the lookback.
	dir.update("frank", func(o *directory.Object) { o.Disabled = false })
	if rep := h.mustRun(Request{}); !slices.Equal(rep.Sent, []string{"frank"}) {
		t.Fatalf("after enabling frank the run sent %v", rep.Sent)
	}
	if n := len(h.sink.received()); n != 5 {
		t.Fatalf("%d letters in all, want 5", n)
	}
}

// Samba's whenCreated has whole seconds, and another DC may replicate an account created
// earlier after a later one was seen: both must still get their letter, once.
func TestSameSecondAndLateReplication(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("hal", "Hal", t0.Add(time.Hour)))
	h.mustRun(Request{})
	dir.add(person("ida", "Ida", t0.Add(time.Hour)), // the same second as hal
		person("jon", "Jon", t0.Add(30*time.Minute)),   // older than hal, seen later
		person("kim", "Kim", t0.Add(-30*24*time.Hour))) // outside the lookback: never
	rep := h.mustRun(Request{})
	if !slices.Equal(rep.Sent, []string{"jon", "ida"}) {
		t.Fatalf("sent %v, want jon then ida (oldest first)", rep.Sent)
	}
	if got := sentTo(h.sink); len(got) != 3 {
		t.Fatalf("letters to %v, want hal, ida, jon once each", got)
	}
}

// The ledger is keyed by objectGUID: a renamed or moved user is not welcomed again, and
// a login that a new person reuses gets its first letter.
func TestRenameAndLoginReuse(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("lea", "Lea Lang", t0.Add(time.Hour)))
	h.mustRun(Request{})
	dir.update("lea", func(o *directory.Object) {
		o.Login, o.DN, o.Primary = "lea.meyer", "CN=Lea Meyer,OU=Sales,DC=corp,DC=example,DC=test", "lea.meyer@corp.example.test"
	})
	if rep := h.mustRun(Request{}); len(rep.Sent) != 0 {
		t.Fatalf("a renamed user was welcomed again: %v", rep.Sent)
	}
	newLea := person("lea", "Lea Lorenz", t0.Add(2*time.Hour))
	newLea.GUID = "guid-lea-2"
	dir.add(newLea)
	if rep := h.mustRun(Request{}); !slices.Equal(rep.Sent, []string{"lea"}) {
		t.Fatalf("a new user with a reused login got %v", rep.Sent)
	}
}

func TestSMTPDownThenUp(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("max", "Max", t0.Add(time.Hour)), person("nia", "Nia", t0.Add(time.Hour)))
	h.sink.stop()

	rep, err := h.run(Request{})
	if !errors.Is(err, ErrTemporary) {
		t.Fatalf("SMTP down: %v, want a temporary failure", err)
	}
	if len(rep.Failed) != 2 || len(rep.Sent) != 0 {
		t.Errorf("report %+v", rep)
	}
	for k, e := range h.ledger().Entries {
		if e.Status == statusSent {
			t.Errorf("recorded %s as sent while the server was down", k)
		}
	}

	h.sink.start(t)
	if rep := h.mustRun(Request{}); len(rep.Sent) != 2 {
		t.Fatalf("server back: sent %v, want max and nia", rep.Sent)
	}
	h.mustRun(Request{})
	if got := sentTo(h.sink); !slices.Equal(got, []string{"max@corp.example.test", "nia@corp.example.test"}) {
		t.Fatalf("letters %v, want one each", got)
	}
}

func TestDirectoryDownIsTemporary(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	dir.setDown(true)
	if _, err := h.run(Request{}); !errors.Is(err, ErrTemporary) {
		t.Fatalf("directory down: %v", err)
	}
	if _, err := os.Stat(h.cfg.LedgerFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a first run that could not read the directory wrote the ledger: %v", err)
	}
}

// A server that refuses one recipient: the others are sent, the refused one is retried
// by every run (the window does not move past it) until the operator acts.
func TestRefusedRecipientIsRetried(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.sink.reject("olga@corp.example.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"})
	h.mustRun(Request{})
	dir.add(person("olga", "Olga", t0.Add(time.Hour)), person("pia", "Pia", t0.Add(2*time.Hour)))
	rep, err := h.run(Request{})
	if !errors.Is(err, ErrTemporary) || !slices.Equal(rep.Sent, []string{"pia"}) || !slices.Equal(rep.Failed, []string{"olga"}) {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	if n := h.sink.sessionCount(); n != 2 {
		t.Errorf("%d SMTP sessions; want a fresh one after the refusal", n)
	}
	// A month of new accounts later olga is still inside the window.
	dir.add(person("quinn", "Quinn", t0.Add(40*24*time.Hour)))
	h.clock.advance(41 * 24 * time.Hour)
	rep, _ = h.run(Request{})
	if !slices.Equal(rep.Failed, []string{"olga"}) {
		t.Fatalf("olga was dropped: %+v", rep)
	}
	if !h.ledger().Since.Equal(t0.Add(time.Hour)) {
		t.Errorf("since %s moved past the refused letter", h.ledger().Since)
	}
	h.sink.reject("olga@corp.example.test", nil)
	if rep := h.mustRun(Request{}); !slices.Equal(rep.Sent, []string{"olga"}) {
		t.Fatalf("after the fix: %+v", rep)
	}
	if since := h.ledger().Since; !since.Equal(t0.Add(26 * 24 * time.Hour)) {
		t.Errorf("since %s, want lookback before quinn", since)
	}
}

// Two runs started at the same moment: the lock makes one wait for the other, which
// then finds everything recorded.
func TestConcurrentRunsSendOnce(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	for _, l := range []string{"r1", "r2", "r3", "r4"} {
		dir.add(person(l, strings.ToUpper(l), t0.Add(time.Hour)))
	}
	jobs := []*Job{h.newJob(), h.newJob(), h.newJob()}
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	start := make(chan struct{})
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = j.Run(context.Background(), Request{})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	if got := sentTo(h.sink); len(got) != 4 || len(slices.Compact(got)) != 4 {
		t.Fatalf("letters %v, want r1..r4 once each", got)
	}
}

func TestLockHeldIsTemporary(t *testing.T) {
	h := newHarness(t, company(), "")
	lock, err := lockRun(context.Background(), h.cfg.LockFile(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	j := h.newJob()
	j.opts.LockWait = 200 * time.Millisecond
	if _, err := j.Run(context.Background(), Request{}); !errors.Is(err, ErrTemporary) || !strings.Contains(err.Error(), "another postern welcome") {
		t.Fatalf("run while locked: %v", err)
	}
}

// --dry-run shows what a run would send, byte for byte (the Date aside), and changes
// nothing.
func TestDryRunMatchesWhatIsSent(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("sam", "Sam 张", t0.Add(time.Hour), "title", "Engineer <Backend>"),
		person("tia", "Tia", t0.Add(time.Hour)))
	ledgerBefore, _ := os.ReadFile(h.cfg.LedgerFile())
	out := t.TempDir()

	rep := h.mustRun(Request{DryRun: true, OutDir: out})
	if len(rep.Letters) != 2 || len(h.sink.received()) != 0 {
		t.Fatalf("dry run: %d letters, %d sent", len(rep.Letters), len(h.sink.received()))
	}
	if after, _ := os.ReadFile(h.cfg.LedgerFile()); !bytes.Equal(after, ledgerBefore) {
		t.Fatal("the dry run changed the ledger")
	}
	for _, want := range []string{"=== letter 1 of 2: sam", "Subject: Welcome to Corp, Sam 张 · 欢迎加入", "Inline image: cid:logo.png@welcome", "Sign-in name · 登录名   sam"} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("preview lacks %q:\n%s", want, h.out.String())
		}
	}

	h.clock.advance(time.Minute) // the real run is later: only the Date differs
	h.mustRun(Request{})
	for _, m := range h.sink.received() {
		login := strings.TrimSuffix(m.To[0], "@corp.example.test")
		eml, err := os.ReadFile(filepath.Join(out, login+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		if a, b := withoutDate(eml), withoutDate(m.Data); !bytes.Equal(a, b) {
			t.Errorf("%s: the dry run's letter differs from the one sent:\n--- dry run\n%s\n--- sent\n%s", login, a, b)
		}
	}
}

func withoutDate(raw []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(raw, []byte("\r\n")) {
		if !bytes.HasPrefix(line, []byte("Date: ")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\r\n"))
}

func TestUserFlag(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{}) // bob is recorded as existing before the first run

	if rep := h.mustRun(Request{User: "bob"}); !slices.Equal(rep.Sent, []string{"bob"}) {
		t.Fatalf("--user bob: %+v", rep)
	}
	rep := h.mustRun(Request{User: "BOB"})
	if !rep.AlreadySent || len(h.sink.received()) != 1 || !strings.Contains(h.out.String(), "--force sends another") {
		t.Fatalf("--user again: %+v\n%s", rep, h.out.String())
	}
	if rep := h.mustRun(Request{User: "bob", Force: true}); len(rep.Sent) != 1 {
		t.Fatalf("--user --force: %+v", rep)
	}
	msgs := h.sink.received()
	if a, b := parseLetter(t, msgs[0].Data).MessageID, parseLetter(t, msgs[1].Data).MessageID; a == b {
		t.Errorf("a forced second letter reuses Message-ID %s: Cyrus would drop it as a duplicate", a)
	}
	if e := h.ledger().Entries["guid:guid-bob"]; e.Sends != 2 || e.Status != statusSent {
		t.Errorf("ledger entry %+v", e)
	}

	frank := person("frank", "Frank", t0)
	frank.Disabled = true
	dir.add(frank)
	for _, login := range []string{"nobody", "frank"} {
		if _, err := h.run(Request{User: login}); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("--user %s: %v, want no such user", login, err)
		}
	}
}

func TestSkipFlag(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("uma", "Uma", t0.Add(time.Hour)), person("vic", "Vic", t0.Add(time.Hour)))
	h.mustRun(Request{Skip: "uma"})
	if rep := h.mustRun(Request{}); !slices.Equal(rep.Sent, []string{"vic"}) {
		t.Fatalf("after --skip uma: %v", rep.Sent)
	}
	if _, err := h.run(Request{Skip: "nobody"}); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("--skip nobody: %v", err)
	}
}

func TestScope(t *testing.T) {
	newcomer := func(login, ou string) *directory.Object {
		o := person(login, login, t0.Add(time.Hour))
		o.DN = "CN=" + login + "," + ou + ",DC=corp,DC=example,DC=test"
		return o
	}
	tests := []struct {
		name  string
		extra string
		want  []string
		err   error
	}{
		{"everyone", "", []string{"g1", "g2", "o1", "x1"}, nil},
		{"a group by name, nested", "  groups: [Staff]\n", []string{"g1", "g2"}, nil},
		{"a group by DN", "  groups: [\"CN=Sales,OU=Groups,DC=corp,DC=example,DC=test\"]\n", []string{"g2"}, nil},
		{"an OU", "  ous: [\"OU=Interns,DC=corp,DC=example,DC=test\"]\n", []string{"o1"}, nil},
		{"group and OU", "  groups: [Staff]\n  ous: [\"OU=People,DC=corp,DC=example,DC=test\"]\n", []string{"g1", "g2"}, nil},
		{"a misspelt group", "  groups: [Staf]\n", nil, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := company()
			h := newHarness(t, dir, tt.extra)
			if _, err := h.run(Request{}); err != nil && tt.err == nil {
				t.Fatal(err)
			}
			g1, g2 := newcomer("g1", "OU=People"), newcomer("g2", "OU=Sales,OU=People")
			sales := group("Sales", g2)
			dir.add(g1, g2, newcomer("o1", "OU=Interns"), newcomer("x1", "OU=Contractors"), sales, group("Staff", g1, sales))
			rep, err := h.run(Request{})
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("run: %v, want %v", err, tt.err)
			}
			sort.Strings(rep.Sent)
			if !slices.Equal(rep.Sent, tt.want) {
				t.Errorf("sent %v, want %v", rep.Sent, tt.want)
			}
		})
	}
}

func TestDamagedLedgerIsNotStartedAfresh(t *testing.T) {
	h := newHarness(t, company(), "")
	h.mustRun(Request{})
	if err := os.WriteFile(h.cfg.LedgerFile(), []byte(`{"version": 1, "entries": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run(Request{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("damaged ledger: %v", err)
	}
}

func TestMetricsTextfile(t *testing.T) {
	dir := company()
	h := newHarness(t, dir, "")
	h.mustRun(Request{})
	dir.add(person("wes", "Wes", t0.Add(time.Hour)), person("xia", "Xia", t0.Add(time.Hour)))
	h.sink.stop()
	h.run(Request{})
	h.sink.start(t)
	h.mustRun(Request{})

	m := readMetrics(h.cfg.MetricsFile)
	want := map[string]float64{
		metricSent:                        2,
		metricFailures:                    2,
		metricRuns + `{result="success"}`: 2,
		metricRuns + `{result="failure"}`: 1,
		metricPending:                     0,
		metricLastSuccess:                 float64(h.clock.now().Unix()),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	checkExposition(t, h.cfg.MetricsFile)
}
