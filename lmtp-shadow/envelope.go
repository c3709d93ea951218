// Package lmtpshadow is the archive leg: an LMTP server that receives the shadow copy of
// every message from Postfix, prepends the envelope the milter journalled (sender, every
// recipient including Bcc, the expanded lists, direction, login, client, queue id) and
// delivers it into the shadow mailbox of the store (Cyrus or Dovecot), never losing one.
package lmtpshadow

import (
	"context"
	"time"

	"github.com/postern-mail/postern/internal/journal"
)

// Journal is the part of the journal store lmtp-shadow reads.
type Journal interface {
	Get(ctx context.Context, id string) (*journal.Entry, error)
	MarkArchived(ctx context.Context, id string, at time.Time) error
}
