package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern-mail/postern/internal/testbench"
)

// rpmVersion is what rpm accepts in a Version tag (no '-': it separates the release).
var rpmVersion = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)

// TestVersionOrder builds a history in a scratch repository — commits before the first
// tag, two of them on one day, releases, a pre-release, commits after each — and checks
// that version.sh names every step as expected, in a form dpkg and rpm accept, and that
// dpkg (and rpm, where installed) order each version above the one before: a later
// build must be an upgrade.
func TestVersionOrder(t *testing.T) {
	testbench.Require(t, "git", "dpkg")
	script, err := filepath.Abs("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	// A zone far from UTC: the dates below must come out in UTC all the same.
	env := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=postern", "GIT_AUTHOR_EMAIL=postern@example.test",
		"GIT_COMMITTER_NAME=postern", "GIT_COMMITTER_EMAIL=postern@example.test", "TZ=Pacific/Kiritimati")
	git := func(extra []string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = repo, append(env, extra...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	n := 0
	commit := func(date string) {
		t.Helper()
		n++
		dates := []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}
		git(dates, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("commit %d", n))
	}
	short := func() string { return git(nil, "rev-parse", "--short", "HEAD") }
	version := func() string {
		t.Helper()
		cmd := exec.Command("sh", script)
		cmd.Dir, cmd.Env = repo, env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	git(nil, "init", "-q")

	type step struct{ version, want string }
	var steps []step
	record := func(want string) {
		t.Helper()
		steps = append(steps, step{version(), want})
	}

	commit("2026-12-04T11:00:00+02:00")
	first := short()
	record(`0\.0\.0~git20261204\.090000\.` + first)
	// The same day, later: its hash sorts below the first one's, so only the time can
	// put it above.
	for i := 0; ; i++ {
		commit("2026-12-04T15:30:00Z")
		if short() < first {
			break
		}
		if i == 64 {
			t.Fatal("no commit with a lower hash in 64 tries")
		}
		git(nil, "reset", "-q", "--hard", "HEAD~")
	}
	record(`0\.0\.0~git20261204\.153000\.` + short())
	commit("2026-12-05T01:00:00Z")
	record(`0\.0\.0~git20261205\.010000\.` + short())
	git(nil, "tag", "-a", "-m", "0.1.0", "v0.1.0")
	record(`0\.1\.0`)
	for i := 1; i <= 10; i++ { // +9 < +10: numbers, not text
		commit(fmt.Sprintf("2026-12-06T10:%02d:00Z", i))
		record(fmt.Sprintf(`0\.1\.0\+%d\.g%s`, i, short()))
	}
	git(nil, "tag", "v0.2.0-rc1") // a lightweight tag counts too
	record(`0\.2\.0~rc1`)
	commit("2026-12-07T10:00:00Z")
	record(`0\.2\.0~rc1\+1\.g` + short())
	commit("2026-12-07T11:00:00Z")
	git(nil, "tag", "-a", "-m", "0.2.0", "v0.2.0")
	record(`0\.2\.0`)
	commit("2026-12-08T10:00:00Z")
	record(`0\.2\.0\+1\.g` + short())
	git(nil, "tag", "-a", "-m", "0.10.0", "v0.10.0")
	record(`0\.10\.0`)

	_, rpmErr := exec.LookPath("rpm")
	for i, s := range steps {
		if !regexp.MustCompile(`^` + s.want + `$`).MatchString(s.version) {
			t.Errorf("step %d: version %q, want %s", i, s.version, s.want)
		}
		if !rpmVersion.MatchString(s.version) {
			t.Errorf("step %d: %q is not an rpm Version", i, s.version)
		}
		if i == 0 {
			continue
		}
		prev := steps[i-1].version
		// As the packages carry them: nfpm appends the release (-1).
		cmd := exec.Command("dpkg", "--compare-versions", prev+"-1", "lt", s.version+"-1")
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 { // dpkg warns about a version it cannot parse
			t.Errorf("dpkg: %s is not below %s: %v %s", prev, s.version, err, out)
		}
		if rpmErr == nil {
			lua := fmt.Sprintf(`%%{lua:print(rpm.vercmp(%q, %q))}`, prev, s.version)
			if got := strings.TrimSpace(run(t, "rpm", "--eval", lua)); got != "-1" {
				t.Errorf("rpm: vercmp(%s, %s) = %s, want -1", prev, s.version, got)
			}
		}
	}
	if t.Failed() || testing.Verbose() {
		for i, s := range steps {
			t.Logf("%2d %s", i, s.version)
		}
	}
}
