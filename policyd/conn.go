package policyd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"
)

// conn is one connection from a Postfix smtpd process: many requests, one at a time,
// each answered with exactly one reply.
type conn struct {
	net.Conn
	idle bool // waiting for a request; guarded by Daemon.mu
}

func (d *Daemon) serve(c *conn) {
	defer d.untrack(c)
	defer c.Close()
	br := bufio.NewReaderSize(c, MaxLine)
	bw := bufio.NewWriter(c)
	for {
		if !d.awaitRequest(c) {
			return
		}
		req, err := ReadRequest(br)
		d.setBusy(c)
		if err != nil {
			d.readFailed(c, err)
			return
		}
		v := d.decide(req)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		bw.WriteString(v.Reply())
		if err := bw.Flush(); err != nil {
			d.log.Debug("reply not delivered; closing", zap.String("remote", remote(c)), zap.Error(err))
			return
		}
	}
}

// awaitRequest marks c idle with the idle deadline, under the lock Shutdown takes, so a
// shutdown either sees it idle and wakes it, or it sees the shutdown and stops.
func (d *Daemon) awaitRequest(c *conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return false
	}
	c.idle = true
	_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
	return true
}

func (d *Daemon) setBusy(c *conn) {
	d.mu.Lock()
	c.idle = false
	d.mu.Unlock()
}

// readFailed logs why a connection ends: a malformed request is the operator's
// business (Postfix retries it on a new connection), the rest is routine.
func (d *Daemon) readFailed(c *conn, err error) {
	var bad *Malformed
	switch {
	case errors.As(err, &bad):
		d.metrics.malformed.Inc()
		d.log.Warn("malformed request; closing the connection (Postfix retries on a new one)",
			zap.String("remote", remote(c)), zap.String("problem", bad.Reason))
	case errors.Is(err, io.EOF):
		d.log.Debug("connection closed by the client", zap.String("remote", remote(c)))
	case errors.Is(err, os.ErrDeadlineExceeded):
		d.log.Debug("idle connection closed", zap.String("remote", remote(c)), zap.Bool("shutting_down", d.isClosing()))
	default:
		d.log.Debug("connection failed", zap.String("remote", remote(c)), zap.Error(err))
	}
}

// decide runs the policy in force for one request, turning a panic into a temporary
// failure, and records the metrics and the operator's log line.
func (d *Daemon) decide(r *Request) (v Verdict) {
	began := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("decision panicked; answering with a temporary failure", zap.Any("panic", p), zap.Stack("stack"))
			v = Verdict{Action: Defer, Code: 451, Enhanced: "4.3.0", Text: "internal error, try again later",
				Rule: "panic", Reason: fmt.Sprint(p)}
		}
		d.metrics.observe(v, r.ProtocolState, time.Since(began))
		d.logVerdict(v, r)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), decisionTimeout)
	defer cancel()
	return d.policy.Load().Decide(ctx, r)
}

// logVerdict writes the one operator line of a decision that is not DUNNO.
func (d *Daemon) logVerdict(v Verdict, r *Request) {
	if v.Action == Dunno {
		return
	}
	d.log.Info("policy verdict",
		zap.String("rule", v.Rule),
		zap.String("action", v.Action.String()),
		zap.String("identity", v.Identity),
		zap.String("sender", r.Sender),
		zap.String("recipient", r.Recipient),
		zap.String("client", r.ClientAddress),
		zap.String("stage", r.ProtocolState),
		zap.String("queue_id", r.QueueID),
		zap.String("reply", v.Answer()),
		zap.String("reason", v.Reason))
}

func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return c.LocalAddr().Network()
}
