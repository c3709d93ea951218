// Package examples holds tests that keep the shipped examples true: the alert rules
// pass promtool, a real Prometheus scrapes a running daemon, and every dashboard query
// is valid PromQL against it.
package examples

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

func TestAlertRules(t *testing.T) {
	testbench.Require(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/postern.rules.yml"},
		{"test", "rules", "prometheus/postern.rules.test.yml"},
		{"check", "config", "prometheus/prometheus.yml"},
	} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestExampleConfigurationIsValid(t *testing.T) {
	out, err := exec.Command(testbench.Postern(t), "-c", "postern.yaml", "check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("examples/postern.yaml: %v\n%s", err, out)
	}
}

// TestPrometheusScrapesDaemon runs `postern run` on the example directory and a real
// Prometheus with the shipped rules, then asks it for postern's series and runs every
// query of the shipped dashboard.
func TestPrometheusScrapesDaemon(t *testing.T) {
	testbench.Require(t, "prometheus", "promtool")
	dir := testbench.Dir(t)
	tele := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	example, _ := filepath.Abs("directory.yaml")
	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("domains: [corp.example.test]\nstate_dir: %s\ndirectory: {backend: static, static: {file: %s}}\ntelemetry: {listen: %s}\n", dir, example, tele)), 0o600)
	testbench.StartPostern(t, cfg, "run")

	rules, _ := filepath.Abs("prometheus/postern.rules.yml")
	promCfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(promCfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
  - job_name: postern
    static_configs: [{targets: ['%s'], labels: {daemon: run}}]
`, rules, tele)), 0o644)
	web := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	p, err := testbench.Start("prometheus", logPath, nil, "prometheus", "--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+web)
	if err != nil {
		t.Fatal(err)
	}
	testbench.KeepLogs(t, logPath)
	t.Cleanup(p.Stop)

	url := "http://" + web
	query := func(q string) (string, error) {
		out, err := exec.Command("promtool", "query", "instant", url, q).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := query(`postern_directory_objects{kind="user",job="postern"}`)
		if err == nil && strings.Contains(out, "=> 4 @") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never saw postern's metrics: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("grafana/postern-dashboard.json")
	if err != nil || json.Unmarshal(b, &dash) != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	n := 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			q := strings.NewReplacer("$instance", ".*", "$__rate_interval", "1m").Replace(target.Expr)
			if out, err := query(q); err != nil {
				t.Errorf("dashboard panel %q: %s: %v\n%s", panel.Title, q, err, out)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("the dashboard has only %d queries", n)
	}
}
