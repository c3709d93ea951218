// Package service is what every postern daemon shares: the dependencies it is built
// from and the interface the runner (cmd/postern) drives.
package service

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// Deps are built once per process and handed to every daemon.
type Deps struct {
	Config    *config.Config
	Log       *zap.Logger
	Registry  prometheus.Registerer
	Directory *directory.Directory
	Resolver  *directory.Resolver
}

// Daemon is one postern server (tcptable, policyd, milter, lmtp-shadow).
type Daemon interface {
	// Name is the daemon's command name, e.g. "tcptable".
	Name() string
	// Start binds every listener, so a busy port fails the start, then serves in the
	// background.
	Start() error
	// Reload applies a new configuration that has already been validated.
	Reload(c *config.Config) error
	// Shutdown stops accepting and lets requests in flight finish within ctx.
	Shutdown(ctx context.Context) error
}

// Constructor builds a daemon from the shared dependencies.
type Constructor func(Deps) (Daemon, error)
