package welcome

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/safefile"
)

// The Prometheus series of the job, written to a textfile for node_exporter's textfile
// collector: a one-shot job has no /metrics to scrape. Counters continue from the values
// in the previous file, so they only ever grow (a deleted file is a counter reset).
const (
	metricSent        = "postern_welcome_letters_sent_total"
	metricFailures    = "postern_welcome_letter_failures_total"
	metricRuns        = "postern_welcome_runs_total"
	metricLastRun     = "postern_welcome_last_run_timestamp_seconds"
	metricLastSuccess = "postern_welcome_last_success_timestamp_seconds"
	metricPending     = "postern_welcome_pending_letters"
)

// runStats is what one run adds to the textfile.
type runStats struct {
	sent, failed int
	ok           bool
	at           time.Time
}

// writeMetrics merges a run into the textfile at path, atomically and durably.
func writeMetrics(path string, r runStats) error {
	prev := readMetrics(path)
	result := "failure"
	if r.ok {
		result = "success"
		prev[metricLastSuccess] = float64(r.at.Unix())
	}
	prev[metricSent] += float64(r.sent)
	prev[metricFailures] += float64(r.failed)
	prev[metricRuns+`{result="`+result+`"}`]++
	prev[metricLastRun] = float64(r.at.Unix())
	prev[metricPending] = float64(r.failed)

	var b bytes.Buffer
	series := func(name, typ, help string, keys ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", k, strconv.FormatFloat(prev[k], 'f', -1, 64))
		}
	}
	series(metricSent, "counter", "Welcome letters the SMTP server accepted.", metricSent)
	series(metricFailures, "counter", "Welcome letters whose submission failed (each is retried at the next run).", metricFailures)
	series(metricRuns, "counter", "Runs of postern welcome by result (success, failure).",
		metricRuns+`{result="failure"}`, metricRuns+`{result="success"}`)
	series(metricLastRun, "gauge", "When postern welcome last ran (Unix time).", metricLastRun)
	// 0 until a run succeeds, so an alert on its age fires for a job that never worked.
	series(metricLastSuccess, "gauge", "When a run last ended without any failure (Unix time; 0: never).", metricLastSuccess)
	series(metricPending, "gauge", "Letters that failed in the last run and wait for the next.", metricPending)
	if err := safefile.Write(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("welcome: metrics textfile: %w (check welcome.metrics_file)", err)
	}
	return nil
}

// readMetrics reads back the series of an earlier run; an absent or foreign file gives
// none.
func readMetrics(path string) map[string]float64 {
	out := map[string]float64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "postern_welcome_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
