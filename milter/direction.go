package milter

import (
	"net/netip"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// Direction says where a message goes: out of the company, into it, or within it.
type Direction string

// The directions a message can have; they are also metric label values.
const (
	Outbound Direction = "outbound"
	Inbound  Direction = "inbound"
	Internal Direction = "internal"
)

var allDirections = []Direction{Outbound, Inbound, Internal}

// origin is what the milter knows about where a message comes from.
type origin struct {
	Authenticated  bool       // SASL login ({auth_authen})
	Client         netip.Addr // invalid for a local (unix socket) client
	SenderInternal bool       // the envelope sender is in an accepted domain
}

// networks are the top-level internal_networks and trusted_relays.
type networks struct {
	Internal config.Networks
	Trusted  config.Networks
}

// fromInside reports whether a message was submitted by the company: SASL-authenticated,
// or from an internal network (or a local socket) with an internal sender. Mail relayed
// by a trusted gateway (PMG) without a login is from outside, whatever its sender says.
func (n networks) fromInside(o origin) bool {
	if o.Authenticated {
		return true
	}
	if !o.Client.IsValid() {
		return o.SenderInternal
	}
	if n.Trusted.Contains(o.Client) {
		return false
	}
	return o.SenderInternal && n.Internal.Contains(o.Client)
}

// classify: outbound is from inside to at least one external recipient; internal is from
// inside to internal recipients only; everything else is inbound.
func (n networks) classify(o origin, external int) Direction {
	switch {
	case !n.fromInside(o):
		return Inbound
	case external > 0:
		return Outbound
	default:
		return Internal
	}
}

// isInternalSender reports whether an envelope sender is in an accepted domain; the null
// sender and routing forms are not.
func isInternalSender(r *directory.Resolver, sender string) bool {
	if sender == "" {
		return false
	}
	p := r.Policy()
	a, err := address.Parse(sender, p.Delimiters)
	return err == nil && !a.Routed && p.IsInternalDomain(a.Domain)
}

// isExternalRecipient reports whether mail to rcpt leaves the company: a domain that is
// not accepted, a routing form, or an internal address the directory sends outside (a
// contact, a forward, a list with external members). Without the directory the domain
// decides.
func isExternalRecipient(r *directory.Resolver, rcpt string) bool {
	p := r.Policy()
	a, err := address.Parse(rcpt, p.Delimiters)
	if err != nil || a.Routed || !p.IsInternalDomain(a.Domain) {
		return true
	}
	res, err := r.Resolve(rcpt)
	if err != nil {
		return false
	}
	return res.Found() && !res.Internal
}

// senderDomain is the normalised domain of an address, "" for the null sender or
// something that does not parse.
func senderDomain(addr string) string {
	a, err := address.Parse(addr, "")
	if err != nil || a.Routed {
		return ""
	}
	return a.Domain
}
