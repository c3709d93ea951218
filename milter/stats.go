package milter

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Stamp kinds and results; they are metric label values.
const (
	stampDisclaimer = "disclaimer"
	stampSignature  = "signature"

	resultAdded       = "added"
	resultPresent     = "already_present" // marker header or marker text found
	resultSkipped     = "skipped"         // the stamp package left the message alone (signed, calendar, …)
	resultTooBig      = "too_big"
	resultError       = "error"
	resultUnavailable = "directory_unavailable"
)

// metrics are the milter's Prometheus series. Labels are directions, actions and fixed
// results only: never an address, a domain or an IP.
type metrics struct {
	messages       *prometheus.CounterVec
	recipients     *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	stamps         *prometheus.CounterVec
	journal        *prometheus.CounterVec
	dirUnavailable prometheus.Counter
	panics         prometheus.Counter
	inFlight       prometheus.Gauge
	duration       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	byDirAction := []string{"direction", "action"}
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_milter_messages_total",
			Help: "Messages by direction and action (accept, stamp, tempfail)."}, byDirAction),
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_milter_recipients_total",
			Help: "Accepted envelope recipients of those messages, by direction and action."}, byDirAction),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_milter_bytes_total",
			Help: "Size of those messages as received, by direction and action."}, byDirAction),
		stamps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_milter_stamps_total",
			Help: "Disclaimer and signature decisions for messages they apply to, by kind and result."}, []string{"kind", "result"}),
		journal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_milter_journal_writes_total",
			Help: "Envelope journal writes by result (ok, error)."}, []string{"result"}),
		dirUnavailable: prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_milter_directory_unavailable_total",
			Help: "Messages accepted without a personal signature because the directory was unavailable."}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_milter_panics_total",
			Help: "Recovered panics; each failed one message temporarily."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postern_milter_messages_in_flight",
			Help: "Messages between MAIL FROM and end of message."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "postern_milter_end_of_message_seconds",
			Help:    "Time spent at end of message (stamping, journal, reply).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	for _, d := range allDirections {
		for _, a := range allActions {
			m.messages.WithLabelValues(string(d), a)
			m.recipients.WithLabelValues(string(d), a)
			m.bytes.WithLabelValues(string(d), a)
		}
	}
	for _, k := range []string{stampDisclaimer, stampSignature} {
		for _, r := range []string{resultAdded, resultPresent, resultSkipped, resultTooBig, resultError, resultUnavailable} {
			m.stamps.WithLabelValues(k, r)
		}
	}
	m.journal.WithLabelValues("ok")
	m.journal.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.messages, m.recipients, m.bytes, m.stamps, m.journal, m.dirUnavailable,
			m.panics, m.inFlight, m.duration)
	}
	return m
}

// count records one finished message.
func (m *metrics) count(dir Direction, action string, rcpts int, size int64) {
	m.messages.WithLabelValues(string(dir), action).Inc()
	m.recipients.WithLabelValues(string(dir), action).Add(float64(rcpts))
	m.bytes.WithLabelValues(string(dir), action).Add(float64(size))
}
