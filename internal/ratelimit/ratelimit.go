// Package ratelimit counts messages, recipients and bytes per identity in sliding
// windows: in memory for a single instance, or in Redis, shared by several instances and
// counted atomically by one Lua script.
//
// A window of length W holds Slots+1 slots of W/Slots each. A request fits when the sum
// of the current slot and the Slots before it, plus its cost, stays within the limit. So
// no period of length W ever holds more than the limit, and a counted message stops
// counting between W and W+W/Slots after it was sent. The whole limit may be used at
// once (the burst is the limit); a shorter window beside a longer one smooths it.
package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Slots is how many slots a window is divided into.
const Slots = 60

// OnceTTL is how long a commit's Once key is remembered. Postfix retries a policy
// request within seconds (smtpd_policy_service_try_limit); an hour is plenty.
const OnceTTL = time.Hour

// Amount is what one message costs, or what a window allows (0: no limit on that
// dimension).
type Amount struct{ Messages, Recipients, Bytes int64 }

// Window is one limit: at most Max within any period of Length.
type Window struct {
	Length time.Duration
	Max    Amount
}

// slot is the length of one of the window's slots.
func (w Window) slot() time.Duration {
	s := w.Length / Slots
	if s < time.Millisecond {
		s = time.Millisecond
	}
	return s
}

// Counter is one window of one identity under one rule.
type Counter struct {
	Key    string // names the rule and the identity, e.g. "interns-daily|sasl:carol"
	Window Window
}

// Request asks whether Cost fits into every counter and, with Commit, adds it to every
// counter when it does. Nothing is added unless all of them have room.
type Request struct {
	Counters []Counter
	Cost     Amount
	Commit   bool
	// Once makes a commit idempotent: a second commit with the same Once (Postfix
	// retrying a request) adds nothing and is allowed. "" disables it.
	Once string
}

// Dimensions, as Outcome.Dimension names them.
const (
	Messages   = "messages"
	Recipients = "recipients"
	Bytes      = "bytes"
)

// Outcome is a store's answer.
type Outcome struct {
	Allowed   bool
	Duplicate bool   // a commit already counted under the same Once
	Exceeded  int    // index into Counters of the first counter without room; -1 when allowed
	Dimension string // what ran out: Messages, Recipients or Bytes
	Used      Amount // the exceeded counter's use before this request
}

// Store keeps the counters.
type Store interface {
	// Take checks, and with Commit counts, a request; an error means the store could not
	// answer (nothing was counted).
	Take(ctx context.Context, r Request) (Outcome, error)
	// Name is "memory" or "redis", for logs and metrics.
	Name() string
	Close() error
}

// fits checks cost against the limits given what is used; it returns the dimension
// that ran out, or "".
func fits(used, cost, max Amount) string {
	switch {
	case max.Messages > 0 && used.Messages+cost.Messages > max.Messages:
		return Messages
	case max.Recipients > 0 && used.Recipients+cost.Recipients > max.Recipients:
		return Recipients
	case max.Bytes > 0 && used.Bytes+cost.Bytes > max.Bytes:
		return Bytes
	}
	return ""
}

func (a Amount) add(b Amount) Amount {
	return Amount{a.Messages + b.Messages, a.Recipients + b.Recipients, a.Bytes + b.Bytes}
}

func (a Amount) String() string {
	return fmt.Sprintf("%d messages, %d recipients, %d bytes", a.Messages, a.Recipients, a.Bytes)
}
