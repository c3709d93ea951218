package testbench

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Postern builds cmd/postern once per test binary and returns its path, for tests that
// need a real process: signals, exit statuses, SIGKILL mid-delivery.
func Postern(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "postern-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "postern")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/postern")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/postern: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// StartPostern runs `postern -c cfg ARGS…` with its log in the config's folder (kept if
// the test fails) and stops it when the test ends.
func StartPostern(t testing.TB, cfg string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(cfg), "postern.log")
	p, err := Start("postern", logPath, nil, append([]string{Postern(t), "-c", cfg}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	KeepLogs(t, logPath)
	t.Cleanup(p.Stop)
	return p
}

// Ready reports whether the postern whose telemetry listens on addr says /readyz: its
// listeners are bound and its directory snapshot is loaded.
func Ready(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
