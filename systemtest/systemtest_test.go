package systemtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// shortRun is the number of messages of the run inside `make test`; `make systemtest`
// sets POSTERN_SYSTEMTEST_MESSAGES to 10000.
const shortRun = 300

// TestSystem drives a company's mail through the whole stack while each fault of
// faults() is injected and repaired, then accounts for every message.
func TestSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("the system test needs every real server; skipped with -short")
	}
	n := shortRun
	if v := os.Getenv("POSTERN_SYSTEMTEST_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("POSTERN_SYSTEMTEST_MESSAGES=%q: want a number ≥ 100", v)
		}
	}
	hold := 3 * time.Second
	if n >= 2000 {
		hold = 20 * time.Second
	}
	stats := newDaemonStats()
	rep := runSystem(t, n, &schedule{faults: faults(stats), hold: hold}, stats)
	text := rep.String() + stats.String()
	t.Log("\n" + text)
	if dir := os.Getenv("POSTERN_TEST_LOGS"); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(dir+"/systemtest-report.txt", []byte(text), 0o644)
	}
	if !rep.ok() {
		t.Errorf("the system test found problems; see the report above")
	}
}

// BenchmarkWholeStack is the system test's workload without faults: 2000 messages
// through Postfix and the four daemons; it reports the messages per second submitted and
// each daemon's p50, p99 (from its own histogram) and peak RSS, and fails on any
// accounting problem.
func BenchmarkWholeStack(b *testing.B) {
	for range b.N {
		stats := newDaemonStats()
		began := time.Now()
		rep := runSystem(b, 2000, &schedule{}, stats)
		b.ReportMetric(float64(rep.sent)/rep.submitTime.Seconds(), "msgs/s-submitted")
		b.ReportMetric(float64(rep.sent)/time.Since(began).Seconds(), "msgs/s-with-setup-and-accounting")
		for _, name := range daemonNames {
			p50, _ := stats.quantile(name, 0.5)
			p99, _ := stats.quantile(name, 0.99)
			b.ReportMetric(float64(p50.Microseconds()), name+"-p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), name+"-p99-µs")
			b.ReportMetric(float64(stats.peakKB[name])/1024, name+"-MB-VmHWM")
		}
		if !rep.ok() {
			b.Fatalf("accounting found problems:\n%s", rep)
		}
	}
}

// runSystem starts the stack, sends n messages while sched injects its faults, waits for
// the queue to drain, samples each daemon's telemetry into stats and accounts for every
// message.
func runSystem(t testing.TB, n int, sched *schedule, stats *daemonStats) *report {
	began := time.Now()
	st := startStack(t)
	t.Logf("stack up after %s", time.Since(began).Round(time.Second))

	msgs := workload(st.company, n, 2026)
	results := make([]*result, len(msgs))
	queue := make(chan int)
	var wg sync.WaitGroup
	sendStart := time.Now()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				results[i] = deliver(st.postfix.SMTPAddr, msgs[i], sched)
			}
		}()
	}
	next := 0
	sched.run(t, st, len(msgs), func(upto int) {
		for ; next < upto; next++ {
			queue <- next
		}
	})
	close(queue)
	wg.Wait()
	sendTime := time.Since(sendStart)

	drainStart := time.Now()
	for deadline := time.Now().Add(10 * time.Minute); !st.postfix.QueueEmpty(); {
		if time.Now().After(deadline) {
			q, _ := st.postfix.Queue()
			t.Fatalf("the queue does not drain after every fault is repaired:\n%s", q)
		}
		st.postfix.Flush(t)
		time.Sleep(3 * time.Second)
	}
	t.Logf("%d messages submitted in %s with %d faults; queue drained %s later",
		len(msgs), sendTime.Round(time.Second), len(sched.faults), time.Since(drainStart).Round(time.Second))

	for _, d := range st.daemons {
		if err := stats.sample(d); err != nil {
			t.Errorf("telemetry of %s: %v", d.name, err)
		}
	}
	rep := account(t, st, msgs, results)
	rep.faults, rep.submitTime = sched.log, sendTime
	return rep
}

// result is what the SMTP client saw for one message, over all its attempts.
type result struct {
	accepted  bool
	refused   string   // the final 5xx (or the rate limit's 4xx) when not accepted
	tempfails []string // 4xx replies, with the fault in force
	problems  []string // replies the rules do not call for
}

// deliver submits m as a client MTA would: a 4xx is retried after a pause, a 5xx is
// final. It gives up after ten minutes of 4xx.
func deliver(addr string, m *letter, sched *schedule) *result {
	r := &result{}
	for deadline := time.Now().Add(10 * time.Minute); ; {
		fault := sched.attempt()
		code, text, err := testbench.SendMail(addr, m.mail)
		switch {
		case err != nil:
			r.tempfails = append(r.tempfails, fmt.Sprintf("network error %v [%s]", err, fault))
		case code == 250:
			r.accepted = true
			if m.refusal != "" {
				r.problems = append(r.problems, fmt.Sprintf("accepted, but the rules call for %s", m.refusal))
			}
			return r
		case code/100 == 4 && m.throttled && strings.Contains(text, "sending limit"):
			r.refused = fmt.Sprintf("%d %s", code, text)
			return r
		case code/100 == 4:
			r.tempfails = append(r.tempfails, fmt.Sprintf("%d %s [%s]", code, text, fault))
		default:
			r.refused = fmt.Sprintf("%d %s", code, text)
			if m.refusal == "" || !strings.HasPrefix(text, m.refusal) {
				r.problems = append(r.problems, fmt.Sprintf("refused with %d %s [%s]", code, text, fault))
			}
			return r
		}
		if time.Now().After(deadline) {
			r.problems = append(r.problems, "still refused with 4xx after 10 minutes")
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
}
