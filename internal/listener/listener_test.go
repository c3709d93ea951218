package listener

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

func TestOpenTCP(t *testing.T) {
	ln, err := Open(config.Listen{Network: "tcp", Address: "127.0.0.1:0"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestOpenUnixReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l := config.Listen{Network: "unix", Address: path}
	first, err := Open(l, "test")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	if _, err := Open(l, "test"); err == nil {
		t.Fatal("a socket another listener serves was taken over")
	}
	first.(*net.UnixListener).SetUnlinkOnClose(false)
	first.Close() // leaves a stale socket file, as a crash would
	second, err := Open(l, "test")
	if err != nil {
		t.Fatalf("a stale socket file blocked the start: %v", err)
	}
	second.Close()
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := Open(l, "test"); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

func TestOpenNothingConfigured(t *testing.T) {
	if _, err := Open(config.Listen{}, "test"); err == nil {
		t.Fatal("want an error when nothing is configured or passed")
	}
}

// The helper process: the test binary run again as another user, to open a socket or
// connect to one with that user's rights (see asUser).
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("LISTENER_TEST_PATH")
	switch os.Getenv("LISTENER_TEST_DO") {
	case "connect":
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	case "open":
		ln, err := Open(config.Listen{Network: "unix", Address: path}, "test")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false) // left for the test to look at
		ln.Close()
		os.Exit(0)
	}
}

// account is a system user the tests act as.
type account struct {
	name     string
	uid, gid uint32
}

func lookup(t *testing.T, name string) account {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		if testbench.InCI() {
			t.Fatal(err)
		}
		t.Skipf("no user %s: %v", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{name, uint32(uid), uint32(gid)}
}

// rootWithUsers skips unless the test runs as root and the users exist.
func rootWithUsers(t *testing.T, names ...string) (binary string, accounts []account) {
	t.Helper()
	if testing.Short() {
		t.Skip("changes owners and runs processes as other users")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes owners and runs processes as other users")
	}
	for _, n := range names {
		accounts = append(accounts, lookup(t, n))
	}
	// The test binary lives where only root can read; copy it where every user can.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	binary = filepath.Join(testbench.Dir(t), "listener.test")
	if err := os.WriteFile(binary, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return binary, accounts
}

// asUser runs the helper process as a (only its primary group, no supplementary ones)
// and reports what it printed if it failed.
func asUser(t *testing.T, binary string, a account, do, path string) error {
	t.Helper()
	cmd := exec.Command(binary, "-test.run=^TestHelperProcess$")
	cmd.Dir = filepath.Dir(binary)
	cmd.Env = []string{"LISTENER_TEST_DO=" + do, "LISTENER_TEST_PATH=" + path, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s as %s: %v: %s", do, a.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dirOwned makes a directory for sockets, owned as given.
func dirOwned(t *testing.T, parent string, uid, gid uint32, mode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(parent, "postern")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // after chown, which clears set-group-ID
		t.Fatal(err)
	}
	return dir
}

func assertSocket(t *testing.T, path string, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: %v %d:%d, want a socket 0660 %d:%d", path, fi.Mode(), st.Uid, st.Gid, uid, gid)
	}
}

// TestOpenUnixTakesDirectoryGroup: a daemon running as root binds in a directory of
// group postfix that is not set-group-ID; the socket gets group postfix and mode 0660,
// so user postfix can connect and another user cannot, as with the package's .socket
// units (SocketGroup=postfix, SocketMode=0660).
func TestOpenUnixTakesDirectoryGroup(t *testing.T) {
	binary, users := rootWithUsers(t, "postfix", "nobody")
	postfix, nobody := users[0], users[1]
	if postfix.gid == uint32(os.Getegid()) {
		t.Skip("group postfix is this process's group")
	}
	dir := dirOwned(t, testbench.Dir(t), 0, postfix.gid, 0o755) // nobody may look in, not connect
	path := filepath.Join(dir, "milter.sock")
	ln, err := Open(config.Listen{Network: "unix", Address: path}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	assertSocket(t, path, 0, postfix.gid)
	if err := asUser(t, binary, postfix, "connect", path); err != nil {
		t.Errorf("postfix cannot connect: %v", err)
	}
	if err := asUser(t, binary, nobody, "connect", path); err == nil {
		t.Error("nobody, not in group postfix, could connect")
	}
}

// TestOpenUnixAsDaemonUser: the daemon runs as its own unprivileged user (nobody stands
// in for _postern), binding in a directory set up as the package's tmpfiles.d entry
// does (_postern:postfix, 2750): the socket gets group postfix without any privilege.
// Without the set-group-ID bit it cannot, and Open says so instead of leaving a socket
// Postfix cannot use.
func TestOpenUnixAsDaemonUser(t *testing.T) {
	binary, users := rootWithUsers(t, "postfix", "nobody")
	postfix, daemon := users[0], users[1]

	dir := dirOwned(t, testbench.Dir(t), daemon.uid, postfix.gid, 0o750|os.ModeSetgid)
	path := filepath.Join(dir, "policy.sock")
	if err := asUser(t, binary, daemon, "open", path); err != nil {
		t.Fatal(err)
	}
	assertSocket(t, path, daemon.uid, postfix.gid)
	// The directory lets postfix in: a socket served here (in place of the stale one the
	// helper left) takes connections from it.
	ln, err := Open(config.Listen{Network: "unix", Address: path}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := asUser(t, binary, postfix, "connect", path); err != nil {
		t.Errorf("postfix cannot connect: %v", err)
	}

	plain := dirOwned(t, testbench.Dir(t), daemon.uid, postfix.gid, 0o750)
	err = asUser(t, binary, daemon, "open", filepath.Join(plain, "policy.sock"))
	if err == nil || !strings.Contains(err.Error(), "set-group-ID") {
		t.Errorf("a socket whose group could not be set: %v, want an error naming set-group-ID", err)
	}
}

// TestOpenUnixWorldWritableDir: in a directory like /tmp the group grants nothing, so
// the socket keeps the daemon's group.
func TestOpenUnixWorldWritableDir(t *testing.T) {
	_, users := rootWithUsers(t, "postfix")
	dir := dirOwned(t, t.TempDir(), 0, users[0].gid, 0o777|os.ModeSticky)
	path := filepath.Join(dir, "s.sock")
	ln, err := Open(config.Listen{Network: "unix", Address: path}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	assertSocket(t, path, 0, uint32(os.Getegid()))
}
