package policyd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/telemetry"
	"github.com/postern-mail/postern/internal/testbench"
)

// benchPolicyd is postern's side of the comparison: the interns rule and one rate limit
// counted at END-OF-MESSAGE, high enough never to trigger. sender_login is off: postfwd
// has no equivalent.
const benchPolicyd = `  internal_only: {groups: [Interns], reject_text: "interns may only send to internal addresses"}
  sender_login: {enforce: false}
  rate_limits: [{name: hourly, window: 1h, messages: 1000000000}]
`

// postfwdRules are the same rules for postfwd2: interns listed by address, the rate per
// sasl_username at END-OF-MESSAGE.
const postfwdRules = `id=INTERN_EXT
    protocol_state==RCPT
    sender==file:%s
    recipient_domain!~^(corp\.example\.test|other\.example\.test)$
    action=REJECT 5.7.1 interns may only send to internal addresses

id=RATE
    protocol_state==END-OF-MESSAGE
    sasl_username=~.+
    action=rate(sasl_username/1000000000/3600/450 4.7.1 sending limit reached)
`

// BenchmarkPolicyService measures decisions per second and p50 and p99 latency over 1, 8
// and 64 persistent connections, for postern with the memory store, postern with Redis,
// and Debian's postfwd2 with equivalent rules, in one run; TestMain prints the ratios.
// Every server is asked over TCP on loopback by the same client; the mix is three RCPT
// requests (an intern to a colleague, an intern outside: REJECT, staff outside) and one
// END-OF-MESSAGE counted per login, every message with its own instance.
func BenchmarkPolicyService(b *testing.B) {
	servers := []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"postern-memory", func(b *testing.B) string { return startBenchPolicyd(b, "") }},
		{"postern-redis", func(b *testing.B) string {
			r := testbench.StartRedis(b)
			return startBenchPolicyd(b, fmt.Sprintf("redis: {addrs: [%s]}\n", r.Addr))
		}},
		{"postfwd2", startPostfwd},
	}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			addr := s.start(b)
			checkVerdicts(b, addr)
			for _, conns := range []int{1, 8, 64} {
				b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) { load(b, addr, conns) })
			}
		})
	}
}

func startBenchPolicyd(b *testing.B, top string) string {
	dirFile, _ := filepath.Abs("testdata/directory.yaml")
	yaml := fmt.Sprintf(`domains: [corp.example.test, other.example.test]
directory: {backend: static, static: {file: %s}}
%spolicyd:
  listen: inet:127.0.0.1:0
%s`, dirFile, top, benchPolicyd)
	c, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	// Logged as in production: JSON lines at info (a line per REJECT), here to nowhere.
	log, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		b.Fatal(err)
	}
	d := newTestDaemon(b, benchPolicyd, testOptions{log: log})
	d.listen = c.Policyd.Listen
	if c.Redis.Enabled() {
		if err := d.Reload(c); err != nil { // switches the store to Redis
			b.Fatal(err)
		}
	}
	d.start(b)
	return d.Addr()
}

// startPostfwd runs postfwd2 as a daemon (it cannot serve in the foreground) with its own
// pid file and cache socket, and children enough for 64 connections: each serves one.
func startPostfwd(b *testing.B) string {
	testbench.Require(b, "postfwd2")
	dir := testbench.Dir(b)
	interns := filepath.Join(dir, "interns.txt")
	must(b, os.WriteFile(interns, []byte("carol@corp.example.test\nivan@corp.example.test\n"), 0o644))
	rules := filepath.Join(dir, "postfwd.cf")
	must(b, os.WriteFile(rules, fmt.Appendf(nil, postfwdRules, interns), 0o644))
	if u, err := user.Lookup("postfw"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		must(b, os.Chown(dir, uid, gid))
	}
	port := testbench.FreePort(b)
	pidfile := filepath.Join(dir, "postfwd.pid")
	cmd := exec.Command("postfwd2", "-f", rules, "--server_socket", fmt.Sprintf("tcp:127.0.0.1:%d", port),
		"--cache_socket", "unix::"+filepath.Join(dir, "cache.sock"), "--pidfile", pidfile,
		"-u", "postfw", "-g", "postfw", "--min_servers", "66", "--max_servers", "70",
		"--min_spare_servers", "1", "--max_spare_servers", "69", "--summary", "0", "--noidlestats")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("postfwd2: %v\n%s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("postfwd2", "--kill", "--pidfile", pidfile).Run() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	must(b, testbench.WaitTCP(addr, 30*time.Second))
	// It listens at once but forks its children one after another: measure once all are up.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(dir, "cache.sock"))
		children := postfwdChildren()
		if err == nil && children >= 66 {
			b.Logf("postfwd2: %d children up", children)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("postfwd2: %d children and cache socket %v after 2 min", children, err)
		}
	}
	return addr
}

// postfwdChildren counts the running postfwd2 policy children (of any postfwd2: the
// benchmark runs one at a time).
func postfwdChildren() int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "postfwd2::policy::child") {
			n++
		}
	}
	return n
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// load sends b.N requests over conns connections and reports decisions/s, p50 and p99.
func load(b *testing.B, addr string, conns int) {
	clients := make([]*benchClient, conns)
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = &benchClient{w: c, r: bufio.NewReader(c)}
	}
	var next atomic.Int64
	latencies := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := c.ask(benchRequest(n)); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	all := slices.Concat(latencies...)
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	rate := float64(len(all)) / elapsed.Seconds()
	p50, p99 := all[len(all)/2], all[len(all)*99/100]
	b.ReportMetric(rate, "decisions/s")
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	benchResults.Store(b.Name(), benchResult{rate, p99, len(all)})
}

// checkVerdicts asks one request of each kind of the mix before a server is measured and
// fails unless it answers as the rules say: a peer that answered DUNNO to everything would
// be measured doing less work.
func checkVerdicts(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i, want := range []string{"DUNNO", "REJECT", "DUNNO", "DUNNO"} {
		n := int64(1_000_000 + i) // the same kinds as 0..3, instances the load never uses
		if _, err := c.Write(benchRequest(n)); err != nil {
			b.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err == nil {
			_, err = r.ReadString('\n')
		}
		action := strings.Fields(strings.TrimPrefix(line, "action=") + " ")[0]
		if err != nil || action != want {
			b.Fatalf("request kind %d: answered %q (%v), want %s: the servers must decide alike to be compared", i, line, err, want)
		}
	}
}

type benchClient struct {
	w io.Writer
	r *bufio.Reader
}

func (c *benchClient) ask(req []byte) error {
	if _, err := c.w.Write(req); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err == nil && !strings.HasPrefix(line, "action=") {
		err = fmt.Errorf("reply %q", line)
	}
	if err == nil {
		_, err = c.r.ReadString('\n')
	}
	return err
}

// benchRequest is the n-th request of the mix, as Postfix 3.7 writes it.
func benchRequest(n int64) []byte {
	msg := n / 4
	state, login, sender, rcpt, count := "RCPT", "carol", "carol@corp.example.test", "bob@corp.example.test", "0"
	switch n % 4 {
	case 1:
		rcpt = fmt.Sprintf("someone%d@external.example", msg%100)
	case 2:
		login, sender, rcpt = "erin", "erin@corp.example.test", fmt.Sprintf("someone%d@external.example", msg%100)
	case 3:
		state, login, count = "END-OF-MESSAGE", fmt.Sprintf("user%d", msg%100), "1"
		sender, rcpt = login+"@corp.example.test", ""
	}
	return fmt.Appendf(nil, "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"+
		"client_address=198.51.100.7\nclient_name=client.example\nreverse_client_name=client.example\n"+
		"helo_name=client.example\nsender=%s\nrecipient=%s\nrecipient_count=%s\nqueue_id=\n"+
		"instance=bench.%d\nsize=2048\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_username=%s\n"+
		"sasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\nencryption_protocol=\n"+
		"encryption_cipher=\nencryption_keysize=0\npolicy_context=\n\n", state, sender, rcpt, count, msg, login)
}

type benchResult struct {
	rate  float64
	p99   time.Duration
	count int
}

// benchResults holds the last (largest) run of each benchmark, for the summary.
var benchResults sync.Map

func TestMain(m *testing.M) {
	code := m.Run()
	printBenchSummary()
	os.Exit(code)
}

// printBenchSummary prints postern against postfwd2 at each connection count.
func printBenchSummary() {
	get := func(server string, conns int) (benchResult, bool) {
		v, ok := benchResults.Load(fmt.Sprintf("BenchmarkPolicyService/%s/conns=%d", server, conns))
		if !ok {
			return benchResult{}, false
		}
		return v.(benchResult), true
	}
	if _, ok := get("postfwd2", 1); !ok {
		return
	}
	fmt.Println("\npolicy service, same run, same client, TCP loopback (decisions/s, p99):")
	fmt.Printf("%-6s %-26s %-26s %-26s %s\n", "conns", "postern-memory", "postern-redis", "postfwd2", "ratio memory/postfwd2, redis/postfwd2 (throughput; p99)")
	for _, conns := range []int{1, 8, 64} {
		mem, _ := get("postern-memory", conns)
		red, _ := get("postern-redis", conns)
		pfw, ok := get("postfwd2", conns)
		if !ok || pfw.rate == 0 {
			continue
		}
		cell := func(r benchResult) string {
			return fmt.Sprintf("%8.0f/s  p99 %8s", r.rate, r.p99.Round(time.Microsecond))
		}
		fmt.Printf("%-6d %-26s %-26s %-26s %.1fx, %.1fx; p99 %.2fx, %.2fx\n", conns, cell(mem), cell(red), cell(pfw),
			mem.rate/pfw.rate, red.rate/pfw.rate, float64(mem.p99)/float64(pfw.p99), float64(red.p99)/float64(pfw.p99))
	}
}

// BenchmarkDecide is the cost of reading and deciding one request of the mix in process,
// without the network: what the throughput above is made of.
func BenchmarkDecide(b *testing.B) {
	log, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		b.Fatal(err)
	}
	d := newTestDaemon(b, benchPolicyd, testOptions{log: log})
	reqs := make([][]byte, 400)
	for i := range reqs {
		reqs[i] = benchRequest(int64(i))
	}
	br := bufio.NewReaderSize(nil, MaxLine)
	var sr bytes.Reader
	b.ResetTimer()
	for i := range b.N {
		sr.Reset(reqs[i%len(reqs)])
		br.Reset(&sr)
		r, err := ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		r.Instance = strconv.Itoa(i) // every message counted once
		d.Daemon.decide(r)
	}
}
