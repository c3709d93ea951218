package tcptable

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-mail/postern/internal/config"
)

type metrics struct {
	lookups     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	connections *prometheus.GaugeVec
	badRequests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_tcptable_lookups_total",
			Help: "Table lookups by map, protocol (socketmap, tcp) and result (found, notfound, temp, perm); map \"unknown\" is a name postern does not serve.",
		}, []string{"map", "protocol", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "postern_tcptable_lookup_duration_seconds",
			Help:    "Time from a parsed request to its encoded answer.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1 µs … 262 ms
		}, []string{"protocol"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "postern_tcptable_connections", Help: "Open client connections by protocol.",
		}, []string{"protocol"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_tcptable_bad_requests_total",
			Help: "Requests that broke the protocol's framing (or were too long); each closed its connection.",
		}, []string{"protocol"}),
	}
	for _, p := range []string{"socketmap", "tcp"} {
		m.latency.WithLabelValues(p)
		m.connections.WithLabelValues(p)
		m.badRequests.WithLabelValues(p)
		for _, name := range config.TcptableMaps {
			for _, s := range []Status{Found, NotFound, Temporary, Permanent} {
				m.lookups.WithLabelValues(name, p, s.Result())
			}
		}
	}
	m.lookups.WithLabelValues("unknown", "socketmap", Permanent.Result())
	if reg != nil {
		reg.MustRegister(m.lookups, m.latency, m.connections, m.badRequests)
	}
	return m
}

// observe counts one answered lookup; table is a served map name or "unknown".
func (m *metrics) observe(protocol, table string, s Status, took time.Duration) {
	m.lookups.WithLabelValues(table, protocol, s.Result()).Inc()
	m.latency.WithLabelValues(protocol).Observe(took.Seconds())
}
