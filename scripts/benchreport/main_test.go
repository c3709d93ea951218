package main

import (
	"bytes"
	"maps"
	"strings"
	"testing"
)

// Lines as go test -bench printed them on the bench machine.
func TestParseResult(t *testing.T) {
	tests := []struct {
		line    string
		ok      bool
		name    string
		procs   int
		iters   int64
		metrics map[string]float64
	}{
		{line: "BenchmarkDecide-2   \t   21400\t     12301 ns/op", ok: true,
			name: "BenchmarkDecide", procs: 2, iters: 21400, metrics: map[string]float64{"ns/op": 12301}},
		{line: "BenchmarkApply/20KB-2         \t    1022\t    295075 ns/op\t  41.96 MB/s\t  107784 B/op\t     160 allocs/op", ok: true,
			name: "BenchmarkApply/20KB", procs: 2, iters: 1022,
			metrics: map[string]float64{"ns/op": 295075, "MB/s": 41.96, "B/op": 107784, "allocs/op": 160}},
		{line: "BenchmarkApply/10MB-in-memory-2  \t      24\t  48213870 ns/op\t 209.31 MB/s\t 31881734 B/op\t   1130 allocs/op", ok: true,
			name: "BenchmarkApply/10MB-in-memory", procs: 2, iters: 24,
			metrics: map[string]float64{"ns/op": 48213870, "MB/s": 209.31, "B/op": 31881734, "allocs/op": 1130}},
		{line: "BenchmarkPolicyService/postern-memory/conns=8-2 \t    2000\t     32147 ns/op\t     31108 decisions/s\t       129.0 p50-µs\t      3487 p99-µs", ok: true,
			name: "BenchmarkPolicyService/postern-memory/conns=8", procs: 2, iters: 2000,
			metrics: map[string]float64{"ns/op": 32147, "decisions/s": 31108, "p50-µs": 129, "p99-µs": 3487}},
		{line: "BenchmarkPostmapLookups-2   \t       1\t12402341617 ns/op\t         3.93 socketmap/ldap\t     13502 socketmap-lookups/s\t         3.71 tcp/ldap\t     12746 tcp-lookups/s\t      3433 ldap-lookups/s", ok: true,
			name: "BenchmarkPostmapLookups", procs: 2, iters: 1,
			metrics: map[string]float64{"ns/op": 12402341617, "socketmap/ldap": 3.93, "socketmap-lookups/s": 13502, "tcp/ldap": 3.71, "tcp-lookups/s": 12746, "ldap-lookups/s": 3433}},
		{line: "BenchmarkMilterRSS-2 \t1\t5313806133 ns/op\t 20.95 MB-VmHWM-20x10MB\t 14.36 MB-VmHWM-idle", ok: true,
			name: "BenchmarkMilterRSS", procs: 2, iters: 1,
			metrics: map[string]float64{"ns/op": 5313806133, "MB-VmHWM-20x10MB": 20.95, "MB-VmHWM-idle": 14.36}},
		// GOMAXPROCS=1: no suffix, and a name ending in a word keeps it.
		{line: "BenchmarkApply/10MB-in-memory \t 24\t 48213870 ns/op", ok: true,
			name: "BenchmarkApply/10MB-in-memory", procs: 1, iters: 24, metrics: map[string]float64{"ns/op": 48213870}},
		{line: "BenchmarkAnswer/tcp-16 \t 25077\t 4336 ns/op", ok: true,
			name: "BenchmarkAnswer/tcp", procs: 16, iters: 25077, metrics: map[string]float64{"ns/op": 4336}},
		// Not results.
		{line: "BenchmarkPolicyService/postfwd2/conns=1-2 \t"},                                 // name printed, then a stray line
		{line: "BenchmarkThroughput-2 \t 1\t 123 ns/op\t 4.5"},                                 // a value without a unit
		{line: "BenchmarkThroughput-2 \t one\t 123 ns/op"},                                     // no iteration count
		{line: "BenchmarkThroughput-2 \t 0\t 123 ns/op"},                                       // zero iterations
		{line: "BenchmarkThroughput-2 \t 1\t fast ns/op"},                                      // not a number
		{line: "    bench_test.go:108: 10000 keys through postmap -q -, 5000 found"},           // a log line
		{line: "ok  \tgithub.com/postern-mail/postern/policyd\t0.098s"},                        // the summary
		{line: "1      31108/s  p99 3.487ms  29000/s  p99 4ms  3000/s  p99 20ms  10.4x, 9.7x"}, // policyd's TestMain table
	}
	for _, tt := range tests {
		r, ok := parseResult(tt.line)
		if ok != tt.ok {
			t.Errorf("parseResult(%q): ok %v, want %v", tt.line, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if r.name != tt.name || r.procs != tt.procs || r.iters != tt.iters || !maps.Equal(r.metrics, tt.metrics) {
			t.Errorf("parseResult(%q) = %q procs %d iters %d %v, want %q procs %d iters %d %v",
				tt.line, r.name, r.procs, r.iters, r.metrics, tt.name, tt.procs, tt.iters, tt.metrics)
		}
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		line, key, value string
		ok               bool
	}{
		{"goos: linux", "goos", "linux", true},
		{"pkg: github.com/postern-mail/postern/policyd", "pkg", "github.com/postern-mail/postern/policyd", true},
		{"cpu: AMD EPYC", "cpu", "AMD EPYC", true},
		{"command: go test -run XXX -bench '^BenchmarkDecide$' -benchtime 1s ./policyd", "command", "go test -run XXX -bench '^BenchmarkDecide$' -benchtime 1s ./policyd", true},
		{"postfix-version: 3.7.11-0+deb12u1 (Debian package postfix)", "postfix-version", "3.7.11-0+deb12u1 (Debian package postfix)", true},
		{"date:\t2026-11-22 14:50 UTC", "date", "2026-11-22 14:50 UTC", true},
		{"empty:", "empty", "", true},
		{"PASS", "", "", false},
		{"Goos: linux", "", "", false},                 // upper case
		{"policy service, same run: x", "", "", false}, // a space in the key
		{"http://example.test", "", "", false},         // no space after the colon
		{"    bench_test.go:108: logged", "", "", false},
		{"--- FAIL: BenchmarkX", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		k, v, ok := parseConfig(tt.line)
		if ok != tt.ok || k != tt.key || v != tt.value {
			t.Errorf("parseConfig(%q) = %q, %q, %v; want %q, %q, %v", tt.line, k, v, ok, tt.key, tt.value, tt.ok)
		}
	}
}

const sample = `date: 2026-11-22 15:00 UTC
cores: 2 (GOMAXPROCS 2)
command: go test -run XXX -bench '^BenchmarkDecide$' -benchtime 1s ./policyd
goos: linux
goarch: amd64
pkg: github.com/postern-mail/postern/policyd
cpu: AMD EPYC
BenchmarkDecide-2   	   21400	     12301 ns/op
PASS
ok  	github.com/postern-mail/postern/policyd	1.674s
command: go test -run XXX -bench '^BenchmarkAnswer$' -benchtime 1s ./tcptable
goos: linux
goarch: amd64
pkg: github.com/postern-mail/postern/tcptable
cpu: AMD EPYC
BenchmarkAnswer/socketmap-2         	   26586	      4425 ns/op
BenchmarkAnswer/tcp-2               	   25077	      4336 ns/op
PASS
ok  	github.com/postern-mail/postern/tcptable	2.338s
`

func TestParse(t *testing.T) {
	o, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.results) != 3 || len(o.failures) != 0 {
		t.Fatalf("%d results, failures %q; want 3 and none", len(o.results), o.failures)
	}
	d, a := o.find("BenchmarkDecide"), o.find("BenchmarkAnswer/tcp")
	if d.config["pkg"] != "github.com/postern-mail/postern/policyd" || a.config["pkg"] != "github.com/postern-mail/postern/tcptable" {
		t.Errorf("pkg: %q, %q", d.config["pkg"], a.config["pkg"])
	}
	f := &figures{o: o}
	if c := f.command("BenchmarkDecide"); c != "go test -run XXX -bench '^BenchmarkDecide$' -benchtime 1s ./policyd" {
		t.Errorf("command of BenchmarkDecide: %q", c)
	}
	if c := f.command("BenchmarkAnswer/tcp"); c != "go test -run XXX -bench '^BenchmarkAnswer$' -benchtime 1s ./tcptable" {
		t.Errorf("command of BenchmarkAnswer/tcp: %q", c)
	}
	if o.config["date"] != "2026-11-22 15:00 UTC" || o.config["cores"] != "2 (GOMAXPROCS 2)" {
		t.Errorf("machine: %v", o.config)
	}
	if v := f.get("BenchmarkAnswer/socketmap", "ns/op"); v != 4425 || len(f.missing) != 0 {
		t.Errorf("BenchmarkAnswer/socketmap ns/op = %v, missing %v", v, f.missing)
	}
	f.get("BenchmarkAnswer/socketmap", "lookups/s")
	f.get("BenchmarkPostmapLookups", "tcp/ldap")
	if want := []string{"BenchmarkAnswer/socketmap lookups/s", "BenchmarkPostmapLookups tcp/ldap"}; strings.Join(f.missing, ",") != strings.Join(want, ",") {
		t.Errorf("missing %q, want %q", f.missing, want)
	}
}

func TestParseFailures(t *testing.T) {
	in := `BenchmarkPostmapLookups-2
--- FAIL: BenchmarkPostmapLookups-2
    bench_test.go:78: the tables disagree
--- SKIP: BenchmarkThroughput
    bench.go:39: testbench: altermime is not installed
    FAIL logged by a test, indented: not a failure line
FAIL
exit status 1
FAIL	github.com/postern-mail/postern/tcptable	40.1s
panic: test timed out after 10m0s
`
	o, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--- FAIL: BenchmarkPostmapLookups-2", "FAIL", "FAIL\tgithub.com/postern-mail/postern/tcptable\t40.1s", "panic: test timed out after 10m0s"}
	if strings.Join(o.failures, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures %q, want %q", o.failures, want)
	}
	if len(o.skips) != 1 || len(o.results) != 0 {
		t.Errorf("skips %q, results %d", o.skips, len(o.results))
	}
}

func TestNarrow(t *testing.T) {
	got := narrow("go test -run XXX -bench '^BenchmarkPolicyService$' -benchtime 2s ./policyd", "BenchmarkPolicyService", "//^conns=8$")
	if want := "go test -run XXX -bench '^BenchmarkPolicyService$//^conns=8$' -benchtime 2s ./policyd"; got != want {
		t.Errorf("narrow: %q, want %q", got, want)
	}
}

func TestGroup(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 31108.4: "31,108", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := group(v); got != want {
			t.Errorf("group(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestReport renders a complete output: every figure found, every table filled.
func TestReport(t *testing.T) {
	var in strings.Builder
	in.WriteString("date: 2026-11-22 15:00 UTC\npostfix-version: 3.7.11-0+deb12u1 (Debian package postfix)\n")
	in.WriteString("command: go test -run XXX -bench '^BenchmarkPolicyService$' -benchtime 2s ./policyd\npkg: github.com/postern-mail/postern/policyd\n")
	for _, s := range []string{"postern-memory", "postern-redis", "postfwd2"} {
		for _, c := range []string{"1", "8", "64"} {
			in.WriteString("BenchmarkPolicyService/" + s + "/conns=" + c + "-2 \t 1000\t 100 ns/op\t 1000 decisions/s\t 100 p50-µs\t 500 p99-µs\n")
		}
	}
	in.WriteString("BenchmarkDecide-2 \t 1000\t 12301 ns/op\n")
	in.WriteString("pkg: github.com/postern-mail/postern/tcptable\n")
	in.WriteString("BenchmarkPostmapLookups-2 \t 1\t 1 ns/op\t 3.93 socketmap/ldap\t 13502 socketmap-lookups/s\t 3.71 tcp/ldap\t 12746 tcp-lookups/s\t 3433 ldap-lookups/s\n")
	in.WriteString("BenchmarkAnswer/socketmap-2 \t 1\t 4425 ns/op\nBenchmarkAnswer/tcp-2 \t 1\t 4336 ns/op\n")
	in.WriteString("pkg: github.com/postern-mail/postern/milter\n")
	in.WriteString("BenchmarkThroughput-2 \t 1\t 1 ns/op\t 40 msgs/s-no-milter\t 30 msgs/s-postern\t 10 msgs/s-altermime\t 0.75 postern/no-milter\t 0.25 altermime/no-milter\t 3 postern/altermime\n")
	in.WriteString("BenchmarkMilterRSS-2 \t 1\t 1 ns/op\t 20.96 MB-VmHWM-20x10MB\t 14.36 MB-VmHWM-idle\n")
	in.WriteString("pkg: github.com/postern-mail/postern/milter/stamp\n")
	for _, c := range []string{"20KB", "10MB", "10MB-in-memory"} {
		in.WriteString("BenchmarkApply/" + c + "-2 \t 10\t 295075 ns/op\t 41.96 MB/s\t 107784 B/op\t 160 allocs/op\n")
	}
	in.WriteString("pkg: github.com/postern-mail/postern/lmtp-shadow\n")
	in.WriteString("BenchmarkArchiveVsDirect-2 \t 1\t 1 ns/op\t 80 archived-msgs/s\t 100 direct-msgs/s\t 0.8 ratio\n")
	in.WriteString("pkg: github.com/postern-mail/postern/systemtest\n")
	in.WriteString("BenchmarkWholeStack-2 \t 1\t 1 ns/op\t 31.5 msgs/s-submitted\t 20.1 msgs/s-with-setup-and-accounting" +
		"\t 10 tcptable-p50-µs\t 60 tcptable-p99-µs\t 25.1 tcptable-MB-VmHWM\t 250 policyd-p50-µs\t 3000 policyd-p99-µs\t 28.0 policyd-MB-VmHWM" +
		"\t 37000 milter-p50-µs\t 420000 milter-p99-µs\t 30.9 milter-MB-VmHWM\t 94000 lmtp-shadow-p50-µs\t 732000 lmtp-shadow-p99-µs\t 28.5 lmtp-shadow-MB-VmHWM\n")

	o, err := parse(strings.NewReader(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := build(o, "dist/bench/bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := reportTemplate.Execute(&out, r); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	for _, want := range []string{
		"Measured 2026-11-22 15:00 UTC",
		"| Postfix | 3.7.11-0+deb12u1 (Debian package postfix) |",
		"| Samba | unknown |",
		"| policyd, memory store | postfwd2 | decisions/s at 1 / 8 / 64 connections | 1.00× / 1.00× / 1.00× | `go test -run XXX -bench '^BenchmarkPolicyService$' -benchtime 2s ./policyd` |",
		"| 8 | 1.00× | 1.00× | 1.00× | 1.00× | 1.00× | 1.00× | `go test -run XXX -bench '^BenchmarkPolicyService$//^conns=8$' -benchtime 2s ./policyd` |",
		"| tcptable over socketmap | Postfix ldap: table, same Samba AD | lookups/s through postmap -q - | 3.93× | `go test -run XXX -bench '^BenchmarkPostmapLookups$' ./tcptable` |",
		"| Postfix ldap: → Samba AD | 3,433 |",
		"| postern milter ÷ altermime content filter | 3.00× |",
		"| after 20 concurrent 10 MB messages | 21.0 MB |",
		"| 20KB | 295.1 µs | 42 | 105.3 KiB | 160 |",
		"| through lmtp-shadow ÷ straight to Cyrus | 0.80× |",
		"| milter (end of message: stamp, journal) | 37.0 ms | 420.0 ms | 30.9 MB | `go test -run XXX -bench '^BenchmarkWholeStack$' ./systemtest` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(md, "n/a") || strings.Contains(md, "<no value>") {
		t.Errorf("the report has a hole:\n%s", md)
	}

	// Without the last result, the whole stack's, the report is refused.
	o.results = o.results[:len(o.results)-1]
	if _, err := build(o, "x"); err == nil || !strings.Contains(err.Error(), "BenchmarkWholeStack milter-p99-µs") {
		t.Errorf("build without BenchmarkWholeStack: %v", err)
	}
}

func TestFormats(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{ratioOf(47.38), "47.4×"}, {ratioOf(7.534), "7.53×"}, {ratioOf(1), "1.00×"}, {ratioOf(0.5514), "0.55×"},
		{ratioOf(0.1677), "0.17×"}, {ratioOf(0.0183), "0.018×"}, {ratioOf(0.00578), "0.0058×"},
		{ratio(1, 0), "n/a"}, {ratio(0, 0), "n/a"},
		{micro(70), "70 µs"}, {micro(928), "928 µs"}, {micro(3962), "4.0 ms"}, {micro(217055), "217.1 ms"},
		{duration(7458), "7.5 µs"}, {duration(29205375), "29.21 ms"}, {duration(12), "12 ns"},
		{bytesize(107846), "105.3 KiB"}, {bytesize(20650128), "19.7 MiB"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
