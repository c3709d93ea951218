package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestInstallUpgradeRemovePurge installs the .deb on this (throw-away, root) machine,
// upgrades it with an edited conffile, removes and purges it.
func TestInstallUpgradeRemovePurge(t *testing.T) {
	deb, _ := packages(t)
	testbench.Require(t, "dpkg", "dpkg-deb")
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "postern").Output(); err == nil && strings.Contains(string(out), "installed") {
		run(t, "dpkg", "-P", "postern")
	}

	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() { exec.Command("dpkg", "-P", "postern").Run() })
	if _, err := exec.Command("getent", "passwd", "_postern").Output(); err != nil {
		t.Fatal("the _postern user was not created")
	}
	assertOwner(t, "/etc/postern/postern.yaml", 0o640, "root", "_postern")
	assertOwner(t, "/etc/postern", 0o750|os.ModeDir, "root", "_postern")
	assertOwner(t, "/var/lib/postern", 0o750|os.ModeDir, "_postern", "_postern")
	// tmpfiles.d/postern.conf, applied by postinst: a daemon without its .socket unit
	// binds here, and its socket inherits group postfix (set-group-ID).
	if _, err := exec.Command("getent", "group", "postfix").Output(); err == nil {
		assertOwner(t, "/var/spool/postfix/postern", 0o750|os.ModeDir|os.ModeSetgid, "_postern", "postfix")
	}
	if v := run(t, "/usr/bin/postern", "version"); !strings.HasPrefix(v, "postern 0.") {
		t.Errorf("installed postern version: %q", v)
	}
	// With the binary in place, systemd-analyze verify has nothing to say about any unit.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		units, _ := filepath.Glob("/usr/lib/systemd/system/postern-*")
		out, _ := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
		if s := strings.TrimSpace(string(out)); s != "" || len(units) < 9 {
			t.Errorf("systemd-analyze verify of the %d installed units: %s", len(units), s)
		}
	}

	// An operator edits the configuration; the upgrade keeps it (--force-confold).
	f, _ := os.OpenFile("/etc/postern/postern.yaml", os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# edited by the operator\n")
	f.Close()
	run(t, "dpkg", "-i", "--force-confold", nextVersion(t, deb))
	if b, _ := os.ReadFile("/etc/postern/postern.yaml"); !strings.Contains(string(b), "edited by the operator") {
		t.Error("the upgrade replaced the edited configuration")
	}
	if v := run(t, "dpkg-query", "-W", "-f=${Version}", "postern"); !strings.HasSuffix(v, "+upgrade") {
		t.Errorf("installed version after upgrade: %q", v)
	}

	run(t, "dpkg", "-r", "postern")
	if _, err := os.Stat("/usr/bin/postern"); err == nil {
		t.Error("removal left /usr/bin/postern")
	}
	if _, err := os.Stat("/etc/postern/postern.yaml"); err != nil {
		t.Error("removal (not purge) deleted the configuration")
	}
	run(t, "dpkg", "-P", "postern")
	if _, err := os.Stat("/etc/postern"); err == nil {
		t.Error("purge left /etc/postern")
	}
	if _, err := exec.Command("getent", "passwd", "_postern").Output(); err != nil {
		t.Error("purge deleted the _postern user")
	}
	if _, err := os.Stat("/var/lib/postern"); err != nil {
		t.Error("purge deleted the state directory")
	}
}

// nextVersion repacks deb with a higher version, for an upgrade.
func nextVersion(t *testing.T, deb string) string {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	run(t, "dpkg-deb", "-R", deb, tree)
	ctl := filepath.Join(tree, "DEBIAN", "control")
	b, _ := os.ReadFile(ctl)
	b = regexp.MustCompile(`(?m)^Version: (.*)$`).ReplaceAll(b, []byte("Version: $1+upgrade"))
	os.WriteFile(ctl, b, 0o644)
	out := filepath.Join(dir, "next.deb")
	run(t, "dpkg-deb", "--root-owner-group", "-b", tree, out)
	return out
}

func assertOwner(t *testing.T, path string, mode os.FileMode, user, group string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	u := strings.TrimSpace(run(t, "id", "-nu", itoa(st.Uid)))
	g := strings.TrimSpace(strings.Split(run(t, "getent", "group", itoa(st.Gid)), ":")[0])
	if fi.Mode()&(os.ModeDir|os.ModePerm|os.ModeSetgid|os.ModeSetuid|os.ModeSticky) != mode || u != user || g != group {
		t.Errorf("%s: %v %s:%s, want %v %s:%s", path, fi.Mode(), u, g, mode, user, group)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
