package policyd

import (
	"net/netip"
	"strings"

	"github.com/postern-mail/postern/internal/directory"
)

// sender is who sends a request's mail, as far as the directory can tell.
type sender struct {
	login   string            // the SASL login as sent; "" without SASL
	account *directory.Object // the enabled directory user; nil when there is none
	groups  []*directory.Object
	// byEnvelope: no SASL, but the client is in internal_networks, so the envelope
	// sender named the account (webmail on localhost).
	byEnvelope bool
}

// identify finds the sender: the SASL login's account, or without SASL from an internal
// network the account owning the envelope sender. Errors are temporary (the directory
// cannot answer).
func (p *Policy) identify(r *Request, client netip.Addr) (*sender, error) {
	s := &sender{login: r.SASLUsername}
	switch {
	case r.SASLUsername != "":
		u, err := p.resolver.User(r.SASLUsername)
		if err != nil {
			return nil, err
		}
		s.account = u
	case r.Sender != "" && p.internalNetworks.Contains(client):
		res, err := p.resolver.Resolve(r.Sender)
		if directory.IsTemporary(err) {
			return nil, err
		}
		if err == nil && res.Object != nil && res.Object.Kind == directory.User && !res.Object.Disabled {
			s.account, s.byEnvelope = res.Object, true
		}
	}
	if s.account != nil {
		snap, err := p.resolver.Snapshot()
		if err != nil {
			return nil, err
		}
		s.groups = snap.GroupsOf(s.account)
	}
	return s, nil
}

// groupIn returns the name of the first of the sender's groups in names (lower case),
// or "".
func (s *sender) groupIn(names map[string]bool) string {
	for _, g := range s.groups {
		if names[strings.ToLower(g.Name)] {
			return g.Name
		}
	}
	return ""
}

// memberOf reports whether the sender belongs to the group with that DN.
func (s *sender) memberOf(dn string) bool {
	for _, g := range s.groups {
		if strings.EqualFold(g.DN, dn) {
			return true
		}
	}
	return false
}

// loginKey is the login rate-limit overrides and counters use: the account's own
// sAMAccountName, so every spelling of a login (alice, CORP\alice, alice@corp) shares one
// budget; the login as sent when the directory does not know it.
func (s *sender) loginKey() string {
	if s.account != nil && s.account.Login != "" {
		return strings.ToLower(s.account.Login)
	}
	return strings.ToLower(s.login)
}

// name is how log lines call the sender.
func (s *sender) name() string {
	switch {
	case s.login != "":
		return s.login
	case s.account != nil:
		return s.account.Primary
	}
	return ""
}
