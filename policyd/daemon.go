package policyd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/listener"
	"github.com/postern-mail/postern/internal/ratelimit"
	"github.com/postern-mail/postern/internal/service"
)

// Timeouts of one connection. Postfix closes a policy connection after 300 s idle
// (smtpd_policy_service_max_idle) and waits 100 s for a reply
// (smtpd_policy_service_timeout); policyd waits longer for the next request and
// answers well within that.
const (
	idleTimeout     = 10 * time.Minute // for the next request
	writeTimeout    = 10 * time.Second // for a reply to be taken
	decisionTimeout = 10 * time.Second // for one decision; every Redis call has redis.timeout
	storeCloseDelay = 30 * time.Second // an old Redis pool outlives a reload by this much
)

// Daemon is `postern policyd`: the Postfix policy service.
type Daemon struct {
	log      *zap.Logger
	resolver *directory.Resolver
	metrics  *metrics
	failures *failureLog
	listen   config.Listen

	policy atomic.Pointer[Policy]

	mu       sync.Mutex // guards everything below
	store    ratelimit.Store
	redisCfg config.Redis
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  bool
	wg       sync.WaitGroup
}

var _ service.Daemon = (*Daemon)(nil)

// New builds the daemon from the shared dependencies; Start binds and serves.
func New(deps service.Deps) (*Daemon, error) {
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("policyd: metrics: %w", err)
	}
	log := deps.Log.Named("policyd")
	d := &Daemon{
		log:      log,
		resolver: deps.Resolver,
		metrics:  m,
		failures: &failureLog{log: log, metrics: m},
		listen:   deps.Config.Policyd.Listen,
		conns:    map[*conn]struct{}{},
	}
	d.store, d.redisCfg = newStore(deps.Config.Redis), deps.Config.Redis
	d.policy.Store(NewPolicy(deps.Config, d.resolver, d.store, d.failures))
	d.describe(deps.Config)
	return d, nil
}

// Build is New as a service.Constructor.
func Build(deps service.Deps) (service.Daemon, error) { return New(deps) }

// newStore is Redis when it is configured, else this process's memory.
func newStore(c config.Redis) ratelimit.Store {
	if c.Enabled() {
		return ratelimit.NewRedis(c)
	}
	return ratelimit.NewMemory(nil)
}

func (d *Daemon) describe(c *config.Config) {
	p := c.Policyd
	d.log.Info("policy configured",
		zap.Strings("internal_only_groups", p.InternalOnly.Groups),
		zap.Bool("sender_login", p.SenderLogin.Enforce),
		zap.Int("rate_limits", len(p.RateLimits)),
		zap.String("rate_limit_store", d.store.Name()),
		zap.String("on_redis_failure", p.OnRedisFailure))
	if len(p.RateLimits) > 0 && !c.Redis.Enabled() {
		d.log.Info("rate limits are counted in memory: each policyd instance has its own budget, and a restart forgets it (configure redis to share them)")
	}
}

// Name is "policyd".
func (d *Daemon) Name() string { return "policyd" }

// Start binds the listener (or takes systemd's), then serves in the background.
func (d *Daemon) Start() error {
	ln, err := listener.Open(d.listen, "policyd")
	if err != nil {
		return fmt.Errorf("policyd: %w", err)
	}
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
	d.log.Info("listening", zap.String("addr", ln.Addr().Network()+":"+ln.Addr().String()))
	go d.accept(ln)
	return nil
}

// Addr is the bound address, e.g. "127.0.0.1:10040" (after Start).
func (d *Daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// Reload swaps in the rules of c. A changed Redis configuration gets a new store (its
// counters start from what that Redis holds; memory counters do not carry over); a
// changed listener needs a restart.
func (d *Daemon) Reload(c *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !reflect.DeepEqual(c.Redis, d.redisCfg) {
		old := d.store
		d.store, d.redisCfg = newStore(c.Redis), c.Redis
		time.AfterFunc(storeCloseDelay, func() { _ = old.Close() })
	}
	d.policy.Store(NewPolicy(c, d.resolver, d.store, d.failures))
	d.describe(c)
	if c.Policyd.Listen != d.listen {
		d.log.Warn("policyd.listen changed; restart policyd to apply it", zap.Stringer("listening", d.listen), zap.Stringer("configured", c.Policyd.Listen))
	}
	return nil
}

// Shutdown stops accepting, closes idle connections, lets requests being decided get
// their reply, and closes what is left when ctx ends.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	if d.ln != nil {
		d.ln.Close()
	}
	for c := range d.conns {
		if c.idle {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	d.mu.Unlock()
	drained := make(chan struct{})
	go func() { d.wg.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		d.mu.Lock()
		for c := range d.conns {
			c.Close()
		}
		d.mu.Unlock()
		<-drained
		err = fmt.Errorf("policyd: connections still busy at the drain deadline were closed: %w", ctx.Err())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(err, d.store.Close())
}

// accept serves every connection in its own goroutine until the listener closes.
func (d *Daemon) accept(ln net.Listener) {
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if d.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// e.g. EMFILE: wait and try again rather than spin or stop serving.
			d.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("in", backoff))
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		c := &conn{Conn: nc}
		if !d.track(c) {
			nc.Close()
			return
		}
		go d.serve(c)
	}
}

func (d *Daemon) isClosing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closing
}

// track registers a new connection, unless the daemon is shutting down.
func (d *Daemon) track(c *conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return false
	}
	d.conns[c] = struct{}{}
	d.wg.Add(1)
	d.metrics.connections.Inc()
	return true
}

func (d *Daemon) untrack(c *conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns, c)
	d.metrics.connections.Dec()
	d.wg.Done()
}
