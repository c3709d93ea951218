package welcome

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/directory"
)

// submitAll submits the letters, one SMTP session for all while they are accepted, and
// records each one in the ledger as soon as the server has accepted it, before the next
// is sent: a crash loses at most that one record. A letter that fails is not recorded,
// so the next run sends it; the letters after it get a new session.
func (j *Job) submitAll(ctx context.Context, led *ledger, letters []*Letter, rep *Report) error {
	var sub *submission
	defer func() {
		if sub != nil {
			sub.close()
		}
	}()
	var firstErr error
	for i, l := range letters {
		if ctx.Err() != nil {
			j.failRest(letters[i:], rep)
			return classify(ErrTemporary, "welcome: interrupted with %d letter(s) unsent; the next run sends them", len(letters)-i)
		}
		if sub == nil {
			var err error
			if sub, err = dialSubmission(ctx, j.cfg.SMTP); err != nil {
				j.failRest(letters[i:], rep)
				next := "they are sent at the next run"
				if errors.Is(err, ErrConfig) {
					next = "they are sent at the first run after the configuration is fixed"
				}
				j.log.Error("cannot submit welcome letters; "+next, zap.Int("letters", len(letters)-i), zap.Error(err))
				return err
			}
		}
		reply, err := sub.send(l)
		if err != nil {
			sub.close()
			sub = nil
			rep.Failed = append(rep.Failed, l.Recipient.Login)
			j.log.Error("welcome letter not accepted; it is sent again at the next run",
				zap.String("login", l.Recipient.Login), zap.String("to", l.To), zap.Bool("permanent", permanent(err)), zap.Error(err))
			if firstErr == nil {
				firstErr = classify(ErrTemporary, "welcome: smtp %s: the letter to %s: %w", j.cfg.SMTP.Server, l.To, err)
			}
			continue
		}
		rep.Sent = append(rep.Sent, l.Recipient.Login)
		if err := j.recordSent(led, l); err != nil {
			// Sent but not recorded: stop, so the window stays this one letter.
			j.failRest(letters[i+1:], rep)
			j.log.Error("welcome letter sent but not recorded; the next run may send it again", zap.String("login", l.Recipient.Login), zap.Error(err))
			return err
		}
		j.log.Info("welcome letter sent", zap.String("login", l.Recipient.Login), zap.String("to", l.To),
			zap.String("message_id", l.MessageID), zap.String("reply", reply))
	}
	return firstErr
}

func (j *Job) recordSent(led *ledger, l *Letter) error {
	e := led.record(l.obj, statusSent, j.opts.Now())
	e.Sends++
	e.MessageID = l.MessageID
	return led.save(j.cfg.LedgerFile())
}

func (j *Job) failRest(letters []*Letter, rep *Report) {
	for _, l := range letters {
		rep.Failed = append(rep.Failed, l.Recipient.Login)
	}
}

// one sends (or previews) the letter of one login, whatever its creation time and scope.
func (j *Job) one(ctx context.Context, s *directory.Snapshot, led *ledger, req Request, now time.Time, rep *Report) error {
	o, err := lookupUser(s, req.User)
	if err != nil {
		return err
	}
	seq := 0
	if e := led.find(o); e != nil && e.Status == statusSent {
		if !req.Force {
			rep.AlreadySent = true
			fmt.Fprintf(j.opts.Out, "%s was sent a welcome letter at %s (Message-ID <%s>); --force sends another\n",
				o.Login, e.At.Format(time.RFC3339), e.MessageID)
			return nil
		}
		seq = e.Sends // a new Message-ID, so the second letter is not taken for a duplicate
	}
	l, err := j.letter(s, o, seq, now)
	if err != nil {
		return err
	}
	rep.Letters = []*Letter{l}
	if req.DryRun {
		return j.preview(rep.Letters, req)
	}
	return j.submitAll(ctx, led, rep.Letters, rep)
}

// skip records that a login gets no letter, e.g. one the server keeps refusing.
func (j *Job) skip(s *directory.Snapshot, led *ledger, req Request, now time.Time) error {
	o := s.ByLogin(req.Skip)
	if o == nil {
		return classify(ErrNoSuchUser, "welcome: the directory has no user %q", req.Skip)
	}
	if e := led.find(o); e != nil && e.Status == statusSent {
		fmt.Fprintf(j.opts.Out, "%s was already sent a welcome letter at %s; nothing to skip\n", o.Login, e.At.Format(time.RFC3339))
		return nil
	}
	if req.DryRun {
		fmt.Fprintf(j.opts.Out, "%s would be recorded as skipped: no letter\n", o.Login)
		return nil
	}
	led.record(o, statusSkipped, now)
	if err := led.save(j.cfg.LedgerFile()); err != nil {
		return err
	}
	fmt.Fprintf(j.opts.Out, "%s recorded as skipped: no welcome letter\n", o.Login)
	return nil
}

func lookupUser(s *directory.Snapshot, login string) (*directory.Object, error) {
	o := s.ByLogin(login)
	if o == nil {
		return nil, classify(ErrNoSuchUser, "welcome: the directory has no user %q", login)
	}
	if why := eligible(o); why != "" {
		return nil, classify(ErrNoSuchUser, "welcome: %s %s, so there is no letter for them", o.Login, why)
	}
	return o, nil
}

// preview shows what a run would send: per letter its envelope, subject, images and
// text part, and with OutDir the exact message as LOGIN.eml.
func (j *Job) preview(letters []*Letter, req Request) error {
	out := j.opts.Out
	if len(letters) == 0 {
		fmt.Fprintln(out, "no new users: no letters to send")
	}
	if req.OutDir != "" {
		if err := os.MkdirAll(req.OutDir, 0o750); err != nil {
			return classify(ErrConfig, "welcome: --out: %w", err)
		}
	}
	for i, l := range letters {
		r := l.Recipient
		fmt.Fprintf(out, "=== letter %d of %d: %s, created %s\n", i+1, len(letters), r.Login, r.Created.Format(time.RFC3339))
		if req.OutDir != "" {
			path := filepath.Join(req.OutDir, emlName(r.Login))
			if err := os.WriteFile(path, l.Raw, 0o640); err != nil {
				return classify(ErrConfig, "welcome: --out: %w", err)
			}
			fmt.Fprintf(out, "Written to: %s\n", path)
		}
		fmt.Fprintf(out, "Envelope: MAIL FROM:<%s> RCPT TO:<%s>\n", l.EnvelopeFrom, l.To)
		fmt.Fprintf(out, "Subject: %s\nMessage-ID: <%s>\n", l.Subject, l.MessageID)
		for _, img := range l.Images {
			fmt.Fprintf(out, "Inline image: cid:%s %s (%s, %d bytes)\n", img.CID, img.File, img.ContentType, len(img.Data))
		}
		fmt.Fprintf(out, "\n%s\n\n", strings.TrimRight(l.Text, "\n"))
	}
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func emlName(login string) string {
	return strings.TrimLeft(unsafeName.ReplaceAllString(login, "_"), ".") + ".eml"
}
