package policyd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/directory"
)

// Rule names, as metric labels and log lines give them.
const (
	ruleInternalOnly = "internal_only"
	ruleSenderLogin  = "sender_login"
)

// internalOnly: a member (transitively) of an internal-only group may send only to
// recipients whose every final target is internal, as the resolver decides. Lists with
// an outside member, contacts, forwarding addresses, routing forms and look-alike
// domains are all external.
func (e *evaluation) internalOnly() Verdict {
	if len(e.p.internalGroups) == 0 {
		return dunno(ruleInternalOnly)
	}
	s, err := e.sender()
	if err != nil {
		return unavailable(ruleInternalOnly, e.identityForLog(), err)
	}
	group := s.groupIn(e.p.internalGroups)
	if group == "" {
		return dunno(ruleInternalOnly)
	}
	res, err := e.p.resolver.Resolve(e.r.Recipient)
	if directory.IsTemporary(err) {
		return unavailable(ruleInternalOnly, s.name(), err)
	}
	if err == nil && res.Found() && res.Internal {
		return dunno(ruleInternalOnly)
	}
	return Verdict{Action: Reject, Enhanced: "5.7.1", Text: e.p.internalText, Rule: ruleInternalOnly, Identity: s.name(),
		Reason: fmt.Sprintf("%s is in internal-only group %s; recipient %s", s.name(), group, e.p.whyExternal(res, err))}
}

// whyExternal says, for the log, why a recipient is not internal.
func (p *Policy) whyExternal(res *directory.Result, err error) string {
	switch {
	case errors.Is(err, address.ErrMalformed):
		return "is not a plain address"
	case res.Routed:
		return "uses a routing form (%, ! or a quoted local part)"
	case res.Kind == directory.KindUnknown:
		return "is not an internal address"
	case res.Kind == directory.KindContact:
		return "is a contact for " + res.Canonical
	}
	pol := p.resolver.Policy()
	var outside []string
	for _, t := range res.Targets {
		if a, err := address.Parse(t, ""); err != nil || a.Routed || !pol.IsInternalDomain(a.Domain) {
			outside = append(outside, t)
		}
	}
	return fmt.Sprintf("is a %s reaching %s", res.Kind, strings.Join(outside, ", "))
}

// senderLogin: an authenticated client may use only its account's addresses, and with
// group_addresses those of the groups it belongs to. The null sender (bounces) passes,
// as with Postfix's reject_sender_login_mismatch.
func (e *evaluation) senderLogin() Verdict {
	sl := e.p.senderLogin
	if !sl.Enforce || e.r.SASLUsername == "" || e.r.Sender == "" {
		return dunno(ruleSenderLogin)
	}
	s, err := e.sender()
	if err != nil {
		return unavailable(ruleSenderLogin, e.r.SASLUsername, err)
	}
	reject := func(reason string) Verdict {
		return Verdict{Action: Reject, Enhanced: "5.7.1", Text: sl.RejectText, Rule: ruleSenderLogin, Identity: s.name(), Reason: reason}
	}
	if s.account == nil {
		return reject(fmt.Sprintf("login %q is not an enabled user in the directory (list service logins under policyd.exempt.logins)", s.login))
	}
	res, err := e.p.resolver.Resolve(e.r.Sender)
	if directory.IsTemporary(err) {
		return unavailable(ruleSenderLogin, s.name(), err)
	}
	if err == nil && owns(s, res, sl.GroupAddresses) {
		return dunno(ruleSenderLogin)
	}
	owner := "nobody in the directory"
	if err == nil && res.Object != nil {
		owner = string(res.Object.Kind) + " " + res.Object.DN
	}
	return reject(fmt.Sprintf("login %s (%s) may not send as %s: it belongs to %s", s.login, s.account.DN, e.r.Sender, owner))
}

// owns reports whether the sender may use the resolved address.
func owns(s *sender, res *directory.Result, groupAddresses bool) bool {
	o := res.Object
	switch {
	case o == nil || o.Disabled || s.account == nil:
		return false
	case strings.EqualFold(o.DN, s.account.DN):
		return true
	case groupAddresses && o.Kind == directory.Group:
		return s.memberOf(o.DN)
	}
	return false
}

// identityForLog names the client when the sender could not be looked up.
func (e *evaluation) identityForLog() string {
	if e.r.SASLUsername != "" {
		return e.r.SASLUsername
	}
	return e.r.ClientAddress
}
