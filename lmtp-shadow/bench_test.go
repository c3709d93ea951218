package lmtpshadow

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// BenchmarkArchiveVsDirect measures messages per second archived through lmtp-shadow
// into Cyrus, beside Postfix delivering the same messages straight to Cyrus' lmtpd, in
// one run. Read the ratio: the machines are shared and noisy.
func BenchmarkArchiveVsDirect(b *testing.B) {
	const n = 300
	bb := startBench(b)
	p := shadowPostfix(b, bb.cyrus, bb.addr)
	p.Postconf(b, map[string]string{"recipient_bcc_maps": ""}) // one copy per message in each round
	var archived, direct float64
	for i := 0; i < b.N; i++ {
		archived += round(b, p, n, "shadow@corp.example.test")
		direct += round(b, p, n, "bob@corp.example.test")
	}
	archived, direct = archived/float64(b.N), direct/float64(b.N)
	b.ReportMetric(archived, "archived-msgs/s")
	b.ReportMetric(direct, "direct-msgs/s")
	b.ReportMetric(archived/direct, "ratio")
	b.Logf("20 KB messages: %.0f/s through lmtp-shadow, %.0f/s straight to Cyrus: ratio %.2f", archived, direct, archived/direct)
}

// round sends n messages of 20 KB to rcpt through Postfix and returns messages per
// second until the queue is empty.
func round(b *testing.B, p *testbench.Postfix, n int, rcpt string) float64 {
	b.Helper()
	start := time.Now()
	src := exec.Command("smtp-source", "-s", "8", "-m", fmt.Sprint(n), "-l", "20480", "-f", "alice@corp.example.test", "-t", rcpt, "-S", "bench", p.SMTPAddr)
	if out, err := src.CombinedOutput(); err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	p.WaitQueueEmpty(b, 5*time.Minute)
	return float64(n) / time.Since(start).Seconds()
}
