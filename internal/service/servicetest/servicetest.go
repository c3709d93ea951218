// Package servicetest runs a postern daemon in-process for tests, built from a
// configuration file's text the way `postern <daemon>` builds it.
package servicetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
)

// Deps parses yaml (relative paths from dir), creates its state directory and syncs the
// directory once. A failed sync is logged and left as it is: lookups are then temporary
// failures, as in production before the first sync.
func Deps(t testing.TB, dir, yaml string) service.Deps {
	t.Helper()
	c, err := config.Parse(filepath.Join(dir, "postern.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	reg := prometheus.NewRegistry()
	d, resolver, err := directory.FromConfig(c, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(context.Background()); err != nil {
		t.Logf("directory sync failed (lookups are temporary failures): %v", err)
	}
	return service.Deps{Config: c, Log: log, Registry: reg, Directory: d, Resolver: resolver}
}

// Start builds the daemon with build, starts it, and shuts it down (draining) when the
// test ends.
func Start[D service.Daemon](t testing.TB, deps service.Deps, build func(service.Deps) (D, error)) D {
	t.Helper()
	d, err := build(deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	return d
}
