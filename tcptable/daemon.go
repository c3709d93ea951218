package tcptable

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/listener"
	"github.com/postern-mail/postern/internal/service"
)

// Daemon is `postern tcptable`.
type Daemon struct {
	cfg   config.Tcptable // the listeners it was started with
	srv   *server
	log   *zap.Logger
	addrs map[string]net.Addr // "socketmap", or a map name for its tcp_table listener
}

// Build returns the daemon; it fits service.Constructor.
func Build(deps service.Deps) (service.Daemon, error) { return New(deps), nil }

// New builds the daemon from the shared dependencies.
func New(deps service.Deps) *Daemon {
	c := deps.Config.Tcptable
	log := deps.Log.Named("tcptable")
	t := newTables(deps.Resolver, c)
	return &Daemon{cfg: c, srv: newServer(t, newMetrics(deps.Registry), log, c.IdleTimeout.D()), log: log}
}

// Name is the command name.
func (d *Daemon) Name() string { return "tcptable" }

// Start binds every listener first, so a busy port fails the start with nothing served,
// and then serves them all.
func (d *Daemon) Start() error {
	bound, err := d.bind()
	if err != nil {
		return err
	}
	d.addrs = map[string]net.Addr{}
	for _, b := range bound {
		d.srv.serve(b.ln, b.p)
		table, key := "every map", "socketmap"
		if t, ok := b.p.(tcpTable); ok {
			table, key = t.table, t.table
		}
		d.addrs[key] = b.ln.Addr()
		d.log.Info("tcptable listening", zap.String("protocol", b.p.name()), zap.String("map", table),
			zap.String("addr", b.ln.Addr().Network()+":"+b.ln.Addr().String()))
	}
	return nil
}

type binding struct {
	ln net.Listener
	p  protocol
}

// bind opens the socketmap listener and one per tcp_table map, or none at all. systemd
// may pass them instead (FileDescriptorName "socketmap", and "tcp-MAP" for a map).
func (d *Daemon) bind() ([]binding, error) {
	var bound []binding
	fail := func(err error) ([]binding, error) {
		for _, b := range bound {
			b.ln.Close()
		}
		return nil, err
	}
	ln, err := listener.Open(d.cfg.Socketmap, "socketmap")
	switch {
	case err == nil:
		bound = append(bound, binding{ln, socketmap{}})
	case !d.cfg.Socketmap.IsZero() || len(d.cfg.TCP) == 0:
		return fail(fmt.Errorf("tcptable: %w", err))
	}
	for _, name := range slices.Sorted(maps.Keys(d.cfg.TCP)) {
		ln, err := listener.Open(d.cfg.TCP[name], "tcp-"+name)
		if err != nil {
			return fail(fmt.Errorf("tcptable: map %s: %w", name, err))
		}
		bound = append(bound, binding{ln, tcpTable{table: name}})
	}
	return bound, nil
}

// Reload takes the new senders, shadow and idle settings at once; listeners stay as they
// are until a restart.
func (d *Daemon) Reload(c *config.Config) error {
	next := c.Tcptable
	d.srv.tables.opts.Store(&next)
	d.srv.idle.Store(int64(next.IdleTimeout.D()))
	if next.Socketmap != d.cfg.Socketmap || !maps.Equal(next.TCP, d.cfg.TCP) {
		return errors.New("tcptable.socketmap or tcptable.tcp changed; restart to apply it")
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight finish and closes every connection,
// within ctx.
func (d *Daemon) Shutdown(ctx context.Context) error { return d.srv.shutdown(ctx) }

var _ service.Daemon = (*Daemon)(nil)
