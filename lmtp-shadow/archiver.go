package lmtpshadow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/journal"
)

// settings is the reloadable part of the configuration.
type settings struct {
	folder, missing *template.Template
	timeout         time.Duration
	store           *Store
	maxSize         int64 // lmtp_shadow.max_message_size
}

// Archiver turns one received copy into delivered archive copies.
type Archiver struct {
	journal  Journal
	resolver *directory.Resolver
	log      *zap.Logger
	metrics  *metrics
	now      func() time.Time
	cur      atomic.Pointer[settings]
}

func newSettings(c config.LMTPShadow) *settings {
	missing := c
	missing.Folder = c.MissingFolder
	return &settings{folder: c.FolderTemplate(), missing: missing.FolderTemplate(), timeout: c.Timeout.D(), store: NewStore(c.Store),
		maxSize: int64(c.MaxMessageSize)}
}

// Archive delivers the message in spool (the whole message as received) for every
// recipient and returns one result per recipient: nil, or the SMTP error to answer.
// A copy is acknowledged only after the store said 250 for it; every other outcome is
// a temporary failure, so Postfix keeps the copy and retries — an archive copy must
// never bounce.
func (a *Archiver) Archive(ctx context.Context, sender string, rcpts []string, spool *os.File) []error {
	s := a.cur.Load()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	results := make([]error, len(rcpts))
	// Each copy's outcome, counted once when Archive returns, whatever the path: the
	// alerts on postern_shadow_copies_total must see every copy that waits in the queue.
	outcomes := make([]string, len(rcpts))
	var env *journal.Entry
	defer func() { a.count(env, outcomes) }()
	fail := func(i int, outcome string, err error) { results[i], outcomes[i] = err, outcome }
	failRest := func(err error) []error {
		for i := range results {
			if outcomes[i] == "" {
				fail(i, outcomeDeferred, err)
			}
		}
		return results
	}

	id := journalID(spool)
	if id != "" {
		e, err := a.journal.Get(ctx, id)
		switch {
		case err == nil:
			env = e
		case errors.Is(err, journal.ErrNotFound) || errors.Is(err, journal.ErrBadID):
		default:
			a.log.Warn("journal unavailable; copies deferred", zap.String("journal_id", id), zap.Error(err))
			return failRest(tempErr(4, 4, 3, "archive journal unavailable, try again later"))
		}
	}

	now := a.now()
	data := folderData{Time: now, Direction: "Unknown"}
	tpl := s.missing
	if env != nil {
		data.Direction, data.Time, tpl = directionTitle(env.Direction), env.Time, s.folder
		if data.Time.IsZero() {
			data.Time = now
		}
	}
	var copies []Copy
	var index []int
	for i, r := range rcpts {
		addr, err := address.Parse(r, "+")
		if err != nil {
			// A 4xx, as everywhere here: the copy stays in Postfix's queue, where an
			// operator sees it, instead of being dropped (BCC copies carry NOTIFY=NONE).
			a.log.Error("archive recipient is not an address; deferred", zap.String("recipient", r), zap.Error(err))
			fail(i, outcomeDeferred, tempErr(4, 1, 3, "recipient is not an address"))
			continue
		}
		d := data
		d.Domain = addr.Domain
		var folder strings.Builder
		if err := tpl.Execute(&folder, d); err != nil {
			a.log.Error("folder template failed", zap.Error(err))
			fail(i, outcomeDeferred, tempErr(4, 3, 5, "archive folder template failed"))
			continue
		}
		cp := Copy{User: addr.Local, Domain: addr.Domain, Folder: strings.Trim(folder.String(), "/")}
		if err := s.store.Ensure(ctx, cp); err != nil {
			a.log.Error("cannot prepare the archive folder; copy deferred", zap.String("folder", cp.Folder), zap.String("domain", cp.Domain), zap.Error(err))
			if errors.Is(err, errNoShadowMailbox) {
				fail(i, outcomeRejected, tempErr(4, 3, 0, "archive store refused the copy, try again later"))
			} else {
				fail(i, outcomeDeferred, tempErr(4, 3, 0, "archive store unavailable, try again later"))
			}
			continue
		}
		copies = append(copies, cp)
		index = append(index, i)
	}
	if len(copies) == 0 {
		return results
	}

	head := headerBlock(env, id, sender, a.expand(env), now)
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return failRest(tempErr(4, 3, 0, "archive spool error"))
	}
	start := a.now()
	got, err := s.store.Deliver(ctx, sender, copies, io.MultiReader(strings.NewReader(head), spool))
	a.metrics.storeLatency.Observe(a.now().Sub(start).Seconds())
	allStored := err == nil
	for k, i := range index {
		e := err
		if err == nil {
			e = got[k]
		}
		outcome, reply := a.verdict(e, copies[k])
		fail(i, outcome, reply)
		allStored = allStored && reply == nil
	}
	if env != nil && allStored {
		if err := a.journal.MarkArchived(ctx, env.ID, a.now()); err != nil {
			a.log.Debug("cannot mark the journal entry archived", zap.Error(err))
		}
	}
	return results
}

// The outcomes of a copy, as postern_shadow_copies_total counts them.
const (
	outcomeArchived = "archived"
	outcomeDeferred = "deferred" // waits in Postfix's queue: store, journal or folder unavailable
	outcomeRejected = "rejected" // the store refused it (answered 4xx to Postfix all the same)
)

// count adds each copy's outcome to postern_shadow_copies_total under the journalled
// direction ("unknown" without an entry), and a copy archived without a journal entry
// to postern_shadow_journal_misses_total.
func (a *Archiver) count(env *journal.Entry, outcomes []string) {
	direction := "unknown"
	if env != nil {
		direction = env.Direction
	}
	for _, o := range outcomes {
		a.metrics.copies.WithLabelValues(direction, o).Inc()
		if o == outcomeArchived && env == nil {
			a.metrics.misses.Inc()
		}
	}
}

// verdict maps the store's answer for one copy to its outcome and the answer for
// Postfix: 250 only after the store's 250; a 5xx becomes a 4xx (and an alert-worthy
// metric).
func (a *Archiver) verdict(err error, cp Copy) (outcome string, reply error) {
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return outcomeArchived, nil
	case errors.As(err, &se) && se.Code >= 500:
		a.log.Error("the store rejected an archive copy; deferred (check the shadow mailbox, its quota and rights)",
			zap.String("recipient", cp.Recipient()), zap.Int("code", se.Code), zap.String("reply", se.Message))
		return outcomeRejected, tempErr(4, 3, 0, "archive store refused the copy, try again later")
	default:
		a.log.Warn("archive copy deferred", zap.String("recipient", cp.Recipient()), zap.Error(err))
		if errors.As(err, &se) {
			return outcomeDeferred, se
		}
		return outcomeDeferred, tempErr(4, 4, 1, "archive store unreachable, try again later")
	}
}

// expand resolves each envelope recipient through the directory, for the
// Expanded-To headers. Without the directory the archive still gets the envelope.
func (a *Archiver) expand(env *journal.Entry) map[string][]string {
	if env == nil || a.resolver == nil {
		return nil
	}
	out := map[string][]string{}
	for _, r := range env.Recipients {
		res, err := a.resolver.Resolve(r)
		if err != nil || !res.Found() {
			continue
		}
		if len(res.Targets) != 1 || !strings.EqualFold(res.Targets[0], r) {
			out[r] = res.Targets
		}
	}
	return out
}

// journalID reads the X-Postern-Journal header of the message's top-level header.
func journalID(spool *os.File) string {
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return ""
	}
	h, err := textproto.NewReader(bufio.NewReader(spool)).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	return strings.TrimSpace(h.Get(journal.Header))
}

func tempErr(a, b, c int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{a, b, c}, Message: msg}
}

// String is for logs.
func (c Copy) String() string { return fmt.Sprintf("%s@%s/%s", c.User, c.Domain, c.Folder) }
