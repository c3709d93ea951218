// Package journal is the envelope journal shared by the milter and lmtp-shadow: at end of
// message the milter records who sent the message to whom (every accepted recipient, BCC
// included) under an unguessable id, and puts only that id into the message; lmtp-shadow,
// another process, finds the entry again when the archive copy arrives. The envelope
// itself never travels inside a delivered message.
package journal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/postern-mail/postern/internal/config"
)

// Header is the one header the milter adds: its value is the entry's id and nothing else.
const Header = "X-Postern-Journal"

// Entry is one message's envelope as the milter saw it.
type Entry struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	QueueID    string    `json:"queue_id,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	ClientName string    `json:"client_name,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	Login      string    `json:"login,omitempty"` // SASL login
	Sender     string    `json:"sender"`          // envelope sender; "" is the null sender
	Recipients []string  `json:"recipients"`      // every accepted recipient, BCC included
	Direction  string    `json:"direction"`
	MessageID  string    `json:"message_id,omitempty"`
	Size       int64     `json:"size"`
	// Archived is set by lmtp-shadow once the archive copy is stored.
	Archived time.Time `json:"archived,omitzero"`
}

// Store keeps entries until their retention ends. Every method respects ctx's deadline.
type Store interface {
	// Put records a new entry; an entry with the same id is an error.
	Put(ctx context.Context, e *Entry) error
	// Get returns the entry with that id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Entry, error)
	// MarkArchived records that the archive copy of the entry is stored.
	MarkArchived(ctx context.Context, id string, at time.Time) error
	// Delete removes the entry; a missing entry is not an error.
	Delete(ctx context.Context, id string) error
	// Expire removes entries older than the retention (Redis expires them by itself).
	Expire(ctx context.Context, now time.Time) (int, error)
	Close() error
}

// Errors a lookup can end in. ErrBadID is for a value that cannot be an id (e.g. a
// forged header); callers treat both as "no entry", never as a reason to retry.
var (
	ErrNotFound = errors.New("journal: no such entry")
	ErrBadID    = errors.New("journal: malformed id")
)

// idLen is the length of rand.Text's output: 26 base32 characters, 128 random bits.
const idLen = 26

// NewID returns a new, unguessable entry id (128 bits from crypto/rand, base32).
func NewID() string { return rand.Text() }

// ValidID reports whether s has the form of an id, so a forged header value cannot
// name a file outside the store or a key outside its prefix.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// Open opens the store the configuration names: the file store under j.Path, or Redis.
func Open(j config.Journal, r config.Redis) (Store, error) {
	switch j.Store {
	case "file":
		return OpenFile(j.Path, j.Retention.D())
	case "redis":
		return NewRedis(r, j.KeyPrefix, j.Retention.D(), j.Timeout.D()), nil
	default:
		return nil, fmt.Errorf("journal: unknown store %q (use file or redis)", j.Store)
	}
}
