package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestSocketActivationSurvivesRestart holds the listening socket as systemd does, hands
// it to lmtp-shadow (LISTEN_FDS, LISTEN_FDNAMES), kills the daemon, connects while it is
// down, and starts it again: the waiting connection is served, not refused.
func TestSocketActivationSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw"), []byte("x"), 0o600)
	example, _ := filepath.Abs("../../examples/directory.yaml")
	cfg := filepath.Join(dir, "postern.yaml")
	// The configured listener is a port nobody uses: only the inherited socket answers.
	os.WriteFile(cfg, []byte(fmt.Sprintf(`domains: [corp.example.test]
state_dir: %[1]s
directory: {backend: static, static: {file: %[2]s}}
telemetry: {listen: 127.0.0.1:%[3]d}
lmtp_shadow:
  listen: inet:127.0.0.1:%[4]d
  store: {lmtp: inet:127.0.0.1:1, imap: inet:127.0.0.1:1, admin_user: cyrus, admin_password_file: %[1]s/pw}
`, dir, example, testbench.FreePort(t), testbench.FreePort(t))), 0o600)

	start := func() *exec.Cmd {
		// LISTEN_PID must be the daemon's own pid: sh sets it, then execs postern.
		cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0" -c "$1" lmtp-shadow`, binary(t), cfg)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=lmtp-shadow")
		cmd.ExtraFiles = []*os.File{sock} // fd 3
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	greet := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}

	first := start()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if g := greet(c1); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("through the inherited socket: %q, want a 220 greeting", g)
	}
	c1.Close()

	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	waiting, err := net.Dial("tcp", ln.Addr().String()) // while nothing serves
	if err != nil {
		t.Fatalf("a connection during the restart was refused: %v", err)
	}
	defer waiting.Close()
	start()
	if g := greet(waiting); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("the connection made during the restart got %q, want a 220 greeting", g)
	}
}
