// Package testbench starts private instances of the real servers postern works with
// (Samba AD, Postfix, Redis, Cyrus IMAP, Dovecot) on 127.0.0.1 under a temporary directory, for
// integration tests, and stops them when the test ends.
//
// A server whose program is missing skips the test on a developer's machine and fails it
// when CI=true, so CI can never pass by skipping. Server logs of a failed test are kept
// under $POSTERN_TEST_LOGS (default /tmp/postern-test-logs).
package testbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI, where a missing server is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test (fails it under CI) unless every program is on PATH or is an
// absolute path that exists. In -short mode (make unit) it always skips.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("testbench: integration test skipped in -short mode")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if InCI() {
				t.Fatalf("testbench: %s is not installed (run scripts/install-deps.sh as root)", p)
			}
			t.Skipf("testbench: %s is not installed (run scripts/install-deps.sh as root)", p)
		}
	}
}

// Dir returns a new empty directory that servers which drop privileges (cyrus, postfix)
// can traverse: mode 0755 on every level, removed when the test ends.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "postern-bench-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitTCP waits until addr accepts a TCP connection.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbench: nothing answers on %s after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Process is a server started in its own session (process group), so stopping it stops
// everything it forked.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Start runs argv in its own session with stdout and stderr appended to logPath.
func Start(name, logPath string, env []string, argv ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testbench: start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id of the server's leader.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// PeakRSS is the process's peak resident set size (VmHWM) in KiB.
func (p *Process) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("testbench: no VmHWM in /proc/%d/status", p.Pid())
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop sends SIGTERM to the process group and SIGKILL if it has not ended within 10 s.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// Wait waits for the process to end and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// KeepLogs registers a cleanup that, if the test failed, copies the named log files (or
// every file under a named directory) into the kept-logs directory and says where.
func KeepLogs(t testing.TB, paths ...string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		root := os.Getenv("POSTERN_TEST_LOGS")
		if root == "" {
			root = filepath.Join(os.TempDir(), "postern-test-logs")
		}
		dst := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		for _, p := range paths {
			_ = copyTree(p, filepath.Join(dst, filepath.Base(p)))
		}
		t.Logf("testbench: server logs kept in %s", dst)
	})
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		return errors.Join(err, out.Close())
	})
}
