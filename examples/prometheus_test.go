package examples

// Tests of the shipped monitoring: examples/prometheus (scrape configuration, alert rules
// and their promtool unit tests) and examples/grafana (the dashboard).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
	"github.com/postern-mail/postern/internal/testbench"
	lmtpshadow "github.com/postern-mail/postern/lmtp-shadow"
	"github.com/postern-mail/postern/milter"
	"github.com/postern-mail/postern/policyd"
	"github.com/postern-mail/postern/tcptable"
	"github.com/postern-mail/postern/welcome"
)

const (
	rulesFile     = "prometheus/postern.rules.yml"
	rulesTestFile = "prometheus/postern.rules.test.yml"
	scrapeFile    = "prometheus/prometheus.yml"
	dashboardFile = "grafana/postern-dashboard.json"
)

func TestAlertRules(t *testing.T) {
	testbench.Require(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
		{"check", "config", scrapeFile},
	} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTested: postern.rules.test.yml has, for every alert, a case where it
// fires and one where it must not, and names no alert that does not exist (promtool
// would pass a misspelt alertname expected not to fire).
func TestEveryAlertIsTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert string }
		}
	}
	readYAML(t, rulesFile, &rules)
	var tests struct {
		Tests []struct {
			Name          string
			AlertRuleTest []struct {
				EvalTime  string `yaml:"eval_time"`
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, rulesTestFile, &tests)

	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				fires[r.Alert], quiet[r.Alert] = false, false
			}
		}
	}
	if len(fires) == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if _, ok := fires[a.Alertname]; !ok {
				t.Errorf("%s: test %q at %s: no alert %q in %s", rulesTestFile, tc.Name, a.EvalTime, a.Alertname, rulesFile)
				continue
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fires)) {
		if !fires[name] {
			t.Errorf("%s: no test where %s fires", rulesTestFile, name)
		}
		if !quiet[name] {
			t.Errorf("%s: no test where %s must not fire", rulesTestFile, name)
		}
	}
}

// TestMonitoringUsesRealMetrics: every metric and label name that the alert rules, their
// unit tests and the dashboard use is one postern exposes, so renaming a metric or a label
// in the code fails here rather than silencing an alert or blanking a panel. What postern
// exposes is read from the code itself, not from a list:
//   - the collectors the directory and the daemons register, built in-process with the
//     constructors `postern run` uses (vectors without a series yet included);
//   - the /metrics of a real `postern run`, for what cmd/postern registers itself;
//   - the textfile a first run of postern welcome writes.
//
// Label values (result="deferred") are not checked.
func TestMonitoringUsesRealMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg, tele := writeDaemonsConfig(t, dir)
	code := exposed{}
	code.addRegistered(t, cfg)
	code.addWelcomeTextfile(t, cfg)

	p := testbench.StartPostern(t, cfg, "run")
	if err := testbench.WaitTCP(tele, 30*time.Second); err != nil {
		t.Fatalf("postern run: %v (log: %s)", err, p.LogPath)
	}
	code.addScrape(t, "http://"+tele+"/metrics")

	// Sanity: each source contributed.
	for _, name := range []string{"postern_directory_objects", "postern_tcptable_lookups_total",
		"postern_policyd_rate_limit_store_errors_total", "postern_milter_messages_total",
		"postern_shadow_store_duration_seconds", "postern_build_info", "postern_welcome_last_success_timestamp_seconds"} {
		if _, ok := code[name]; !ok {
			t.Fatalf("%s was not found among what postern exposes: the test no longer sees all of it", name)
		}
	}

	c := refChecker{t: t, code: code, target: targetLabels(t)}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
				Annotations         map[string]string
			}
		}
	}
	readYAML(t, rulesFile, &rules)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			var used []string
			for _, text := range r.Annotations {
				for _, m := range templateLabel.FindAllStringSubmatch(text, -1) {
					used = append(used, m[1])
				}
			}
			c.check(rulesFile+": "+r.Alert+r.Record, r.Expr, used...)
			n++
		}
	}

	var tests struct {
		Tests []struct {
			Name        string
			InputSeries []struct{ Series string } `yaml:"input_series"`
		}
	}
	readYAML(t, rulesTestFile, &tests)
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			c.check(fmt.Sprintf("%s: test %q: input series", rulesTestFile, tc.Name), s.Series)
			n++
		}
	}

	d := readDashboard(t)
	for _, q := range d.queries() {
		var used []string
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			used = append(used, m[1])
		}
		c.check(dashboardFile+": panel "+q.panel, grafanaToPromQL(q.expr), used...)
		n++
	}
	for _, v := range d.variables() {
		metric, label, ok := labelValues(v.query)
		if !ok {
			t.Errorf("%s: variable %s: %q is not label_values(METRIC, LABEL): teach this test to read it", dashboardFile, v.name, v.query)
			continue
		}
		c.check(dashboardFile+": variable "+v.name, grafanaToPromQL(metric), label)
		n++
	}
	if n < 30 {
		t.Errorf("only %d expressions checked: the files were not read", n)
	}
}

// TestPrometheusScrapesDaemon runs `postern run` with every daemon (tcptable, policyd,
// milter, lmtp-shadow) on the example directory and a real Prometheus with the shipped
// rules, then asks it for each daemon's series, runs every query of the shipped dashboard
// and checks that every rule evaluates without error and none fires.
func TestPrometheusScrapesDaemon(t *testing.T) {
	testbench.Require(t, "prometheus", "promtool")
	dir := testbench.Dir(t)
	cfg, tele := writeDaemonsConfig(t, dir)
	testbench.StartPostern(t, cfg, "run")

	rules, _ := filepath.Abs(rulesFile)
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, fmt.Appendf(nil, `global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
  - job_name: postern
    static_configs: [{targets: ['%s'], labels: {daemon: run}}]
`, rules, tele), 0o644); err != nil {
		t.Fatal(err)
	}
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

	// One series of each daemon, from the same scrape as the directory's.
	for _, c := range []struct{ daemon, query string }{
		{"tcptable", `postern_tcptable_connections{job="postern",protocol="socketmap"}`},
		{"policyd", `postern_policyd_connections{job="postern"}`},
		{"milter", `postern_milter_messages_total{job="postern",direction="outbound",action="accept"}`},
		{"lmtp-shadow", `postern_shadow_copies_total{job="postern",direction="outbound",result="deferred"}`},
		{"postern run", `postern_build_info{job="postern"}`},
	} {
		name, _, _ := strings.Cut(c.query, "{")
		if out, err := query(c.query); err != nil || !strings.Contains(out, name+"{") || !strings.Contains(out, "=>") {
			t.Errorf("%s: Prometheus has no %s: %v\n%s", c.daemon, c.query, err, out)
		}
	}

	d := readDashboard(t)
	n := 0
	for _, q := range d.queries() {
		if out, err := query(grafanaToPromQL(q.expr)); err != nil {
			t.Errorf("dashboard panel %q: %s: %v\n%s", q.panel, q.expr, err, out)
		}
		n++
	}
	if n < 10 {
		t.Errorf("the dashboard has only %d queries", n)
	}
	for _, v := range d.variables() {
		metric, label, ok := labelValues(v.query)
		if !ok {
			t.Errorf("dashboard variable %s: %q is not label_values(METRIC, LABEL)", v.name, v.query)
			continue
		}
		if out, err := query(grafanaToPromQL(metric)); err != nil || !strings.Contains(out, label+"=") {
			t.Errorf("dashboard variable %s: %s would offer no value: %v\n%s", v.name, v.query, err, out)
		}
	}

	checkRulesHealthy(t, url)
	if out, err := query(`ALERTS{alertstate="firing"}`); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("alerts fire against a healthy postern: %v\n%s", err, out)
	}
}

// checkRulesHealthy waits until Prometheus has evaluated every shipped rule and fails the
// test for any that errs at evaluation (which promtool's static checks cannot see).
func checkRulesHealthy(t *testing.T, url string) {
	t.Helper()
	var want int
	var file struct{ Groups []struct{ Rules []any } }
	readYAML(t, rulesFile, &file)
	for _, g := range file.Groups {
		want += len(g.Rules)
	}
	type rule struct {
		Name, Health, LastError string
		LastEvaluation          time.Time
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var resp struct {
			Data struct {
				Groups []struct{ Rules []rule }
			}
		}
		err := getJSON(url+"/api/v1/rules", &resp)
		var rules []rule
		for _, g := range resp.Data.Groups {
			rules = append(rules, g.Rules...)
		}
		evaluated := err == nil && len(rules) == want
		for _, r := range rules {
			evaluated = evaluated && !r.LastEvaluation.IsZero()
		}
		if evaluated {
			for _, r := range rules {
				if r.Health != "ok" {
					t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not evaluated the %d rules of %s: %v (%d loaded)", want, rulesFile, err, len(rules))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// writeDaemonsConfig writes dir/postern.yaml: the example directory, every daemon of
// `postern run` on free loopback ports (no Samba, Redis or mail store needed) and a
// welcome section. It returns the file and the telemetry address.
func writeDaemonsConfig(t *testing.T, dir string) (cfg, telemetry string) {
	t.Helper()
	example, _ := filepath.Abs("directory.yaml")
	letters, _ := filepath.Abs("welcome")
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t)) }
	telemetry = port()
	y := fmt.Sprintf(`domains: [corp.example.test]
state_dir: %[1]s
directory: {backend: static, static: {file: %[2]s}}
telemetry: {listen: %[3]s, log_format: json}
tcptable: {socketmap: "inet:%[4]s"}
policyd: {listen: "inet:%[5]s"}
milter: {listen: "inet:%[6]s"}
# lmtp-shadow dials the store only to deliver a copy, and none comes: nothing listens there.
lmtp_shadow:
  listen: "inet:%[7]s"
  store: {kind: dovecot, lmtp: "unix:%[1]s/no-store.sock"}
# A first welcome run records who exists and sends nothing: the server is never dialled.
welcome:
  from: "IT Service Desk <it@corp.example.test>"
  html_template_file: %[8]s/welcome.html
  text_template_file: %[8]s/welcome.txt
  smtp: {server: "%[9]s", allow_plaintext: true}
`, dir, example, telemetry, port(), port(), port(), port(), letters, port())
	cfg = filepath.Join(dir, "postern.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, telemetry
}

// exposed is what postern exposes: metric family name -> type and label names.
type exposed map[string]family

type family struct {
	typ    string // counter, gauge, histogram, summary, untyped
	labels map[string]bool
}

func (e exposed) add(name, typ string, labels ...string) {
	f, ok := e[name]
	if !ok {
		f = family{typ: typ, labels: map[string]bool{}}
	}
	for _, l := range labels {
		f.labels[l] = true
	}
	e[name] = f
}

// addFamilies adds families as expfmt and Gather return them.
func (e exposed) addFamilies(mfs []*dto.MetricFamily) {
	for _, mf := range mfs {
		var labels []string
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
		}
		e.add(mf.GetName(), strings.ToLower(mf.GetType().String()), labels...)
	}
}

// recorder is the Registerer handed to the daemons: it registers into a registry and
// keeps the collectors, whose descriptions include vectors that have no series yet.
type recorder struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// descString matches prometheus.Desc.String(), the only public view of a description's
// name and label names.
var descString = regexp.MustCompile(`(?s)^Desc\{fqName: "([^"]*)", .*, constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// addRegistered builds the directory and every daemon as `postern run` does (without
// starting them) and adds what they register.
func (e exposed) addRegistered(t *testing.T, cfg string) {
	t.Helper()
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{reg: prometheus.NewRegistry()}
	log := zap.NewNop()
	dir, resolver, err := directory.FromConfig(c, log, rec)
	if err != nil {
		t.Fatal(err)
	}
	deps := service.Deps{Config: c, Log: log, Registry: rec, Directory: dir, Resolver: resolver}
	// The daemons of cmd/postern/daemons.go (package main: not importable); a new daemon
	// belongs here too, or only the series it creates at start are seen (by the scrape).
	for _, build := range []service.Constructor{tcptable.Build, policyd.Build, milter.New, lmtpshadow.Build} {
		if _, err := build(deps); err != nil {
			t.Fatal(err)
		}
	}

	gathered, err := rec.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	e.addFamilies(gathered)
	for _, col := range rec.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { col.Describe(ch); close(ch) }()
		for d := range ch {
			m := descString.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the metric description %s (has client_golang changed Desc.String?)", d)
			}
			var labels []string
			for _, pair := range strings.Split(m[2], ",") {
				if name, _, ok := strings.Cut(pair, "="); ok {
					labels = append(labels, name)
				}
			}
			for _, l := range strings.Split(m[3], ",") {
				if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
					labels = append(labels, l)
				}
			}
			typ := ""
			if f, ok := e[m[1]]; ok {
				typ = f.typ
			} else {
				switch col.(type) {
				case *prometheus.CounterVec:
					typ = "counter"
				case *prometheus.GaugeVec:
					typ = "gauge"
				case *prometheus.HistogramVec:
					typ = "histogram"
				case *prometheus.SummaryVec:
					typ = "summary"
				default:
					t.Fatalf("%s: cannot tell the type of %T", m[1], col)
				}
			}
			e.add(m[1], typ, labels...)
		}
	}
}

// addWelcomeTextfile runs postern welcome once, as the timer does (a first run: the
// ledger is started, no letter is sent), and adds the series of the textfile it writes.
func (e exposed) addWelcomeTextfile(t *testing.T, cfg string) {
	t.Helper()
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := directory.OptionsFrom(c, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.StateFile = ""
	job, err := welcome.New(welcome.Options{Config: c.Welcome, Directory: directory.New(opts)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(context.Background(), welcome.Request{}); err != nil {
		t.Fatalf("postern welcome: %v", err)
	}
	f, err := os.Open(c.Welcome.MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.addText(t, c.Welcome.MetricsFile, f)
}

// addScrape adds the families served at url.
func (e exposed) addScrape(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	e.addText(t, url, resp.Body)
}

func (e exposed) addText(t *testing.T, where string, r io.Reader) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	e.addFamilies(slices.Collect(maps.Values(mfs)))
}

// series returns the label names of a series name as PromQL sees it: a counter or gauge
// by its name, a histogram's _bucket (with le), _sum and _count, a summary by its name
// (with quantile), _sum and _count.
func (e exposed) series(name string) (map[string]bool, bool) {
	with := func(f family, extra ...string) map[string]bool {
		m := maps.Clone(f.labels)
		for _, l := range extra {
			m[l] = true
		}
		return m
	}
	if f, ok := e[name]; ok {
		switch f.typ {
		case "histogram":
		case "summary":
			return with(f, "quantile"), true
		default:
			return with(f), true
		}
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(name, suffix)
		f, ok := e[base]
		switch {
		case !found || !ok:
		case f.typ == "histogram" && suffix == "_bucket":
			return with(f, "le"), true
		case f.typ == "histogram" || (f.typ == "summary" && suffix != "_bucket"):
			return with(f), true
		}
	}
	return nil, false
}

// prometheusSeries are the series Prometheus makes for every target (beside its labels).
var prometheusSeries = []string{"up"}

// targetLabels are the labels Prometheus puts on every series it scrapes: job, instance
// and the static_configs labels of the shipped scrape configuration.
func targetLabels(t *testing.T) map[string]bool {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Labels map[string]string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, scrapeFile, &cfg)
	labels := map[string]bool{"job": true, "instance": true}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for l := range st.Labels {
				labels[l] = true
			}
		}
	}
	return labels
}

// refChecker checks the names an expression uses against what postern exposes.
type refChecker struct {
	t      *testing.T
	code   exposed
	target map[string]bool
}

// check reports every metric of expr that postern does not expose, every label a selector
// matches that its metric does not have, and every label used in a grouping (by, on, …)
// or in the result (used: annotations, legends) that none of expr's series has.
func (c refChecker) check(where, expr string, used ...string) {
	c.t.Helper()
	refs, err := parsePromQL(expr)
	if err != nil {
		c.t.Errorf("%s: %v: %s", where, err, expr)
		return
	}
	if len(refs.selectors) == 0 {
		c.t.Errorf("%s: no metric found in %s", where, expr)
	}
	available := maps.Clone(c.target)
	for _, s := range refs.selectors {
		var labels map[string]bool
		if slices.Contains(prometheusSeries, s.metric) {
			labels = map[string]bool{}
		} else if l, ok := c.code.series(s.metric); ok {
			labels = l
		} else {
			c.t.Errorf("%s: postern exposes no %s", where, s.metric)
			continue
		}
		for _, l := range s.labels {
			if !labels[l] && !c.target[l] {
				c.t.Errorf("%s: %s has no label %q", where, s.metric, l)
			}
		}
		maps.Copy(available, labels)
	}
	for _, l := range slices.Concat(refs.grouping, used) {
		if !available[l] {
			c.t.Errorf("%s: label %q is on none of the series of %s", where, l, expr)
		}
	}
}

// The labels templates use: {{ $labels.daemon }} in annotations, {{direction}} in legends.
var (
	templateLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	legendLabel   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// promqlRefs are the names a PromQL expression uses.
type promqlRefs struct {
	selectors []selectorRef
	grouping  []string // by, without, on, ignoring, group_left, group_right
}

type selectorRef struct {
	metric string
	labels []string // label names of its matchers
}

var (
	promqlAggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
	promqlGrouping = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
)

// parsePromQL finds the selectors and grouping labels of a PromQL expression. It is no
// parser (promtool and Prometheus check the syntax); it only tells metric names, label
// names and function names apart.
func parsePromQL(q string) (promqlRefs, error) {
	toks, err := lexPromQL(q)
	if err != nil {
		return promqlRefs{}, err
	}
	var refs promqlRefs
	// labelList reads "( a, b, … )" from toks[i] and returns the index of ")".
	labelList := func(i int, into *[]string) (int, error) {
		for i++; i < len(toks) && toks[i].text != ")"; i++ {
			if toks[i].kind == tokIdent {
				*into = append(*into, toks[i].text)
			}
		}
		if i == len(toks) {
			return i, fmt.Errorf("unclosed (")
		}
		return i, nil
	}
	// matchers reads `{ name op "value", … }` from toks[i] and returns the index of "}".
	matchers := func(i int, s *selectorRef) (int, error) {
		expectName := true
		for i++; i < len(toks) && toks[i].text != "}"; i++ {
			switch {
			case toks[i].text == ",":
				expectName = true
			case expectName && (toks[i].kind == tokIdent || toks[i].kind == tokString):
				name := strings.Trim(toks[i].text, "\"'`")
				if name == "__name__" && i+2 < len(toks) && toks[i+1].text == "=" && toks[i+2].kind == tokString {
					s.metric = strings.Trim(toks[i+2].text, "\"'`")
				} else {
					s.labels = append(s.labels, name)
				}
				expectName = false
			}
		}
		if i == len(toks) {
			return i, fmt.Errorf("unclosed {")
		}
		return i, nil
	}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1].text
		}
		switch {
		case tok.text == "[":
			for i < len(toks) && toks[i].text != "]" {
				i++
			}
		case tok.text == "{":
			var s selectorRef
			if i, err = matchers(i, &s); err != nil {
				return refs, err
			}
			if s.metric == "" {
				return refs, fmt.Errorf("a selector without a metric name")
			}
			refs.selectors = append(refs.selectors, s)
		case tok.kind != tokIdent:
		case slices.Contains(promqlGrouping, strings.ToLower(tok.text)):
			if next == "(" {
				if i, err = labelList(i+1, &refs.grouping); err != nil {
					return refs, err
				}
			}
		case slices.Contains(promqlKeywords, strings.ToLower(tok.text)),
			slices.Contains(promqlAggregations, strings.ToLower(tok.text)),
			next == "(": // a function
		default:
			s := selectorRef{metric: tok.text}
			if next == "{" {
				if i, err = matchers(i+1, &s); err != nil {
					return refs, err
				}
			}
			refs.selectors = append(refs.selectors, s)
		}
	}
	return refs, nil
}

type tokKind int

const (
	tokPunct tokKind = iota
	tokIdent
	tokString
	tokNumber
)

type token struct {
	kind tokKind
	text string
}

func lexPromQL(q string) ([]token, error) {
	var toks []token
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (!first && '0' <= c && c <= '9')
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(q) && q[j] != c {
				if q[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(q) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, token{tokString, q[i : j+1]})
			i = j + 1
		case isIdent(c, true):
			j := i
			for j < len(q) && isIdent(q[j], j == i) {
				j++
			}
			toks = append(toks, token{tokIdent, q[i:j]})
			i = j
		case '0' <= c && c <= '9' || c == '.':
			// numbers (0.99, 1e-6, 0x1f) and durations (5m, 1h30m)
			j := i
			for j < len(q) && (q[j] == '.' || isIdent(q[j], false) ||
				((q[j] == '+' || q[j] == '-') && (q[j-1] == 'e' || q[j-1] == 'E'))) {
				j++
			}
			toks = append(toks, token{tokNumber, q[i:j]})
			i = j
		default:
			toks = append(toks, token{tokPunct, string(c)})
			i++
		}
	}
	return toks, nil
}

// grafanaToPromQL replaces the dashboard's variables with what Grafana would put there.
func grafanaToPromQL(expr string) string {
	expr = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h").Replace(expr)
	return grafanaVariable.ReplaceAllString(expr, ".*")
}

var grafanaVariable = regexp.MustCompile(`\$\{[a-zA-Z0-9_]+(:[a-z]+)?\}|\$[a-zA-Z_][a-zA-Z0-9_]*`)

// labelValues reads a variable query label_values(METRIC, LABEL).
func labelValues(q string) (metric, label string, ok bool) {
	m := regexp.MustCompile(`^\s*label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`).FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

type dashboard struct {
	Panels     []dashboardPanel
	Templating struct {
		List []struct {
			Name, Type string
			Query      json.RawMessage
		}
	}
}

type dashboardPanel struct {
	Title   string
	Targets []struct {
		Expr, LegendFormat string
	}
	Panels []dashboardPanel // a collapsed row's
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	return d
}

type dashboardQuery struct{ panel, expr, legend string }

// queries lists every panel's queries, in rows too.
func (d dashboard) queries() []dashboardQuery {
	var out []dashboardQuery
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			for _, target := range p.Targets {
				if target.Expr != "" {
					out = append(out, dashboardQuery{p.Title, target.Expr, target.LegendFormat})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type dashboardVariable struct{ name, query string }

// variables lists the query variables ({"query": "…"} or {"query": {"query": "…"}}).
func (d dashboard) variables() []dashboardVariable {
	var out []dashboardVariable
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			_ = json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		out = append(out, dashboardVariable{v.Name, q})
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
