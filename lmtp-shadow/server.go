package lmtpshadow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/listener"
	"github.com/postern-mail/postern/internal/service"
)

// Daemon is `postern lmtp-shadow`.
type Daemon struct {
	cfg      config.LMTPShadow
	archiver *Archiver
	server   *smtp.Server
	log      *zap.Logger
}

// New builds the daemon from the shared dependencies and a journal.
func New(deps service.Deps, j Journal) *Daemon {
	a := &Archiver{journal: j, resolver: deps.Resolver, log: deps.Log.Named("lmtp-shadow"), metrics: newMetrics(deps.Registry), now: time.Now}
	a.cur.Store(newSettings(deps.Config.LMTPShadow))
	s := smtp.NewServer(&backend{a: a})
	s.LMTP = true
	s.Domain = "postern-lmtp-shadow"
	// No MaxMessageBytes: the server's own limit answers 552, and Postfix adds the BCC
	// maps' recipients with NOTIFY=NONE (postconf(5)), so a 5xx would drop the archive
	// copy without a word to anyone. LMTPData enforces lmtp_shadow.max_message_size
	// with a 4xx instead: the copy waits in the queue and the log says why.
	s.MaxRecipients = 1000
	s.ReadTimeout, s.WriteTimeout = 5*time.Minute, 5*time.Minute
	s.ErrorLog = zap.NewStdLog(a.log)
	return &Daemon{cfg: deps.Config.LMTPShadow, archiver: a, server: s, log: a.log}
}

// Name is the command name.
func (d *Daemon) Name() string { return "lmtp-shadow" }

// Start binds the listener (or takes systemd's) and serves.
func (d *Daemon) Start() error {
	ln, err := listener.Open(d.cfg.Listen, "lmtp-shadow")
	if err != nil {
		return err
	}
	go func() {
		if err := d.server.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			d.log.Error("lmtp-shadow stopped serving", zap.Error(err))
		}
	}()
	d.log.Info("lmtp-shadow listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// Reload takes a new folder template and store settings; the listener stays.
func (d *Daemon) Reload(c *config.Config) error {
	d.archiver.cur.Store(newSettings(c.LMTPShadow))
	if c.LMTPShadow.Listen != d.cfg.Listen {
		return fmt.Errorf("lmtp_shadow.listen changed; restart to apply it")
	}
	return nil
}

// Shutdown stops accepting and waits for transactions in flight.
func (d *Daemon) Shutdown(ctx context.Context) error { return d.server.Shutdown(ctx) }

type backend struct{ a *Archiver }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{a: b.a}, nil }

// session is one LMTP transaction stream from Postfix.
type session struct {
	a      *Archiver
	sender string
	rcpts  []string
}

func (s *session) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.sender, s.rcpts = from, nil
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data is never used: the server speaks LMTP, which calls LMTPData.
func (s *session) Data(io.Reader) error {
	return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "LMTP only"}
}

// LMTPData spools the message, archives it and reports one status per recipient, in
// order (RFC 2033 4.2).
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	spool, err := os.CreateTemp("", "postern-shadow-*.eml")
	if err != nil {
		return tempErr(4, 3, 0, "cannot spool the message")
	}
	defer func() { spool.Close(); os.Remove(spool.Name()) }()
	limit := s.a.cur.Load().maxSize
	n, err := io.Copy(spool, io.LimitReader(r, limit+1))
	if err != nil {
		return tempErr(4, 3, 0, "cannot spool the message")
	}
	if n > limit {
		_, _ = io.Copy(io.Discard, r) // read to the end of DATA, so the session stays in step
		s.a.count(nil, slices.Repeat([]string{outcomeDeferred}, len(s.rcpts)))
		s.a.log.Error("archive copy larger than lmtp_shadow.max_message_size; deferred, raise the limit above Postfix's message_size_limit",
			zap.Int64("limit", limit), zap.String("sender", s.sender))
		return tempErr(4, 3, 4, "message larger than the archive's size limit, try again later")
	}
	results := s.a.Archive(context.Background(), s.sender, s.rcpts, spool)
	for i, rcpt := range s.rcpts {
		status.SetStatus(rcpt, results[i])
	}
	return nil
}

func (s *session) Reset()        { s.sender, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }

var _ smtp.LMTPSession = (*session)(nil)
