package tcptable

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// writeTimeout bounds writing one answer; Postfix waits 100 s for it.
const writeTimeout = 10 * time.Second

// server serves lookups on any number of listeners, one goroutine per connection, each
// connection's requests answered in order.
type server struct {
	tables  *tables
	metrics *metrics
	log     *zap.Logger
	idle    atomic.Int64 // idle timeout, nanoseconds

	closing   atomic.Bool
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func newServer(t *tables, m *metrics, log *zap.Logger, idle time.Duration) *server {
	s := &server{tables: t, metrics: m, log: log, conns: map[net.Conn]struct{}{}}
	s.idle.Store(int64(idle))
	return s
}

// serve accepts connections on ln in the background until shutdown.
func (s *server) serve(ln net.Listener, p protocol) {
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	go s.accept(ln, p)
}

func (s *server) accept(ln net.Listener, p protocol) {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			s.log.Warn("accept failed; retrying", zap.String("protocol", p.name()), zap.Stringer("addr", ln.Addr()), zap.Error(err))
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.track(c) {
			c.Close()
			return
		}
		go s.handle(c, p)
	}
}

// track registers a connection for shutdown; false once shutdown has begun.
func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// handle answers one client's requests in order until it hangs up, stays idle too long,
// breaks the framing, or the server shuts down.
func (s *server) handle(c net.Conn, p protocol) {
	gauge := s.metrics.connections.WithLabelValues(p.name())
	gauge.Inc()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("lookup panicked; connection closed (Postfix retries)", zap.String("protocol", p.name()), zap.Any("panic", v), zap.Stack("stack"))
		}
		c.Close()
		gauge.Dec()
		s.untrack(c)
	}()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	defer func() { // answers a pipelining client is still owed
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_ = w.Flush()
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Duration(s.idle.Load())))
		if s.closing.Load() { // after the deadline is set: see shutdown
			return
		}
		req, err := p.read(r)
		if err != nil {
			s.readFailed(p, c, err)
			return
		}
		wire := s.answer(p, req)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(wire); err != nil {
			return
		}
		// Flush once the client has nothing more queued: a client that waits for each
		// answer (Postfix) gets it at once, one that pipelines gets them in batches.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// answer looks the request up, turns an answer too large for the protocol into a
// temporary failure (never a truncated list), counts and logs it, and encodes it.
func (s *server) answer(p protocol, req request) []byte {
	start := time.Now()
	a := s.lookup(req)
	wire, err := p.encode(a)
	if err != nil {
		a = temporary("answer too large", fmt.Sprintf("the %s answer for %q is %v; it is never truncated", req.table, req.key, err))
		wire, _ = p.encode(a)
	}
	table := req.table
	if lookups[table] == nil {
		table = "unknown"
	}
	s.metrics.observe(p.name(), table, a.Status, time.Since(start))
	if a.Status == Temporary || a.Status == Permanent {
		s.log.Warn("lookup failed; Postfix defers the mail and retries",
			zap.String("map", table), zap.String("protocol", p.name()), zap.String("key", truncate(req.key, 300)),
			zap.String("result", a.Status.Result()), zap.String("reason", a.Detail))
	}
	return wire
}

func (s *server) lookup(req request) Answer {
	if req.bad != nil {
		return *req.bad
	}
	return s.tables.lookup(req.table, req.key)
}

// readFailed logs why a connection ends, unless the client simply hung up or idled out.
func (s *server) readFailed(p protocol, c net.Conn, err error) {
	switch {
	case errors.Is(err, errFraming):
		s.metrics.badRequests.WithLabelValues(p.name()).Inc()
		s.log.Warn("malformed request; connection closed", zap.String("protocol", p.name()),
			zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
	case errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed), s.closing.Load():
	default:
		s.log.Debug("connection ended", zap.String("protocol", p.name()), zap.Error(err))
	}
}

// shutdown stops accepting, lets every connection finish the request it is answering,
// closes idle ones at once, and waits for them within ctx; then it closes what is left.
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	var errs []error
	for _, ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	// A connection blocked reading (idle) returns at once; one answering a request finds
	// closing set when it comes back to read. handle sets its own deadline before it
	// checks closing, so this deadline cannot be overwritten unnoticed.
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		errs = append(errs, fmt.Errorf("tcptable: connections still open at the drain deadline: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
