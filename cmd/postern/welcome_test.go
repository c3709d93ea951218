package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWelcomeExitStatus drives `postern welcome` as the timer does, step by step, and
// checks the exit status each outcome promises: 0 done, 1 no such user, 2 configuration,
// 75 temporary failure.
func TestWelcomeExitStatus(t *testing.T) {
	dir := t.TempDir()
	examples, err := filepath.Abs("../../examples/welcome")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	if err := os.WriteFile(filepath.Join(dir, "directory.yaml"), []byte(fmt.Sprintf(`users:
  - {login: zed, mail: zed@corp.example.test, created: %s, attrs: {displayName: "Zed Zhou 周"}}
`, created)), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: the submission server is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	base := fmt.Sprintf(`domains: [corp.example.test]
state_dir: %s
directory: {backend: static, static: {file: directory.yaml}}
`, filepath.Join(dir, "state"))
	welcome := fmt.Sprintf(`welcome:
  from: "IT Service Desk <it@corp.example.test>"
  html_template_file: %s/welcome.html
  text_template_file: %s/welcome.txt
  smtp: {server: %q, allow_plaintext: true, timeout: 2s}
`, examples, examples, down)
	configured := filepath.Join(dir, "postern.yaml")
	unconfigured := filepath.Join(dir, "bare.yaml")
	os.WriteFile(configured, []byte(base+welcome), 0o600)
	os.WriteFile(unconfigured, []byte(base), 0o600)

	steps := []struct {
		name string
		args []string
		want int
		out  string // in stdout or stderr
	}{
		{"no welcome section", []string{"-c", unconfigured, "welcome"}, exitConfig, "not configured"},
		{"--out without --dry-run", []string{"-c", configured, "welcome", "--out", dir}, exitConfig, "usage"},
		{"a bad --backfill date", []string{"-c", configured, "welcome", "--backfill", "last week"}, exitConfig, "--backfill"},
		{"the first run records and sends nothing", []string{"-c", configured, "welcome"}, exitOK, "first run"},
		{"an unknown login", []string{"-c", configured, "welcome", "--user", "nobody"}, exitNotFound, `no user "nobody"`},
		{"a preview", []string{"-c", configured, "welcome", "--dry-run", "--user", "zed"}, exitOK, "Subject: Welcome, Zed Zhou 周"},
		{"the server is down", []string{"-c", configured, "welcome", "--user", "zed"}, exitTempFail, "connection refused"},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		code := run(s.args, &stdout, &stderr)
		if code != s.want || !strings.Contains(stdout.String()+stderr.String(), s.out) {
			t.Errorf("%s: exit %d (want %d), output lacks %q?\nstdout:\n%s\nstderr:\n%s", s.name, code, s.want, s.out, stdout.String(), stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "welcome.json")); err != nil {
		t.Errorf("no ledger after the first run: %v", err)
	}
	// Failed runs: the unknown login and the server that is down; one letter failed.
	m, err := os.ReadFile(filepath.Join(dir, "state", "welcome.prom"))
	if err != nil || !bytes.Contains(m, []byte(`postern_welcome_runs_total{result="failure"} 2`)) ||
		!bytes.Contains(m, []byte("postern_welcome_letter_failures_total 1")) {
		t.Errorf("metrics textfile after a failed run: %v\n%s", err, m)
	}
}
