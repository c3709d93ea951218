package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "auto", "info") // not a terminal: JSON
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	log.Debug("hidden")
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil || line["msg"] != "hello" {
		t.Fatalf("want one JSON line, got %q (%v)", buf.String(), err)
	}
	if _, err := NewLogger(&buf, "json", "loud"); err == nil {
		t.Fatal("a bad level was accepted")
	}
}

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	var notReady error = errors.New("no snapshot yet")
	srv, err := Listen("127.0.0.1:0", reg, func() error { return notReady })
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(t.Context())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no snapshot yet") {
		t.Errorf("/readyz %d %q, want 503 with the reason", code, body)
	}
	notReady = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d once ready", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "postern_test_total 1") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lacks the series:\n%.300s", body)
	}
	if _, err := Listen(srv.Addr(), reg, nil); err == nil {
		t.Error("a busy port was accepted")
	}
}
