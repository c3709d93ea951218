package policyd

import (
	"strconv"
	"strings"
)

// Action is what policyd tells Postfix. There is deliberately no OK: policyd sits in
// smtpd_recipient_restrictions, and an OK there would end the list and could relay
// (DESIGN.md, rule 4). Only these four exist.
type Action int

// The actions, from access(5).
const (
	Dunno         Action = iota // no opinion: the next restriction decides
	DeferIfPermit               // 4xx, unless a later restriction rejects
	Defer                       // 4xx now
	Reject                      // 5xx now
)

func (a Action) String() string {
	return [...]string{"DUNNO", "DEFER_IF_PERMIT", "DEFER", "REJECT"}[a]
}

// Verdict is one answer, and everything the log line and metrics say about it, so the
// reply and the log cannot drift apart.
type Verdict struct {
	Action Action
	// Code, when set, is sent instead of the action's name ("451 4.3.0 …"); Postfix
	// otherwise uses access_map_reject_code (554) or access_map_defer_code (450).
	Code     int
	Enhanced string // RFC 3463 status code, e.g. "5.7.1"
	Text     string // what the SMTP client sees
	Rule     string // which rule decided: a bounded metric label
	Reason   string // what the operator's log line says; never sent
	Identity string // whom a rule judged (login or client address), for the log
}

// dunno is the verdict of a rule with no objection.
func dunno(rule string) Verdict { return Verdict{Action: Dunno, Rule: rule} }

// Reply renders the verdict as Postfix reads it: "action=…" and the empty line.
func (v Verdict) Reply() string { return "action=" + v.Answer() + "\n\n" }

// Answer is the action as access(5) writes it: "DUNNO", "REJECT 5.7.1 text",
// "451 4.3.0 text".
func (v Verdict) Answer() string {
	if v.Action == Dunno {
		return "DUNNO"
	}
	var b strings.Builder
	if v.Code != 0 {
		b.WriteString(strconv.Itoa(v.Code))
	} else {
		b.WriteString(v.Action.String())
	}
	if v.Enhanced != "" {
		b.WriteString(" " + v.Enhanced)
	}
	if v.Text != "" {
		b.WriteString(" " + oneLine(v.Text))
	}
	return b.String()
}

// oneLine keeps a reply text on one printable line: a newline would end the reply.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
