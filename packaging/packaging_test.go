// Package packaging holds the tests of the .deb and .rpm built by `make packages`:
// contents, modes and owners, lintian and rpmlint, systemd unit checks, and a real
// install, upgrade, removal and purge with dpkg.
package packaging

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/postern-mail/postern/internal/testbench"
)

var (
	buildOnce sync.Once
	debPath   string
	rpmPath   string
	buildErr  string
)

// packages builds both packages once per test run.
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	testbench.Require(t, "dpkg-deb", "gzip")
	buildOnce.Do(func() {
		cmd := exec.Command("make", "-C", "..", "packages")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = string(out)
			return
		}
		debs, _ := filepath.Glob("../dist/postern_*_amd64.deb")
		rpms, _ := filepath.Glob("../dist/postern-*.x86_64.rpm")
		if len(debs) == 0 || len(rpms) == 0 {
			buildErr = "make packages made no .deb or .rpm in dist/"
			return
		}
		debPath, rpmPath = newest(debs), newest(rpms)
	})
	if buildErr != "" {
		t.Fatalf("make packages failed:\n%s", buildErr)
	}
	return debPath, rpmPath
}

func newest(paths []string) string {
	best, bestT := "", int64(0)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().UnixNano() > bestT {
			best, bestT = p, fi.ModTime().UnixNano()
		}
	}
	return best
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDebContents(t *testing.T) {
	deb, _ := packages(t)
	listing := run(t, "dpkg-deb", "-c", deb)
	want := []string{
		`-rwxr-xr-x root/root .* ./usr/bin/postern$`,
		`-rw-r----- root/_postern .* ./etc/postern/postern.yaml$`,
		`drwxr-x--- root/_postern .* ./etc/postern/$`,
		`-rw-r--r-- root/root .* ./usr/lib/systemd/system/postern-tcptable.socket$`,
		`-rw-r--r-- root/root .* ./usr/lib/systemd/system/postern-milter.service$`,
		`-rw-r--r-- root/root .* ./usr/lib/sysusers.d/postern.conf$`,
		`-rw-r--r-- root/root .* ./usr/share/man/man8/postern.8.gz$`,
		`-rw-r--r-- root/root .* ./usr/share/doc/postern/examples/postern.yaml$`,
		`drwxr-xr-x root/root .* ./usr/share/doc/postern/examples/postfix/$`,
		`-rw-r--r-- root/root .* ./usr/share/doc/postern/examples/prometheus/postern.rules.yml$`,
	}
	if strings.Contains(listing, "_test.go") {
		t.Error("the .deb ships test files")
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w).MatchString(listing) {
			t.Errorf("the .deb lacks %s\n%s", w, listing)
		}
	}
	conffiles := run(t, "dpkg-deb", "-f", deb, "Package")
	if strings.TrimSpace(conffiles) != "postern" {
		t.Errorf("package name %q", conffiles)
	}
	ctrl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctrl)
	cf, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if !strings.Contains(string(cf), "/etc/postern/postern.yaml") {
		t.Errorf("postern.yaml is not a conffile: %q", cf)
	}
}

func TestLintian(t *testing.T) {
	deb, _ := packages(t)
	testbench.Require(t, "lintian")
	checkTags(t, lintian, deb, "lintian-allow.txt")
}

func TestRPMLint(t *testing.T) {
	_, rpm := packages(t)
	testbench.Require(t, "rpmlint")
	checkTags(t, rpmlint, rpm, "rpmlint-allow.txt")
}

// A linter is a package checker, with how it reports its findings and how it exits.
type linter struct {
	cmd []string // the package's path is appended
	// tag matches a finding; group 1 is its severity (E or W), group 2 the tag.
	tag *regexp.Regexp
	// issues are the exit statuses that mean "found what failOn names"; 0 means it found
	// none. Any other status (a crash, a run-time error) is a failure of the linter.
	issues []int
	failOn string // the severities that make it exit with an issues status
	// summary, if set, is the line a finished run ends with; groups 1 and 2 are its
	// counts of errors and warnings, which must agree with the findings.
	summary *regexp.Regexp
}

var (
	// lintian 2.116: 0 normal, 1 run-time error, 2 a --fail-on condition was met.
	lintian = linter{
		cmd:    []string{"lintian", "--allow-root", "--fail-on", "error,warning", "--tag-display-limit", "0"},
		tag:    regexp.MustCompile(`^([EW]): \S+: (\S+)`),
		issues: []int{2},
		failOn: "EW",
	}
	// rpmlint 2.x: 0 no errors, 64 errors (65: all promoted from warnings), 66 badness
	// over the threshold; a file it cannot read is 3, a Python exception 1.
	rpmlint = linter{
		cmd:     []string{"rpmlint"},
		tag:     regexp.MustCompile(`^\S+: ([EW]): (\S+)`),
		issues:  []int{64, 65, 66},
		failOn:  "E",
		summary: regexp.MustCompile(`(?m)^ *\d+ packages and \d+ specfiles checked; (\d+) errors, (\d+) warnings`),
	}
)

// A finding is one line a linter reported, and its tag.
type finding struct{ line, tag string }

// lint runs l on pkg and returns its findings, or an error when it did not run to the
// end: not started, killed, an exit status that is neither 0 nor an issues status, or a
// status or summary that does not agree with the findings it printed.
func (l linter) lint(pkg string) ([]finding, error) {
	args := append(append([]string{}, l.cmd[1:]...), pkg)
	out, err := exec.Command(l.cmd[0], args...).CombinedOutput()
	status := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !exit.Exited() { // not started, or killed by a signal
			return nil, fmt.Errorf("%s did not run: %v\n%s", l.cmd[0], err, out)
		}
		status = exit.ExitCode()
		if !slices.Contains(l.issues, status) {
			return nil, fmt.Errorf("%s failed with exit status %d\n%s", l.cmd[0], status, out)
		}
	}
	var found []finding
	count := map[string]int{}
	failing := 0
	for _, line := range strings.Split(string(out), "\n") {
		if m := l.tag.FindStringSubmatch(line); m != nil {
			found = append(found, finding{line, m[2]})
			count[m[1]]++
			if strings.Contains(l.failOn, m[1]) {
				failing++
			}
		}
	}
	if (status != 0) != (failing > 0) {
		return nil, fmt.Errorf("%s exited %d with %d findings of severity %s\n%s", l.cmd[0], status, failing, l.failOn, out)
	}
	if l.summary != nil {
		m := l.summary.FindStringSubmatch(string(out))
		if m == nil {
			return nil, fmt.Errorf("%s printed no summary: it did not finish\n%s", l.cmd[0], out)
		}
		if m[1] != strconv.Itoa(count["E"]) || m[2] != strconv.Itoa(count["W"]) {
			return nil, fmt.Errorf("%s counted %s errors and %s warnings, the test read %d and %d\n%s",
				l.cmd[0], m[1], m[2], count["E"], count["W"], out)
		}
	}
	return found, nil
}

// checkTags runs l on pkg: it fails if the linter did not run properly, and for every
// reported tag that the allow-list does not name.
func checkTags(t *testing.T, l linter, pkg, allowFile string) {
	t.Helper()
	allowed := map[string]bool{}
	b, err := os.ReadFile(allowFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			allowed[l] = true
		}
	}
	found, err := l.lint(pkg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		if !allowed[f.tag] {
			t.Errorf("%s: %s (not in %s)", l.cmd[0], f.line, allowFile)
		}
	}
}

// TestLinterFailures: a linter that does not run, crashes or fails in its own way fails
// the check even though it printed no tag; its "found tags" status with tags is fine.
func TestLinterFailures(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, script string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const tagLine = "postern.x86_64: E: no-signature"
	const summary = " 1 packages and 0 specfiles checked; %d errors, %d warnings, 1 badness; has taken 0.1 s "
	for _, c := range []struct {
		name, script string
		ok           bool
	}{
		{"clean", "printf '" + fmt.Sprintf(summary, 0, 0) + "\\n'", true},
		{"tags with the issues status", "echo '" + tagLine + "'; printf '" + fmt.Sprintf(summary, 1, 0) + "\\n'; exit 64", true},
		{"only a warning, status 0", "echo 'postern.x86_64: W: no-documentation'; printf '" + fmt.Sprintf(summary, 0, 1) + "\\n'", true},
		{"run-time error, no output", "exit 1", false},
		{"traceback", "echo 'Traceback (most recent call last):' >&2; exit 1", false},
		{"cannot read the package", "echo '(none): E: fatal error while reading x.rpm'; exit 3", false},
		{"killed", "kill -SEGV $$", false},
		{"issues status without a tag", "printf '" + fmt.Sprintf(summary, 0, 0) + "\\n'; exit 64", false},
		{"an error tag but status 0", "echo '" + tagLine + "'; printf '" + fmt.Sprintf(summary, 1, 0) + "\\n'", false},
		{"no summary: cut short", "echo '" + tagLine + "'; exit 64", false},
		{"summary disagrees with the tags read", "echo '" + tagLine + "'; printf '" + fmt.Sprintf(summary, 2, 0) + "\\n'; exit 64", false},
	} {
		l := rpmlint
		l.cmd = []string{fake(strings.ReplaceAll(c.name, " ", "-"), c.script)}
		_, err := l.lint("x.rpm")
		if (err == nil) != c.ok {
			t.Errorf("%s: error %v, want ok=%v", c.name, err, c.ok)
		}
	}
	l := lintian
	l.cmd = []string{filepath.Join(dir, "not-installed")}
	if _, err := l.lint("x.deb"); err == nil {
		t.Error("a linter that cannot be started passed")
	}
	l.cmd = []string{fake("lintian-warns", "echo 'W: postern: unknown-field License'; exit 2")}
	if f, err := l.lint("x.deb"); err != nil || len(f) != 1 || f[0].tag != "unknown-field" {
		t.Errorf("lintian's issues status with a warning: %v %v", f, err)
	}
	l.cmd = []string{fake("lintian-quiet-2", "exit 2")}
	if _, err := l.lint("x.deb"); err == nil {
		t.Error("lintian's issues status without a tag passed")
	}
}

func TestRPM(t *testing.T) {
	_, rpm := packages(t)
	testbench.Require(t, "rpm")
	files := run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]", rpm)
	for _, w := range []string{"-rwxr-xr-x root root /usr/bin/postern", "-rw-r----- root _postern /etc/postern/postern.yaml"} {
		if !strings.Contains(files, w) {
			t.Errorf("the .rpm lacks %q\n%s", w, files)
		}
	}
	if cfg := run(t, "rpm", "-qp", "--configfiles", rpm); !strings.Contains(cfg, "/etc/postern/postern.yaml") {
		t.Errorf("postern.yaml is not a config file in the .rpm: %s", cfg)
	}
	if flags := run(t, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm); !regexp.MustCompile(`(?m)^cn /etc/postern/postern.yaml$`).MatchString(flags) {
		t.Errorf("postern.yaml is not %%config(noreplace):\n%s", flags)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, w := range []string{"preinstall scriptlet", "useradd", "postinstall scriptlet", "try-restart", "preuninstall scriptlet", "disable --now"} {
		if !strings.Contains(scripts, w) {
			t.Errorf("the .rpm scripts lack %q", w)
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on every unit; any line it prints fails.
// verify checks that ExecStart's program exists and is executable, and this machine
// need not have the package installed: the units are checked in a scratch directory
// with /usr/bin/postern, and nothing else, pointed at a stand-in program.
func TestUnitsVerify(t *testing.T) {
	testbench.Require(t, "systemd-analyze")
	dir := t.TempDir()
	stub := filepath.Join(dir, "bin", "postern")
	if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	units, _ := filepath.Glob("systemd/*")
	if len(units) < 10 {
		t.Fatalf("only %d units in systemd/", len(units))
	}
	var copies []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(u, ".service") && !strings.Contains(string(b), "\nExecStart=/usr/bin/postern ") {
			t.Errorf("%s: ExecStart is not /usr/bin/postern", u)
		}
		c := filepath.Join(dir, filepath.Base(u))
		b = []byte(strings.ReplaceAll(string(b), "=/usr/bin/postern ", "="+stub+" "))
		if err := os.WriteFile(c, b, 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, c)
	}
	// One unit at a time, so that each message is about the unit named.
	for _, c := range copies {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", c).CombinedOutput()
		if s := strings.TrimSpace(string(out)); err != nil || s != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(c), err, s)
		}
	}
}

// maxExposure is the highest systemd-analyze security score a service may have
// (0 = fully locked down, 10 = unprotected).
const maxExposure = 2.0

func TestUnitsSecurity(t *testing.T) {
	testbench.Require(t, "systemd-analyze")
	// Every service, the one-shot welcome too: it holds the same configuration and
	// secrets as the daemons.
	units, _ := filepath.Glob("systemd/postern-*.service")
	if len(units) < 5 {
		t.Fatalf("only %d services in systemd/", len(units))
	}
	for _, u := range units {
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", u).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v", u, err)
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("systemd-analyze security %s printed no score:\n%s", u, out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("%s: exposure %.1f", u, score)
		if score > maxExposure {
			t.Errorf("%s: exposure %.1f above %.1f\n%s", u, score, maxExposure, out)
		}
	}
}
