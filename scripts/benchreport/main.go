// Command benchreport writes BENCHMARKS.md from the output of `make bench`.
//
// make bench first runs `benchreport -machine`, which prints the machine (CPU, cores,
// memory, kernel, Go, and the versions of the peer servers as installed) as
// configuration lines of the Go benchmark format ("key: value"), then appends the output
// of each `go test -bench` behind a "command: go test …" line naming the command that
// produced it, and finally runs `benchreport -o BENCHMARKS.md FILE`, which reads that
// file back and renders the report. The file stays readable by benchstat.
//
// benchreport fails, and writes nothing, when the output holds a failed benchmark or
// lacks a figure the report needs (a benchmark that skipped, say). It is a development
// tool: not built into postern, not shipped in the packages.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
)

func main() {
	machine := flag.Bool("machine", false, "print this machine's description as benchmark-format configuration lines and exit")
	out := flag.String("o", "BENCHMARKS.md", "the report to write")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchreport -machine\n       benchreport [-o BENCHMARKS.md] BENCH-OUTPUT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *machine {
		for _, f := range machineFields {
			fmt.Printf("%s: %s\n", f.key, oneLine(f.probe()))
		}
		return
	}
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	o, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(o.failures) > 0 {
		return fmt.Errorf("%s: benchmarks failed:\n  %s", in, strings.Join(o.failures, "\n  "))
	}
	r, err := build(o, in)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, r); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// ---- the benchmark output ----

// result is one benchmark result line, with the configuration in force where it stood.
type result struct {
	name    string             // without the GOMAXPROCS suffix: "BenchmarkPolicyService/postfwd2/conns=8"
	procs   int                // the GOMAXPROCS suffix, 1 when there is none
	iters   int64              // b.N
	metrics map[string]float64 // value by unit: "ns/op", "decisions/s", "p99-µs"
	config  map[string]string  // "pkg", "command", … as of this line; never changed afterwards
}

// output is a whole file of `go test -bench` output.
type output struct {
	config   map[string]string // the configuration at the end of the file
	results  []result
	failures []string // "--- FAIL: …", "FAIL …" and "panic: …" lines
	skips    []string // "--- SKIP: …" lines, to explain a missing figure
}

// parse reads the standard benchmark format (golang.org/design/14313-benchmark-format):
// result lines "BenchmarkName-PROCS  N  VALUE UNIT  VALUE UNIT…", configuration lines
// "key: value", and ignores everything else (logs, PASS, ok).
func parse(r io.Reader) (*output, error) {
	o := &output{config: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- FAIL:"), line == "FAIL", strings.HasPrefix(line, "FAIL\t"),
			strings.HasPrefix(line, "FAIL "), strings.HasPrefix(line, "panic: "):
			o.failures = append(o.failures, trimmed)
			continue
		case strings.HasPrefix(trimmed, "--- SKIP:"):
			o.skips = append(o.skips, trimmed)
			continue
		}
		if res, ok := parseResult(line); ok {
			res.config = o.config
			o.results = append(o.results, res)
		} else if k, v, ok := parseConfig(line); ok {
			o.config = maps.Clone(o.config) // results before this line keep theirs
			o.config[k] = v
		}
	}
	return o, sc.Err()
}

// parseResult parses a benchmark result line.
func parseResult(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return result{}, false
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || iters <= 0 {
		return result{}, false
	}
	r := result{iters: iters, metrics: map[string]float64{}}
	r.name, r.procs = splitProcs(f[0])
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return result{}, false
		}
		r.metrics[f[i+1]] = v
	}
	return r, true
}

// splitProcs splits the "-PROCS" suffix the testing package appends when GOMAXPROCS > 1.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name, 1
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name, 1
		}
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n == 0 {
		return name, 1
	}
	return name[:i], n
}

// parseConfig parses "key: value": the key starts with a lower-case letter and has
// neither spaces nor upper-case letters.
func parseConfig(line string) (key, value string, ok bool) {
	key, value, found := strings.Cut(line, ":")
	if !found || key == "" || !unicode.IsLower([]rune(key)[0]) {
		return "", "", false
	}
	for _, c := range key {
		if unicode.IsSpace(c) || unicode.IsUpper(c) {
			return "", "", false
		}
	}
	if value != "" && value[0] != ' ' && value[0] != '\t' {
		return "", "", false
	}
	return key, strings.TrimSpace(value), true
}

// find returns the last result named name, nil if there is none.
func (o *output) find(name string) *result {
	for i := len(o.results) - 1; i >= 0; i-- {
		if o.results[i].name == name {
			return &o.results[i]
		}
	}
	return nil
}

// ---- the machine ----

// machineFields are the machine description: its configuration key, its label in the
// report, and how benchreport -machine reads it.
var machineFields = []struct {
	key, label string
	probe      func() string
}{
	{"date", "measured", func() string { return time.Now().UTC().Format("2006-01-02 15:04 MST") }},
	{"cpu-model", "CPU", cpuModel},
	{"cores", "cores", func() string {
		return fmt.Sprintf("%d (GOMAXPROCS %d)", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}},
	{"memory", "memory", memTotal},
	{"kernel", "kernel", func() string { return "Linux " + strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")) }},
	{"os", "system", osName},
	{"load-average", "load average when the run began (1, 5, 15 min)", loadAverage},
	{"go-version", "Go", func() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }},
	{"postfix-version", "Postfix", func() string { return version("postfix", "postconf", "-h", "mail_version") }},
	{"postfwd-version", "postfwd (postfwd2)", func() string { return version("postfwd", "postfwd2", "--version") }},
	{"samba-version", "Samba", func() string { return version("samba", "samba", "-V") }},
	{"cyrus-version", "Cyrus IMAP", func() string { return version("cyrus-imapd") }},
	{"redis-version", "Redis", func() string { return version("redis-server", "redis-server", "--version") }},
	{"altermime-version", "altermime", func() string { return version("altermime") }},
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func cpuModel() string {
	for line := range strings.Lines(readFile("/proc/cpuinfo")) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (" + runtime.GOARCH + ")"
}

func memTotal() string {
	for line := range strings.Lines(readFile("/proc/meminfo")) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "unknown"
}

func osName() string {
	for line := range strings.Lines(readFile("/etc/os-release")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func loadAverage() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// version is the Debian package's version as dpkg has it installed, else the first line
// the program prints when asked (argv), else "not installed".
func version(pkg string, argv ...string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}\t${Version}", pkg).Output()
	if status, v, ok := strings.Cut(string(out), "\t"); err == nil && ok && strings.HasSuffix(status, " installed") {
		return v + " (Debian package " + pkg + ")"
	}
	if len(argv) > 0 {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err == nil {
			if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
				return line + " (" + strings.Join(argv, " ") + ")"
			}
		}
	}
	return "not installed"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ---- the report ----

type report struct {
	Date, Source string
	Machine      [][2]string // label, value
	Summary      table

	PolicydRatios, PolicydAbsolute, PolicydInProcess    table
	TcptableRatios, TcptableAbsolute, TcptableInProcess table
	MilterRatios, MilterAbsolute, MilterRSS, Stamp      table
	ShadowRatios, ShadowAbsolute                        table
	Stack, StackRate                                    table
}

type table struct {
	Header []string
	Rows   [][]string
}

func (t *table) add(cells ...string) { t.Rows = append(t.Rows, cells) }

// figures looks figures up and remembers which are missing.
type figures struct {
	o       *output
	missing []string
}

// get is the metric unit of the benchmark name; NaN, and noted, if it is missing.
func (f *figures) get(name, unit string) float64 {
	if r := f.o.find(name); r != nil {
		if v, ok := r.metrics[unit]; ok {
			return v
		}
	}
	f.missing = append(f.missing, name+" "+unit)
	return math.NaN()
}

// command is the command that produced the benchmark name: the "command:" line in force
// where its result stood if it names the benchmark, else one made from its package.
func (f *figures) command(name string) string {
	r := f.o.find(name)
	if r == nil {
		return "?"
	}
	top, _, _ := strings.Cut(name, "/")
	if c := r.config["command"]; strings.Contains(c, top) {
		return c
	}
	pkg := "./" + strings.TrimPrefix(strings.TrimPrefix(r.config["pkg"], "github.com/postern-mail/postern"), "/")
	return fmt.Sprintf("go test -run XXX -bench '^%s$' %s", top, pkg)
}

// narrow turns a command that runs the benchmark top into one that runs only its
// sub-benchmarks matching sub: "-bench '^BenchmarkX$'" with "//^conns=8$" becomes
// "-bench '^BenchmarkX$//^conns=8$'".
func narrow(cmd, top, sub string) string {
	return strings.Replace(cmd, "-bench '^"+top+"$'", "-bench '^"+top+"$"+sub+"'", 1)
}

func build(o *output, source string) (*report, error) {
	f := &figures{o: o}
	r := &report{Date: o.config["date"], Source: source}
	if r.Date == "" {
		r.Date = "(unknown date)"
	}
	for _, m := range machineFields {
		if m.key == "date" {
			continue
		}
		v := o.config[m.key]
		if v == "" {
			v = "unknown"
		}
		r.Machine = append(r.Machine, [2]string{m.label, v})
	}
	r.Summary.Header = []string{"postern", "beside", "figure", "ratio", "reproduce"}

	// policyd beside postfwd2.
	const ps = "BenchmarkPolicyService"
	conns := []string{"1", "8", "64"}
	svc := func(server, c string) string { return ps + "/" + server + "/conns=" + c }
	r.PolicydRatios.Header = []string{"connections", "decisions/s memory ÷ postfwd2", "decisions/s Redis ÷ postfwd2",
		"p50 memory ÷ postfwd2", "p50 Redis ÷ postfwd2", "p99 memory ÷ postfwd2", "p99 Redis ÷ postfwd2", "reproduce"}
	r.PolicydAbsolute.Header = []string{"connections", "server", "decisions/s", "p50", "p99", "requests measured", "reproduce"}
	var tput [2][]string
	for _, c := range conns {
		cmd := code(narrow(f.command(svc("postfwd2", c)), ps, "//^conns="+c+"$"))
		peer := svc("postfwd2", c)
		row := []string{c}
		for _, unit := range []string{"decisions/s", "p50-µs", "p99-µs"} {
			for _, store := range []string{"postern-memory", "postern-redis"} {
				row = append(row, ratio(f.get(svc(store, c), unit), f.get(peer, unit)))
			}
		}
		r.PolicydRatios.add(append(row, cmd)...)
		tput[0] = append(tput[0], row[1])
		tput[1] = append(tput[1], row[2])
		for _, server := range []string{"postern-memory", "postern-redis", "postfwd2"} {
			n := svc(server, c)
			iters := "?"
			if res := o.find(n); res != nil {
				iters = group(float64(res.iters))
			}
			r.PolicydAbsolute.add(c, server, group(f.get(n, "decisions/s")), micro(f.get(n, "p50-µs")), micro(f.get(n, "p99-µs")), iters, cmd)
		}
	}
	psCmd := code(f.command(svc("postfwd2", "1")))
	r.Summary.add("policyd, memory store", "postfwd2", "decisions/s at 1 / 8 / 64 connections", strings.Join(tput[0], " / "), psCmd)
	r.Summary.add("policyd, Redis store", "postfwd2", "decisions/s at 1 / 8 / 64 connections", strings.Join(tput[1], " / "), psCmd)
	for _, store := range []struct{ server, label string }{{"postern-memory", "policyd, memory store"}, {"postern-redis", "policyd, Redis store"}} {
		r.Summary.add(store.label, "postfwd2", "p50 / p99 latency at 64 connections (lower is better)",
			ratio(f.get(svc(store.server, "64"), "p50-µs"), f.get(svc("postfwd2", "64"), "p50-µs"))+" / "+
				ratio(f.get(svc(store.server, "64"), "p99-µs"), f.get(svc("postfwd2", "64"), "p99-µs")), psCmd)
	}
	r.PolicydInProcess.Header = []string{"benchmark", "time per decision", "reproduce"}
	r.PolicydInProcess.add("BenchmarkDecide: read and decide one request of the mix, no network", duration(f.get("BenchmarkDecide", "ns/op")), code(f.command("BenchmarkDecide")))

	// tcptable beside Postfix's ldap: table.
	const pl = "BenchmarkPostmapLookups"
	plCmd := code(f.command(pl))
	r.TcptableRatios.Header = []string{"tcptable over", "lookups/s ÷ Postfix ldap:", "reproduce"}
	r.TcptableAbsolute.Header = []string{"table", "lookups/s", "reproduce"}
	for _, p := range []string{"socketmap", "tcp"} {
		v := ratioOf(f.get(pl, p+"/ldap"))
		r.TcptableRatios.add(p, v, plCmd)
		r.Summary.add("tcptable over "+p, "Postfix ldap: table, same Samba AD", "lookups/s through postmap -q -", v, plCmd)
	}
	for _, p := range []struct{ name, label string }{{"socketmap", "tcptable, socketmap:"}, {"tcp", "tcptable, tcp:"}, {"ldap", "Postfix ldap: → Samba AD"}} {
		r.TcptableAbsolute.add(p.label, group(f.get(pl, p.name+"-lookups/s")), plCmd)
	}
	r.TcptableInProcess.Header = []string{"benchmark", "time per lookup", "reproduce"}
	for _, p := range []string{"socketmap", "tcp"} {
		n := "BenchmarkAnswer/" + p
		r.TcptableInProcess.add("BenchmarkAnswer, "+p+": parse, resolve, count, encode; no network", duration(f.get(n, "ns/op")), code(f.command(n)))
	}

	// milter beside bare Postfix and altermime.
	const tp = "BenchmarkThroughput"
	tpCmd := code(f.command(tp))
	r.MilterRatios.Header = []string{"messages per second", "ratio", "reproduce"}
	for _, m := range []struct{ unit, label, peer string }{
		{"postern/no-milter", "postern milter ÷ no milter", "bare Postfix"},
		{"altermime/no-milter", "altermime content filter ÷ no milter", ""},
		{"postern/altermime", "postern milter ÷ altermime content filter", "altermime as content_filter"},
	} {
		v := ratioOf(f.get(tp, m.unit))
		r.MilterRatios.add(m.label, v, tpCmd)
		if m.peer != "" {
			r.Summary.add("milter (disclaimer, signature, journal)", m.peer, "messages/s, 20 KB, through Postfix", v, tpCmd)
		}
	}
	r.MilterAbsolute.Header = []string{"Postfix with", "msgs/s", "reproduce"}
	for _, m := range []struct{ unit, label string }{
		{"msgs/s-no-milter", "no milter"}, {"msgs/s-postern", "postern milter"}, {"msgs/s-altermime", "altermime as content_filter"},
	} {
		r.MilterAbsolute.add(m.label, group(f.get(tp, m.unit)), tpCmd)
	}
	const rss = "BenchmarkMilterRSS"
	rssCmd := code(f.command(rss))
	r.MilterRSS.Header = []string{"postern milter", "peak RSS (VmHWM)", "reproduce"}
	r.MilterRSS.add("started, idle", megabytes(f.get(rss, "MB-VmHWM-idle")), rssCmd)
	r.MilterRSS.add("after 20 concurrent 10 MB messages", megabytes(f.get(rss, "MB-VmHWM-20x10MB")), rssCmd)
	r.Stamp.Header = []string{"message", "time per message", "MB/s", "allocated per message", "allocations", "reproduce"}
	for _, c := range []string{"20KB", "10MB", "10MB-in-memory"} {
		n := "BenchmarkApply/" + c
		r.Stamp.add(c, duration(f.get(n, "ns/op")), fmt.Sprintf("%.0f", f.get(n, "MB/s")),
			bytesize(f.get(n, "B/op")), group(f.get(n, "allocs/op")), code(f.command(n)))
	}

	// lmtp-shadow beside direct delivery.
	const ad = "BenchmarkArchiveVsDirect"
	adCmd := code(f.command(ad))
	v := ratioOf(f.get(ad, "ratio"))
	r.ShadowRatios.Header = []string{"messages per second", "ratio", "reproduce"}
	r.ShadowRatios.add("through lmtp-shadow ÷ straight to Cyrus", v, adCmd)
	r.Summary.add("lmtp-shadow", "Postfix delivering straight to Cyrus lmtpd", "messages/s, 20 KB", v, adCmd)
	r.ShadowAbsolute.Header = []string{"Postfix delivers", "msgs/s", "reproduce"}
	r.ShadowAbsolute.add("through lmtp-shadow into Cyrus", group(f.get(ad, "archived-msgs/s")), adCmd)
	r.ShadowAbsolute.add("straight to Cyrus lmtpd", group(f.get(ad, "direct-msgs/s")), adCmd)

	// The whole stack: every daemon under the system test's workload, by its own telemetry.
	const ws = "BenchmarkWholeStack"
	wsCmd := code(f.command(ws))
	r.Stack.Header = []string{"daemon", "p50", "p99", "peak RSS (VmHWM)", "reproduce"}
	for _, d := range []struct{ name, label string }{
		{"tcptable", "tcptable (one lookup)"}, {"policyd", "policyd (one decision)"},
		{"milter", "milter (end of message: stamp, journal)"}, {"lmtp-shadow", "lmtp-shadow (a message's copies into Cyrus)"},
	} {
		r.Stack.add(d.label, micro(f.get(ws, d.name+"-p50-µs")), micro(f.get(ws, d.name+"-p99-µs")), megabytes(f.get(ws, d.name+"-MB-VmHWM")), wsCmd)
	}
	r.StackRate.Header = []string{"2,000 messages of the company mix", "msgs/s", "reproduce"}
	r.StackRate.add("submitted through Postfix and all four daemons (6 clients)", group(f.get(ws, "msgs/s-submitted")), wsCmd)

	if len(f.missing) > 0 {
		msg := "missing figures (did a benchmark not run, or skip?):\n  " + strings.Join(f.missing, "\n  ")
		if len(o.skips) > 0 {
			msg += "\nskipped:\n  " + strings.Join(o.skips, "\n  ")
		}
		return nil, errors.New(msg)
	}
	return r, nil
}

// ratio formats a ÷ b.
func ratio(a, b float64) string { return ratioOf(a / b) }

// ratioOf formats a ratio: one decimal from 10 up, two from 1, and two significant
// digits below 1 (0.17×, 0.0058×).
func ratioOf(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return "n/a"
	case v >= 10:
		return fmt.Sprintf("%.1f×", v)
	case v >= 1 || v == 0:
		return fmt.Sprintf("%.2f×", v)
	default:
		return fmt.Sprintf("%.*f×", max(2, 1-int(math.Floor(math.Log10(v)))), v)
	}
}

// group formats v rounded to an integer, with thousands separated by commas.
func group(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// micro formats a latency given in microseconds.
func micro(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return group(us) + " µs"
}

func duration(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "n/a"
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}

func megabytes(mb float64) string { return fmt.Sprintf("%.1f MB", mb) }

func bytesize(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// code is s as Markdown inline code inside a table cell.
func code(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"join": strings.Join,
}).Parse(reportText))

const reportText = `{{define "table"}}| {{join .Header " | "}} |
|{{range .Header}} --- |{{end}}
{{range .Rows}}| {{join . " | "}} |
{{end}}{{end}}<!-- Written by ` + "`make bench`" + ` (scripts/benchreport) from {{.Source}}. Do not edit: run make bench again. -->
# Benchmarks

Measured {{.Date}} by ` + "`make bench`" + `, which runs every benchmark once on this machine
and writes this file. Each daemon is measured beside the program it replaces or sits
beside, **in the same run**, on the same machine, by the same client.

## Ratios

The machines are shared and noisy: read the ratios, which carry over to another machine,
before the absolute figures, which hold for this machine at that moment. A ratio is
postern's figure divided by its peer's: above 1 postern is faster, and for a latency below
1 postern answers sooner. Beside bare Postfix and beside direct delivery, where postern
adds work, the ratio is the share of the message rate that is kept.

{{template "table" .Summary}}
Each command reproduces its figure on its own (run ` + "`sh scripts/install-deps.sh`" + ` as root first).

## Method

* **Real peers, private instances.** Every server is the Debian 12 package, installed by
  ` + "`scripts/install-deps.sh`" + ` and started by ` + "`internal/testbench`" + ` as a private instance
  on 127.0.0.1 under a temporary directory: a Samba AD DC, Postfix (relaying to an
  ` + "`smtp-sink`" + `), Redis, Cyrus IMAP, postfwd2. Nothing is reached over a real network.
* **Side by side in one run.** Each benchmark starts postern and its peer together and
  measures them one after the other (` + "`BenchmarkPostmapLookups`" + ` interleaves three
  rounds and keeps each contender's best), so the noise of a shared machine falls on
  both. No figure is compared with one from another run.
* **Workloads.** ` + "`-benchtime 1x`" + ` where the benchmark does a fixed workload itself (10,000
  lookups × 3 rounds; 400 messages per setup; 20 × 10 MB; 300 messages per setup).
  ` + "`BenchmarkPolicyService`" + ` counts requests in b.N, so it runs for the time its command
  gives, per server and connection count (the testing package ramps b.N up; the figures
  are those of the last, longest round), as do the in-process benchmarks.
* **Latency.** Only the policy service measures each request: the client times every
  request–reply round trip, and p50 and p99 are taken over all requests of the round.
  The other benchmarks measure batches (messages or lookups per second), not requests.
* **Memory.** Peak RSS is the kernel's VmHWM of ` + "`postern milter`" + ` run as its own
  process (the daemon that holds message bodies), and of each daemon in the whole-stack
  run below, where all four run as their own processes.
* **Raw output.** ` + "`{{.Source}}`" + ` holds the ` + "`go test -bench`" + ` output this file was made from,
  with the machine description and each command as configuration lines: ` + "`benchstat`" + `
  reads it.

## Machine

| | |
| --- | --- |
{{range .Machine}}| {{index . 0}} | {{index . 1}} |
{{end}}
## policyd beside postfwd2

Postfix's policy delegation protocol over TCP on loopback, persistent connections, the
same Go client for every server. The mix: three RCPT requests (an intern to a colleague;
an intern to an outside address, rejected; staff to an outside address) and one
END-OF-MESSAGE counted by a per-login rate limit never reached, every message with its
own instance. The rules are the same on both sides: interns mail only inside the company,
one rate limit. postern counts in memory or in a private Redis; postfwd2 runs with 66
pre-forked children, one per connection.

{{template "table" .PolicydRatios}}
Absolute:

{{template "table" .PolicydAbsolute}}
In process, without the network (what the throughput above is made of):

{{template "table" .PolicydInProcess}}
## tcptable beside Postfix's ldap: table

10,000 ` + "`virtual_mailbox_maps`" + ` keys (half the company's addresses in the forms clients
write them, half unknown) through Postfix's own client, ` + "`postmap -q - TABLE`" + `, against
tcptable over ` + "`socketmap:`" + ` and over ` + "`tcp:`" + ` (answering from its snapshot of the Samba AD)
and against Postfix's ` + "`ldap:`" + ` table asking the same Samba AD DC. All three must find the
same keys; each contender's best of three interleaved rounds counts.

{{template "table" .TcptableRatios}}
Absolute:

{{template "table" .TcptableAbsolute}}
In process, without the network:

{{template "table" .TcptableInProcess}}
## milter beside bare Postfix and altermime

` + "`smtp-source`" + ` (20 sessions) → Postfix → ` + "`smtp-sink`" + `, 400 messages of 20 KB per setup,
timed until smtp-sink holds them all and the queue is empty, for three Postfix instances:
without a milter; with ` + "`postern milter`" + ` in ` + "`smtpd_milters`" + ` (disclaimer, per-user
signature and envelope journal); and with altermime as a ` + "`content_filter`" + ` (the
FILTER_README loop: Postfix → an SMTP filter running altermime → a second smtpd),
adding the disclaimer only. A message delivered through each filter is checked to carry
the disclaimer.

{{template "table" .MilterRatios}}
Absolute:

{{template "table" .MilterAbsolute}}
Peak memory: ` + "`postern milter`" + ` as its own process behind Postfix, while 20 SMTP sessions
each send a 10 MB message at the same time (bodies spill to temporary files):

{{template "table" .MilterRSS}}
The MIME stamping alone (milter/stamp), in process, on an Outlook-shaped message with an
attachment:

{{template "table" .Stamp}}
## lmtp-shadow beside direct delivery to Cyrus

One Postfix and one Cyrus; ` + "`smtp-source`" + ` (8 sessions) sends 300 messages of 20 KB to the
shadow address, which Postfix hands to lmtp-shadow (it prepends the archive headers and
delivers over LMTP into the shadow mailbox), then 300 to bob, which Postfix delivers
straight to Cyrus's lmtpd; each timed until the queue is empty. The messages carry no
journal id, so lmtp-shadow files them under its missing-journal folder.

{{template "table" .ShadowRatios}}
Absolute:

{{template "table" .ShadowAbsolute}}
## The whole stack

The system test's stack without its faults (` + "`systemtest/`" + `): Postfix from the shipped
` + "`main.cf`" + ` fragments, Samba AD with ~250 people, Redis, Cyrus, and ` + "`postern tcptable`" + `,
` + "`policyd`" + `, ` + "`milter`" + ` and ` + "`lmtp-shadow`" + ` as four processes. Six clients send 2,000
messages of the company mix (inbound through the relay, outbound and internal with a SASL
login, lists, Bcc, interns, attachments up to 2 MB, GBK and UTF-8); every one is then
accounted for, and the benchmark fails if any is lost. Each daemon's latency is its own
histogram's p50 and p99 (as Prometheus' ` + "`histogram_quantile`" + ` reads it), under the load
Postfix really puts on it; there is no peer to set beside these.

{{template "table" .Stack}}
{{template "table" .StackRate}}`
