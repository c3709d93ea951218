package milter

import (
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/directory"
)

// plan is what will be inserted into a message, decided once its headers are in.
type plan struct {
	signature  *rendered
	aboveQuote bool
	disclaimer *disclaimerText
	failed     error // spooling failed: the message passes unchanged
}

// step is one insertion: signature first (it may go above the quote), then the
// disclaimer at the very bottom.
type step struct {
	kind string
	ins  insertion
}

func (p *plan) steps() []step {
	var out []step
	if p.signature != nil {
		out = append(out, step{stampSignature, insertion{text: p.signature.Text, html: p.signature.HTML, aboveQuote: p.aboveQuote}})
	}
	if p.disclaimer != nil {
		out = append(out, step{stampDisclaimer, insertion{text: p.disclaimer.Text, html: p.disclaimer.HTML, markers: p.disclaimer.markers}})
	}
	return out
}

func (p *plan) kinds() []string {
	var out []string
	for _, s := range p.steps() {
		out = append(out, s.kind)
	}
	return out
}

// planStamps decides the disclaimer and the signature for the message in progress;
// nil when nothing is to be inserted.
func (s *session) planStamps() *plan {
	msg, r := s.msg, s.msg.rules
	if !r.stamping() {
		return nil
	}
	disc := r.disclaimer.disclaimerFor(senderDomain(msg.sender), s.d.resolver.Policy().Aliases)
	if !slices.Contains(r.disclaimer.directions, msg.dir) {
		disc = nil
	}
	sig := r.signature
	if sig != nil && !slices.Contains(sig.directions, msg.dir) {
		sig = nil
	}
	if disc == nil && sig == nil {
		return nil
	}
	wanted := &plan{disclaimer: disc}
	if sig != nil {
		wanted.signature = &rendered{} // placeholder until rendered, for kinds()
	}
	if reason := s.alreadyStamped(); reason != "" {
		s.noteAll(wanted, resultPresent, reason)
		return nil
	}
	if reason := oddHeaders(msg); reason != "" {
		s.noteAll(wanted, resultSkipped, reason)
		return nil
	}
	p := &plan{disclaimer: disc}
	var user *directory.Object
	var groups []string
	var dirErr error
	if sig != nil || (disc != nil && len(r.disclaimer.groups) > 0) {
		user, groups, dirErr = s.sender()
	}
	if disc != nil && len(r.disclaimer.groups) > 0 && dirErr == nil && !inGroups(r.disclaimer.groups, groups) {
		p.disclaimer = nil // outside the groups; without the directory it still applies
	}
	if sig != nil {
		p.signature, p.aboveQuote = s.renderSignature(sig, user, groups, dirErr), sig.aboveQuote
	}
	if p.disclaimer == nil && p.signature == nil {
		return nil
	}
	return p
}

// alreadyStamped reports why the message carries postern's mark for itself, or "".
func (s *session) alreadyStamped() string {
	msg := s.msg
	mid, _ := msg.headerValue("Message-ID")
	for _, h := range msg.headers {
		if strings.EqualFold(h.name, markerHeader) && validMarker(msg.rules.markerKey, h.value, mid, msg.queueID) {
			return "marker header"
		}
	}
	return ""
}

// oddHeaders refuses a message whose top-level MIME headers are ambiguous: which of two
// Content-Type fields would a reader believe? Better leave it as it is.
func oddHeaders(msg *message) string {
	for _, name := range []string{"Content-Type", "Content-Transfer-Encoding", "MIME-Version"} {
		if _, n := msg.headerValue(name); n > 1 {
			return "more than one " + name + " header"
		}
	}
	return ""
}

// sender finds the directory entry of the person sending: the SASL login's user, else
// the owner of the envelope sender. An error means the directory is unavailable.
func (s *session) sender() (*directory.Object, []string, error) {
	msg, r := s.msg, s.d.resolver
	var u *directory.Object
	if msg.login != "" {
		var err error
		if u, err = r.User(msg.login); err != nil {
			return nil, nil, err
		}
	}
	if u == nil && msg.sender != "" {
		res, err := r.Resolve(msg.sender)
		if directory.IsTemporary(err) {
			return nil, nil, err
		}
		if err == nil && res.Object != nil && res.Object.Kind == directory.User && !res.Disabled {
			u = res.Object
		}
	}
	if u == nil {
		return nil, nil, nil
	}
	snap, err := r.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	var groups []string
	for _, g := range snap.GroupsOf(u) {
		groups = append(groups, g.Name)
	}
	return u, groups, nil
}

// renderSignature renders the sender's signature, or returns nil (and says why in the
// metrics) when there is none to give.
func (s *session) renderSignature(sig *signatureRules, u *directory.Object, groups []string, dirErr error) *rendered {
	switch {
	case dirErr != nil:
		s.d.metrics.dirUnavailable.Inc()
		s.note(stampSignature, resultUnavailable)
		s.d.log.Warn("milter: directory unavailable; the message goes on without a personal signature",
			zap.String("queue_id", s.msg.queueID), zap.Error(dirErr))
		return nil
	case u == nil || !inGroups(sig.groups, groups):
		return nil // not a directory user, or outside the groups: nothing to count
	}
	out, err := sig.templates.render(u)
	if err != nil {
		s.note(stampSignature, resultError)
		s.d.log.Error("milter: cannot render the signature; the message goes on without it",
			zap.String("queue_id", s.msg.queueID), zap.String("login", u.Login), zap.Error(err))
		return nil
	}
	return &out
}

// note counts one stamp decision and keeps it for the message's log line.
func (s *session) note(kind, result string) {
	s.d.metrics.stamps.WithLabelValues(kind, result).Inc()
	if s.msg != nil {
		s.msg.notes = append(s.msg.notes, kind+"="+result)
	}
}

func (s *session) noteAll(p *plan, result, reason string) {
	for _, k := range p.kinds() {
		s.note(k, result)
	}
	if s.msg != nil {
		s.msg.reason = reason
	}
}
