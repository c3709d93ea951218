package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// binary is the postern binary built for this test run.
func binary(t *testing.T) string { return testbench.Postern(t) }

// daemon is a running `postern run` whose log is kept on failure.
type daemonProc struct {
	cmd     *exec.Cmd
	log     string
	metrics string
}

func startDaemon(t *testing.T, cfg, telemetryAddr string, args ...string) *daemonProc {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(cfg), "postern.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), append([]string{"-c", cfg}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, log: logPath, metrics: "http://" + telemetryAddr}
	testbench.KeepLogs(t, logPath)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		logf.Close()
	})
	return d
}

func (d *daemonProc) status(path string) int {
	resp, err := http.Get(d.metrics + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// metric returns the value of a series (name with labels, as exposed), or -1e9.
func (d *daemonProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1e9
}

// eventually polls cond until it holds; the deadline only bounds a hung test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRunServesThroughOutageAndReloads(t *testing.T) {
	tele := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	s, cfg := corpBench(t, "telemetry: {listen: "+tele+", log_format: json}\n")
	body, _ := os.ReadFile(cfg)
	good := strings.Replace(string(body), "max_stale: 1h", "max_stale: 8s", 1)
	os.WriteFile(cfg, []byte(good), 0o600)

	d := startDaemon(t, cfg, tele, "run")
	eventually(t, "/readyz says ready", func() bool { return d.status("/readyz") == 200 })
	if d.status("/healthz") != 200 {
		t.Fatal("/healthz is not 200")
	}
	if n := d.metric(t, `postern_directory_objects{kind="user"}`); n < 5 {
		t.Fatalf("postern_directory_objects{kind=user} = %v, want the seeded users", n)
	}

	// Directory outage: the snapshot keeps answering and its age grows.
	s.Stop()
	eventually(t, "a failed sync is counted", func() bool { return d.metric(t, `postern_directory_syncs_total{result="failure"}`) >= 1 })
	age := d.metric(t, "postern_directory_snapshot_age_seconds")
	eventually(t, "the snapshot age grows", func() bool { return d.metric(t, "postern_directory_snapshot_age_seconds") > age+1 })
	if code, res, stderr := runLookup(t, cfg, "all@corp.example.test"); code != exitOK || len(res.Targets) != 4 {
		t.Fatalf("lookup during the outage: exit %d %+v\n%s", code, res, stderr)
	}
	// Past max_stale: not ready, and lookups are temporary failures, never "unknown".
	eventually(t, "/readyz turns 503 past max_stale", func() bool { return d.status("/readyz") == 503 })
	if code, _, stderr := runLookup(t, cfg, "alice@corp.example.test"); code != exitTempFail || !strings.Contains(stderr, "max_stale") {
		t.Fatalf("lookup past max_stale: exit %d, want %d\n%s", code, exitTempFail, stderr)
	}
	s.Start(t)
	eventually(t, "ready again after the directory returns", func() bool { return d.status("/readyz") == 200 })

	// A broken reload keeps the running configuration; a good one is applied.
	os.WriteFile(cfg, []byte(good+"bogus_key: 1\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the failed reload is counted", func() bool { return d.metric(t, `postern_config_reloads_total{result="failure"}`) == 1 })
	if d.status("/readyz") != 200 {
		t.Fatal("a broken reload stopped the daemon serving")
	}
	os.WriteFile(cfg, []byte(good), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the good reload is counted", func() bool { return d.metric(t, `postern_config_reloads_total{result="success"}`) == 1 })

	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	log, _ := os.ReadFile(d.log)
	if strings.Contains(string(log), s.Password) {
		t.Fatal("the bind password appears in the log")
	}
	for _, want := range []string{"reload failed; keeping the running configuration", "directory sync failed", "stopped"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	cfg := writeConfig(t, goodLDAP+"bogus: 1\n")
	cmd := exec.Command(binary(t), "-c", cfg, "run")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitConfig {
		t.Fatalf("run with a bad configuration: %v, want exit %d\n%s", err, exitConfig, out)
	}
}
