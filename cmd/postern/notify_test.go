package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestRunNotifiesSystemd checks the Type=notify protocol: READY=1 once serving,
// RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM.
func TestRunNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	example, _ := filepath.Abs("../../examples/directory.yaml")
	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`domains: [corp.example.test]
state_dir: %s
directory: {backend: static, static: {file: %s}}
telemetry: {listen: 127.0.0.1:%d}
`, dir, example, testbench.FreePort(t))), 0o600)

	override := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	cmd := exec.Command(binary(t), "-c", cfg, "run", "--telemetry", override)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	next := func() string {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := next(); !strings.Contains(got, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// --telemetry moves /metrics to the unit's own port.
	if resp, err := http.Get("http://" + override + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("--telemetry %s: %v", override, err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	if got := next(); !strings.Contains(got, "RELOADING=1") {
		t.Fatalf("on SIGHUP %q, want RELOADING=1", got)
	}
	if got := next(); !strings.Contains(got, "READY=1") {
		t.Fatalf("after the reload %q, want READY=1", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if got := next(); !strings.Contains(got, "STOPPING=1") {
		t.Fatalf("on SIGTERM %q, want STOPPING=1", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
