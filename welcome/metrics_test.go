package welcome

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// checkExposition parses the textfile as node_exporter would, and checks every series'
// type.
func checkExposition(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s is not valid Prometheus text format: %v", path, err)
	}
	for name, typ := range map[string]string{metricSent: "COUNTER", metricFailures: "COUNTER", metricRuns: "COUNTER",
		metricLastRun: "GAUGE", metricLastSuccess: "GAUGE", metricPending: "GAUGE"} {
		if families[name] == nil || families[name].GetType().String() != typ {
			t.Errorf("%s: %v, want a %s", name, families[name], typ)
		}
	}
}

func TestMetricsAccumulateAcrossRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "welcome.prom")
	at := time.Unix(1_790_000_000, 0)
	runs := []struct {
		name string
		run  runStats
		want map[string]float64
	}{
		{"first run fails", runStats{failed: 3, at: at},
			map[string]float64{metricSent: 0, metricFailures: 3, metricPending: 3, metricRuns + `{result="failure"}`: 1, metricLastSuccess: 0}},
		{"second run sends", runStats{sent: 3, ok: true, at: at.Add(time.Hour)},
			map[string]float64{metricSent: 3, metricFailures: 3, metricPending: 0, metricRuns + `{result="success"}`: 1,
				metricLastSuccess: float64(at.Add(time.Hour).Unix()), metricLastRun: float64(at.Add(time.Hour).Unix())}},
		{"third run partly", runStats{sent: 1, failed: 1, at: at.Add(2 * time.Hour)},
			map[string]float64{metricSent: 4, metricFailures: 4, metricPending: 1, metricRuns + `{result="failure"}`: 2,
				metricLastSuccess: float64(at.Add(time.Hour).Unix())}},
	}
	for _, r := range runs {
		if err := writeMetrics(path, r.run); err != nil {
			t.Fatal(err)
		}
		got := readMetrics(path)
		for k, v := range r.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", r.name, k, got[k], v)
			}
		}
		checkExposition(t, path)
	}
}
