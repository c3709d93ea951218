package systemtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

// The accounting finds each message's token in the decoded text of every variant the
// workload writes (UTF-8, GBK, HTML alternative, attachments), so a missing token in a
// delivered copy means the copy was damaged, not that the reader failed.
func TestWorkloadTokensReadBack(t *testing.T) {
	for _, m := range workload(newCompany(), 200, 1) {
		text, err := bodyText(m.mail.Data)
		if err != nil || !strings.Contains(text, m.token) {
			t.Fatalf("#%d: token %q not in the decoded text (%v):\n%s", m.n, m.token, err, text)
		}
	}
}

// quantile reads a cumulative histogram as Prometheus' histogram_quantile does.
func TestQuantile(t *testing.T) {
	s := newDaemonStats()
	s.buckets["policyd"] = map[float64]float64{0.001: 50, 0.01: 90, 0.1: 100, math.Inf(1): 100}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{
		{0.25, 500 * time.Microsecond}, {0.5, time.Millisecond}, {0.7, 5500 * time.Microsecond}, {0.99, 91 * time.Millisecond},
	} {
		if got, n := s.quantile("policyd", tt.q); got != tt.want || n != 100 {
			t.Errorf("quantile(%v) = %v of %v requests, want %v of 100", tt.q, got, n, tt.want)
		}
	}
}
