package welcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/safefile"
)

// The ledger's record of a user.
const (
	statusSent     = "sent"     // the SMTP server accepted their letter
	statusBaseline = "baseline" // the account existed at the first run: no letter
	statusSkipped  = "skipped"  // an operator said no letter (--skip)
)

// ledger is the state of the job (state_dir/welcome.json): which users are done, and
// from when on accounts are still looked at.
type ledger struct {
	Version int `json:"version"`
	// Since is the lower bound of whenCreated a run looks at. It only moves forward, and
	// entries for accounts created before it are dropped, since no run looks at them.
	Since   time.Time         `json:"since"`
	Entries map[string]*entry `json:"entries"`
}

type entry struct {
	Status    string    `json:"status"`
	Login     string    `json:"login"`
	Mail      string    `json:"mail,omitempty"`
	Created   time.Time `json:"created"`
	At        time.Time `json:"at"` // when it was recorded
	MessageID string    `json:"message_id,omitempty"`
	Sends     int       `json:"sends,omitempty"` // letters accepted for this user
}

const ledgerVersion = 1

// ledgerKey identifies a user for the ledger: the objectGUID, which survives renames and
// moves (a new login or DN gets no second letter, a reused login gets its first), or
// the login where the directory has no GUID (the static backend).
func ledgerKey(o *directory.Object) string {
	if o.GUID != "" {
		return "guid:" + strings.ToLower(o.GUID)
	}
	return "login:" + strings.ToLower(o.Login)
}

// loadLedger reads the ledger; (nil, nil) means there is none yet: the first run.
func loadLedger(path string) (*ledger, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(ErrTemporary, "welcome: read the ledger: %w", err)
	}
	var l ledger
	if err := json.Unmarshal(b, &l); err != nil || l.Version != ledgerVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", l.Version, ledgerVersion)
		}
		// Never start afresh on a damaged ledger: that would forget who was welcomed.
		return nil, classify(ErrConfig, "welcome: the ledger %s is unreadable (%v); repair it, or move it away to start afresh with a first run that sends nothing", path, err)
	}
	if l.Entries == nil {
		l.Entries = map[string]*entry{}
	}
	return &l, nil
}

func newLedger(since time.Time) *ledger {
	return &ledger{Version: ledgerVersion, Since: since.UTC(), Entries: map[string]*entry{}}
}

// save writes the ledger atomically and durably (temp file, fsync, rename, fsync of the
// folder): after a crash it holds the old state or the new, never a torn file.
func (l *ledger) save(path string) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Write(path, append(b, '\n'), 0o640); err != nil {
		return classify(ErrTemporary, "welcome: record in the ledger: %w", err)
	}
	return nil
}

// find returns the user's entry. An entry kept under the login is theirs too when it
// has the same creation time (a ledger written before the directory had GUIDs).
func (l *ledger) find(o *directory.Object) *entry {
	if e := l.Entries[ledgerKey(o)]; e != nil {
		return e
	}
	if e := l.Entries["login:"+strings.ToLower(o.Login)]; e != nil && e.Created.Equal(o.Created) {
		return e
	}
	return nil
}

func (l *ledger) record(o *directory.Object, status string, at time.Time) *entry {
	e := l.find(o)
	if e == nil {
		e = &entry{}
		l.Entries[ledgerKey(o)] = e
	}
	e.Status, e.Login, e.Mail, e.Created, e.At = status, o.Login, o.Primary, o.Created.UTC(), at.UTC()
	return e
}

// advance moves Since forward to to (never back) and drops the entries before it.
func (l *ledger) advance(to time.Time) {
	if !to.After(l.Since) {
		return
	}
	l.Since = to.UTC()
	for k, e := range l.Entries {
		if e.Created.Before(l.Since) {
			delete(l.Entries, k)
		}
	}
}
