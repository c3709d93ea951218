package welcome

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/directory"
)

// Request says what one run does; the zero value is the timer's run.
type Request struct {
	DryRun   bool      // render and show the letters; send and record nothing
	OutDir   string    // with DryRun: also write each letter as OutDir/LOGIN.eml
	User     string    // only this login's letter, whatever its creation time and scope
	Force    bool      // with User: send even if the ledger says it was sent
	Skip     string    // record this login as "no letter wanted" and send nothing
	Backfill time.Time // first run only: write to everyone created since, not just to new users
}

// Report says what a run did.
type Report struct {
	FirstRun    bool
	Baseline    int       // accounts recorded at the first run as existing before it
	Letters     []*Letter // rendered: previewed by a dry run, submitted otherwise
	Sent        []string  // logins whose letters the server accepted
	Failed      []string  // logins whose letters were not accepted (retried next run)
	AlreadySent bool      // User: the ledger says sent; nothing done
}

// Run does one run under the run lock (a dry run takes no lock and writes nothing),
// then merges its outcome into the metrics textfile.
func (j *Job) Run(ctx context.Context, req Request) (Report, error) {
	var rep Report
	if !req.Backfill.IsZero() && (req.User != "" || req.Skip != "") {
		return rep, classify(ErrConfig, "welcome: --backfill does not go with --user or --skip")
	}
	if req.DryRun {
		return rep, j.run(ctx, req, &rep)
	}
	lock, err := lockRun(ctx, j.cfg.LockFile(), j.opts.LockWait)
	if err != nil {
		return rep, err
	}
	defer lock.release()
	err = j.run(ctx, req, &rep)
	stats := runStats{sent: len(rep.Sent), failed: len(rep.Failed), ok: err == nil, at: j.opts.Now()}
	if merr := writeMetrics(j.cfg.MetricsFile, stats); merr != nil {
		j.log.Warn("cannot write the metrics textfile", zap.Error(merr))
	}
	return rep, err
}

func (j *Job) run(ctx context.Context, req Request, rep *Report) error {
	path := j.cfg.LedgerFile()
	led, err := loadLedger(path)
	if err != nil {
		return err
	}
	if led != nil && !req.Backfill.IsZero() {
		return classify(ErrConfig, "welcome: --backfill is for the first run only, and %s exists (use --user LOGIN for one letter)", path)
	}
	snap, err := j.snapshot(ctx)
	if err != nil {
		return err
	}
	now := j.opts.Now()
	latest := newest(snap, now)
	if led == nil {
		led = j.firstRun(snap, latest, req.Backfill, now, rep)
		if !req.DryRun {
			if err := led.save(path); err != nil {
				return err
			}
		}
		if req.Backfill.IsZero() && req.User == "" && req.Skip == "" {
			if req.DryRun {
				fmt.Fprintf(j.opts.Out, "first run: %d existing account(s) would be recorded and no letters sent (--backfill SINCE writes to them)\n", rep.Baseline)
			}
			return nil
		}
	}
	switch {
	case req.Skip != "":
		return j.skip(snap, led, req, now)
	case req.User != "":
		return j.one(ctx, snap, led, req, now, rep)
	}
	sc, err := newScope(snap, j.cfg.Groups, j.cfg.OUs)
	if err != nil {
		return err
	}
	var letters []*Letter
	for _, o := range candidates(snap, led, sc) {
		l, err := j.letter(snap, o, 0, now)
		if err != nil {
			return err
		}
		letters = append(letters, l)
	}
	rep.Letters = letters
	if req.DryRun {
		return j.preview(letters, req)
	}
	sendErr := j.submitAll(ctx, led, letters, rep)
	led.advance(j.nextSince(latest, letters, rep))
	if err := led.save(path); err != nil {
		return err
	}
	j.log.Info("welcome run done", zap.Int("sent", len(rep.Sent)), zap.Int("failed", len(rep.Failed)),
		zap.Time("since", led.Since))
	return sendErr
}

// firstRun starts the ledger. Without a backfill date nobody gets a letter: every
// account within lookback of the newest is recorded as existing before postern welcome
// (the ones older are outside every run's window anyway).
func (j *Job) firstRun(s *directory.Snapshot, latest, backfill, now time.Time, rep *Report) *ledger {
	rep.FirstRun = true
	if !backfill.IsZero() {
		j.log.Info("first run: letters to every user created since the backfill date", zap.Time("since", backfill))
		return newLedger(backfill)
	}
	led := newLedger(latest.Add(-j.cfg.Lookback.D()))
	for _, o := range s.Objects {
		if o.Kind == directory.User && !o.Created.IsZero() && !o.Created.Before(led.Since) {
			led.record(o, statusBaseline, now)
			rep.Baseline++
		}
	}
	j.log.Info("first run: existing accounts recorded, no letters sent (--backfill SINCE writes to them)",
		zap.Int("recorded", rep.Baseline), zap.Time("since", led.Since))
	return led
}

// nextSince is where the window starts for the next run: lookback before the newest
// account, but never after an account whose letter failed, so it is retried until sent.
func (j *Job) nextSince(latest time.Time, letters []*Letter, rep *Report) time.Time {
	to := latest.Add(-j.cfg.Lookback.D())
	failed := map[string]bool{}
	for _, login := range rep.Failed {
		failed[login] = true
	}
	for _, l := range letters {
		if failed[l.Recipient.Login] && l.Recipient.Created.Before(to) {
			to = l.Recipient.Created
		}
	}
	return to
}

func (j *Job) snapshot(ctx context.Context) (*directory.Snapshot, error) {
	sctx, cancel := context.WithTimeout(ctx, j.opts.SyncTimeout)
	defer cancel()
	if err := j.opts.Directory.Sync(sctx); err != nil {
		return nil, classify(ErrTemporary, "welcome: read the directory: %w", err)
	}
	s, err := j.opts.Directory.Snapshot()
	if err != nil {
		return nil, classify(ErrTemporary, "welcome: %w", err)
	}
	return s, nil
}

// letter renders one user's letter; a template that fails is a configuration error.
func (j *Job) letter(s *directory.Snapshot, o *directory.Object, seq int, now time.Time) (*Letter, error) {
	l, err := j.letters.render(recipientOf(s, o), ledgerKey(o), seq, now)
	if err != nil {
		return nil, &classified{kind: ErrConfig, err: err}
	}
	l.obj = o
	return l, nil
}
