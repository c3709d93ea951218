package systemtest

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// latencyMetric is the histogram each daemon keeps of its own work per request.
var latencyMetric = map[string]string{
	"tcptable":    "postern_tcptable_lookup_duration_seconds",
	"policyd":     "postern_policyd_decision_duration_seconds",
	"milter":      "postern_milter_end_of_message_seconds",
	"lmtp-shadow": "postern_shadow_store_duration_seconds",
}

// daemonNames are the daemons in the order the reports list them.
var daemonNames = []string{"tcptable", "policyd", "milter", "lmtp-shadow"}

// daemonStats adds up what each daemon's own telemetry says over all its lives in a run
// (a daemon killed and restarted starts its counters afresh): its latency histogram and
// its peak resident memory.
type daemonStats struct {
	mu      sync.Mutex
	buckets map[string]map[float64]float64 // daemon -> upper bound -> cumulative count
	peakKB  map[string]int64               // daemon -> largest VmHWM seen
}

func newDaemonStats() *daemonStats {
	return &daemonStats{buckets: map[string]map[float64]float64{}, peakKB: map[string]int64{}}
}

// sample reads d's histogram from its /metrics and its VmHWM; call it before the daemon
// is killed and at the end of the run.
func (s *daemonStats) sample(d *daemon) error {
	resp, err := http.Get("http://" + d.telemetry + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return err
	}
	kb, err := d.proc.PeakRSS()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peakKB[d.name] = max(s.peakKB[d.name], kb)
	f := families[latencyMetric[d.name]]
	if f == nil {
		return fmt.Errorf("%s: no %s on /metrics", d.name, latencyMetric[d.name])
	}
	if s.buckets[d.name] == nil {
		s.buckets[d.name] = map[float64]float64{}
	}
	for _, m := range f.GetMetric() {
		sawInf := false
		for _, b := range m.GetHistogram().GetBucket() {
			s.buckets[d.name][b.GetUpperBound()] += float64(b.GetCumulativeCount())
			sawInf = sawInf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !sawInf {
			s.buckets[d.name][math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return nil
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linear
// within the bucket that holds it.
func (s *daemonStats) quantile(name string, q float64) (time.Duration, float64) {
	b := s.buckets[name]
	bounds := make([]float64, 0, len(b))
	for ub := range b {
		bounds = append(bounds, ub)
	}
	sort.Float64s(bounds)
	total := b[math.Inf(1)]
	if total == 0 {
		return 0, 0
	}
	rank, lower, below := q*total, 0.0, 0.0
	for _, ub := range bounds {
		if b[ub] >= rank {
			if math.IsInf(ub, 1) {
				return time.Duration(lower * float64(time.Second)), total
			}
			frac := (rank - below) / (b[ub] - below)
			return time.Duration((lower + (ub-lower)*frac) * float64(time.Second)), total
		}
		lower, below = ub, b[ub]
	}
	return 0, total
}

func (s *daemonStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("each daemon by its own telemetry, over all its lives in the run (p50/p99 from its histogram):\n")
	for _, name := range daemonNames {
		p50, n := s.quantile(name, 0.5)
		p99, _ := s.quantile(name, 0.99)
		fmt.Fprintf(&b, "  %-12s %8.0f requests  p50 %-9s p99 %-9s peak RSS %5.1f MB  (%s)\n", name, n,
			p50.Round(time.Microsecond), p99.Round(time.Microsecond), float64(s.peakKB[name])/1024, latencyMetric[name])
	}
	return b.String()
}
