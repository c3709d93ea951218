package directory

import (
	"errors"

	"github.com/postern-mail/postern/internal/address"
)

// Errors a lookup can end in. ErrUnavailable, ErrLimit and ErrAmbiguous are temporary:
// the message must wait and be retried, never be bounced. A malformed address
// (address.ErrMalformed) is simply not found.
var (
	ErrUnavailable = errors.New("directory unavailable")
	ErrLimit       = errors.New("group expansion limit exceeded")
	ErrAmbiguous   = errors.New("address is ambiguous")
)

// IsTemporary reports whether err must be answered with a temporary failure.
func IsTemporary(err error) bool {
	return err != nil && !errors.Is(err, address.ErrMalformed)
}
