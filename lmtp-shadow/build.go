package lmtpshadow

import (
	"context"
	"errors"

	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/service"
)

// Build opens the configured journal store and returns the daemon.
func Build(deps service.Deps) (service.Daemon, error) {
	j, err := journal.Open(deps.Config.Journal, deps.Config.Redis)
	if err != nil {
		return nil, err
	}
	return &closingDaemon{Daemon: New(deps, j), journal: j}, nil
}

// closingDaemon closes the journal store after the server drained.
type closingDaemon struct {
	*Daemon
	journal journal.Store
}

func (d *closingDaemon) Shutdown(ctx context.Context) error {
	return errors.Join(d.Daemon.Shutdown(ctx), d.journal.Close())
}
