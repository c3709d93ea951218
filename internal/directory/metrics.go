package directory

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the directory's Prometheus series; all labels have bounded values.
type metrics struct {
	syncs      *prometheus.CounterVec
	duration   prometheus.Histogram
	objects    *prometheus.GaugeVec
	ambiguous  prometheus.Gauge
	lastSynced prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, d *Directory) *metrics {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_directory_syncs_total", Help: "Directory synchronisations by result (success, failure).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postern_directory_sync_duration_seconds", Help: "Time taken to read the whole directory.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "postern_directory_objects", Help: "Objects in the current snapshot by kind.",
		}, []string{"kind"}),
		ambiguous: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postern_directory_ambiguous_addresses", Help: "Addresses claimed by more than one object; lookups of them fail temporarily.",
		}),
		lastSynced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postern_directory_snapshot_timestamp_seconds", Help: "When the snapshot in use was synchronised (Unix time).",
		}),
	}
	m.syncs.WithLabelValues("success")
	m.syncs.WithLabelValues("failure")
	if reg != nil {
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "postern_directory_snapshot_age_seconds", Help: "Age of the snapshot in use; -1 when there is none.",
		}, func() float64 {
			s := d.current.Load()
			if s == nil {
				return -1
			}
			return d.options().Now().Sub(s.SyncedAt).Seconds()
		})
		reg.MustRegister(m.syncs, m.duration, m.objects, m.ambiguous, m.lastSynced, age)
	}
	return m
}

func (m *metrics) observeSync(took time.Duration, err error) {
	m.duration.Observe(took.Seconds())
	if err != nil {
		m.syncs.WithLabelValues("failure").Inc()
		return
	}
	m.syncs.WithLabelValues("success").Inc()
}

func (m *metrics) observeSnapshot(s *Snapshot) {
	for kind, n := range s.Count() {
		m.objects.WithLabelValues(kind).Set(float64(n))
	}
	m.ambiguous.Set(float64(len(s.Ambiguous)))
	m.lastSynced.Set(float64(s.SyncedAt.Unix()))
}
