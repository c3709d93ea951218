package policyd

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// metrics are policyd's Prometheus series. Label values are bounded: rule names come
// from the configuration, stages and actions from fixed lists.
type metrics struct {
	decisions   *prometheus.CounterVec   // rule, stage, action
	latency     *prometheus.HistogramVec // stage
	malformed   prometheus.Counter
	connections prometheus.Gauge
	storeErrors *prometheus.CounterVec // store, action
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_policyd_decisions_total",
			Help: "Policy decisions by the rule that decided (none: no rule objected), protocol stage and action.",
		}, []string{"rule", "stage", "action"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "postern_policyd_decision_duration_seconds",
			Help:    "Time from a request's last line to its reply, by protocol stage.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12), // 50 µs .. 1.9 s
		}, []string{"stage"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_policyd_malformed_requests_total",
			Help: "Requests that broke the policy protocol; each closed its connection.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postern_policyd_connections",
			Help: "Open connections from Postfix.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_policyd_rate_limit_store_errors_total",
			Help: "Rate-limit decisions the store (redis or memory) could not answer, by the action taken instead (policyd.on_redis_failure).",
		}, []string{"store", "action"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.malformed, m.connections, m.storeErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stageLabel bounds the protocol_state label to the states Postfix sends.
func stageLabel(state string) string {
	switch state {
	case "CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "VRFY", "ETRN":
		return strings.ToLower(strings.ReplaceAll(state, "-", "_"))
	}
	return "other"
}

func (m *metrics) observe(v Verdict, state string, took time.Duration) {
	stage := stageLabel(state)
	m.decisions.WithLabelValues(v.Rule, stage, v.Action.String()).Inc()
	m.latency.WithLabelValues(stage).Observe(took.Seconds())
}

// failureLog counts every decision the rate-limit store could not answer and logs it,
// at most once every 10 s with the number of failures in between, so an outage is
// visible without flooding the log.
type failureLog struct {
	log     *zap.Logger
	metrics *metrics

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (f *failureLog) report(store, action string, err error) {
	f.metrics.storeErrors.WithLabelValues(store, action).Inc()
	f.mu.Lock()
	now := time.Now()
	if now.Sub(f.last) < 10*time.Second {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	n := f.suppressed
	f.last, f.suppressed = now, 0
	f.mu.Unlock()
	f.log.Warn("rate limits cannot be counted: the store does not answer (see policyd.on_redis_failure)",
		zap.String("store", store), zap.String("action", action), zap.Int("failures_since_last_report", n), zap.Error(err))
}
