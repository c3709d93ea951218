// Package welcome sends every new directory user a welcome letter, exactly once: it
// finds the users created since the last run, renders a letter from an HTML and a text
// template, and submits it over SMTP, so the letter passes through Postfix, the milter
// and the archive like any other mail. It is a one-shot job for a systemd timer.
//
// Exactly once rests on a ledger in the state directory: a user is recorded, atomically
// and durably, right after the SMTP server accepted their letter, and a user in the
// ledger never gets another. The one window left is a crash (or a lost connection)
// between the server's 250 reply and that record: the next run sends that one user's
// letter again, with the same Message-ID, which Cyrus's duplicate suppression and most
// mail readers fold into one.
package welcome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// Errors a run ends in, for the exit status: ErrConfig needs an operator (exit 2),
// ErrTemporary is retried by the next timer run (exit 75), ErrNoSuchUser answers --user
// and --skip for a login that cannot have a letter (exit 1).
var (
	ErrConfig     = errors.New("configuration error")
	ErrTemporary  = errors.New("temporary failure")
	ErrNoSuchUser = errors.New("no such user")
)

// classified is an error that also matches one of the kinds above with errors.Is,
// without the kind's words in its message.
type classified struct {
	kind error
	err  error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }

func classify(kind error, format string, args ...any) error {
	return &classified{kind: kind, err: fmt.Errorf(format, args...)}
}

// Directory is what the job needs of the directory: *directory.Directory.
type Directory interface {
	Sync(ctx context.Context) error
	Snapshot() (*directory.Snapshot, error)
}

// Options build a Job.
type Options struct {
	Config    config.Welcome // validated by config.Load
	Directory Directory
	Log       *zap.Logger      // nil: no logs
	Out       io.Writer        // dry-run previews and run summaries; nil: discarded
	Now       func() time.Time // nil: time.Now
	// LockWait is how long a run waits for another to finish; 0 means one minute.
	LockWait time.Duration
	// SyncTimeout bounds the directory read; 0 means two minutes.
	SyncTimeout time.Duration
}

// Job is the welcome-letter job, ready to run.
type Job struct {
	opts    Options
	cfg     config.Welcome
	letters *templates
	log     *zap.Logger
}

// New loads the templates and renders them once for a sample user, so a template that
// cannot be executed or an image that is missing is a configuration error before any
// directory or SMTP work.
func New(o Options) (*Job, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockWait == 0 {
		o.LockWait = time.Minute
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 2 * time.Minute
	}
	if !o.Config.Enabled() {
		return nil, classify(ErrConfig, "welcome: not configured; add a welcome: section with from, html_template_file and text_template_file")
	}
	t, err := loadTemplates(o.Config)
	if err != nil {
		return nil, &classified{kind: ErrConfig, err: err}
	}
	if _, err := t.render(sampleRecipient(), "sample", 0, o.Now()); err != nil {
		return nil, &classified{kind: ErrConfig, err: fmt.Errorf("welcome: the templates fail for a sample user: %w", err)}
	}
	return &Job{opts: o, cfg: o.Config, letters: t, log: o.Log}, nil
}
