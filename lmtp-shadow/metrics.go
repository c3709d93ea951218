package lmtpshadow

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	copies       *prometheus.CounterVec
	misses       prometheus.Counter
	storeLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_shadow_copies_total",
			Help: "Archive copies by direction and result (archived, deferred, rejected: the store refused it, answered 4xx).",
		}, []string{"direction", "result"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_shadow_journal_misses_total", Help: "Copies archived without a journal entry (filed in missing_folder).",
		}),
		storeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postern_shadow_store_duration_seconds", Help: "Time to deliver one message's copies into the store.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12), // up to ~2 min: lmtp_shadow.timeout is 60 s
		}),
	}
	for _, r := range []string{"archived", "deferred", "rejected"} {
		for _, d := range []string{"outbound", "inbound", "internal", "unknown"} {
			m.copies.WithLabelValues(d, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.copies, m.misses, m.storeLatency)
	}
	return m
}
