// Package milter is `postern milter`, in Postfix's smtpd_milters on the internal MTA:
// it adds the disclaimer and the sender's signature (from the directory) to the
// messages the configuration says, records every message's envelope in the journal for
// the shadow archive, and counts traffic. It must never damage a message doing so: the
// MIME work is the milter/stamp package's, which changes only what it must, and every
// failure either leaves the message as it was or defers it.
package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/emersion/go-milter"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/listener"
	"github.com/postern-mail/postern/internal/service"
)

// Daemon is the milter server.
type Daemon struct {
	log            *zap.Logger
	resolver       *directory.Resolver
	metrics        *metrics
	insert         insertFunc
	now            func() time.Time
	listen         config.Listen
	journalCfg     config.Journal
	journalTimeout time.Duration
	store          journal.Store // nil until the journal is enabled
	expireEvery    time.Duration

	rules   atomic.Pointer[rules]
	traffic atomic.Pointer[trafficLog]

	srv      *gm.Server
	addr     net.Addr
	shutting atomic.Bool
	busy     atomic.Int64 // messages between MAIL FROM and their end
	stop     chan struct{}
	bg       sync.WaitGroup

	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	pending *trackedConn // accepted, waiting for go-milter to build its session
}

// New builds the milter from the shared dependencies; Start binds its listener.
func New(deps service.Deps) (service.Daemon, error) { return newDaemon(deps) }

func newDaemon(deps service.Deps) (*Daemon, error) {
	c := deps.Config
	r, err := compile(c)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	d := &Daemon{
		log:            log.With(zap.String("daemon", "milter")),
		resolver:       deps.Resolver,
		metrics:        newMetrics(deps.Registry),
		insert:         stampInsert,
		now:            time.Now,
		listen:         c.Milter.Listen,
		journalCfg:     c.Journal,
		journalTimeout: c.Journal.Timeout.D(),
		expireEvery:    time.Hour,
		stop:           make(chan struct{}),
		conns:          map[*trackedConn]struct{}{},
	}
	d.rules.Store(r)
	if r.journal {
		if d.store, err = journal.Open(c.Journal, c.Redis); err != nil {
			return nil, err
		}
	}
	t, err := openTrafficLog(c.Milter.TrafficLog.File)
	if err != nil {
		return nil, err
	}
	d.traffic.Store(t)
	return d, nil
}

// Name is the daemon's command name.
func (d *Daemon) Name() string { return "milter" }

// Addr is the address the milter listens on, once started.
func (d *Daemon) Addr() net.Addr { return d.addr }

// The macros the milter asks Postfix for at each stage (SMFIF_SETSYMLIST): a stage's list
// replaces Postfix's default list for it (milter_*_macros), and each stage's macros
// replace the previous stage's in go-milter, so what is needed is asked for where it is
// read. The queue id (i) exists from the first accepted recipient on.
var symList = map[gm.Stage][]string{
	gm.StageMailFrom: {"i", "{auth_authen}", "{client_addr}", "{client_name}"},
	gm.StageRcptTo:   {"i"},
	gm.StageEOH:      {"i", "{auth_authen}"},
	gm.StageEOM:      {"i", "{auth_authen}"},
}

// Start binds the listener (or takes the one systemd passed as "milter") and serves.
func (d *Daemon) Start() error {
	ln, err := listener.Open(d.listen, "milter")
	if err != nil {
		return err
	}
	d.addr = ln.Addr()
	d.srv = &gm.Server{
		NewMilter: d.newSession,
		Actions:   gm.OptAddHeader | gm.OptChangeHeader | gm.OptChangeBody | gm.OptSetSymList,
		SymList:   symList,
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if err := d.srv.Serve(&trackingListener{Listener: ln, d: d}); err != nil && !errors.Is(err, gm.ErrServerClosed) && !d.shutting.Load() {
			d.log.Error("milter: listener failed", zap.Error(err))
		}
	}()
	if d.store != nil {
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.expireJournal(d.stop, d.expireEvery)
		}()
	}
	d.log.Info("milter: listening", zap.String("addr", d.listen.String()), zap.Bool("journal", d.store != nil))
	return nil
}

// Reload applies a new configuration: templates and disclaimers are read and parsed
// first, and only swapped in if all of them load. The listener and the journal store
// keep their settings until a restart (turning the journal on needs one too).
func (d *Daemon) Reload(c *config.Config) error {
	r, err := compile(c)
	if err != nil {
		return fmt.Errorf("milter: reload: %w (the running configuration stays)", err)
	}
	if r.journal && d.store == nil {
		return fmt.Errorf("milter: reload: milter.journal.enabled needs a restart to open the journal store (the running configuration stays)")
	}
	if c.Milter.Listen != d.listen {
		d.log.Warn("milter.listen changed; restart to apply it")
	}
	if !reflect.DeepEqual(c.Journal, d.journalCfg) {
		d.log.Warn("journal store settings changed; restart to apply them")
	}
	t, err := openTrafficLog(c.Milter.TrafficLog.File)
	if err != nil {
		return fmt.Errorf("milter: reload: %w (the running configuration stays)", err)
	}
	d.rules.Store(r)
	if old := d.traffic.Swap(t); old != nil {
		old.Close()
	}
	return nil
}

// Shutdown stops accepting connections, lets messages in progress finish within ctx,
// then closes the remaining (idle) connections; Postfix applies milter_default_action
// to anything after that.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.shutting.Store(true)
	if d.srv != nil {
		d.srv.Close()
	}
	var err error
	for d.busy.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("milter: %d message(s) still in progress: %w", d.busy.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Conn.Close() // the session's goroutine sees the error and cleans up
	}
	d.mu.Unlock()
	close(d.stop)
	d.bg.Wait()
	if d.store != nil {
		d.store.Close()
	}
	d.traffic.Load().Close()
	return err
}

// newSession is go-milter's NewMilter. go-milter's Serve calls it right after Accept, in
// the same goroutine, so the connection just accepted is the one it is for; that link
// lets a session clean up when Postfix drops the connection mid-message (go-milter has
// no callback for that).
func (d *Daemon) newSession() gm.Milter {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &session{d: d, conn: d.pending}
	if d.pending != nil {
		d.pending.sess = s
		d.pending = nil
	}
	return s
}

// trackingListener tracks every connection, for the drain and the disconnect cleanup.
type trackingListener struct {
	net.Listener
	d *Daemon
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, d: l.d}
	l.d.mu.Lock()
	l.d.conns[tc] = struct{}{}
	l.d.pending = tc
	l.d.mu.Unlock()
	return tc, nil
}

// trackedConn is one milter connection; go-milter closes it from the session's own
// goroutine when the session ends, which is when an unfinished message is released.
type trackedConn struct {
	net.Conn
	d    *Daemon
	sess *session
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.d.mu.Lock()
		delete(c.d.conns, c)
		s := c.sess
		c.d.mu.Unlock()
		if s != nil {
			s.reset()
		}
	})
	return err
}
