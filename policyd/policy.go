package policyd

import (
	"context"
	"net/netip"
	"strings"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/ratelimit"
)

// Policy is the rules of one configuration, compiled. A reload builds a new Policy and
// swaps it in whole; requests in flight finish with the one they started with.
type Policy struct {
	resolver *directory.Resolver
	store    ratelimit.Store
	failures *failureLog

	internalNetworks config.Networks
	exemptNetworks   config.Networks // trusted_relays and policyd.exempt.networks
	exemptLogins     map[string]bool // lower case

	internalGroups map[string]bool // lower case
	internalText   string
	senderLogin    config.SenderLogin
	rates          []rateRule
	deferOnFailure bool // policyd.on_redis_failure: defer
}

// NewPolicy compiles the policyd section of c. The store keeps the rate-limit counters;
// failures reports a store that cannot answer.
func NewPolicy(c *config.Config, resolver *directory.Resolver, store ratelimit.Store, failures *failureLog) *Policy {
	pc := c.Policyd
	p := &Policy{
		resolver:         resolver,
		store:            store,
		failures:         failures,
		internalNetworks: c.InternalNetworks,
		exemptNetworks:   append(append(config.Networks{}, c.TrustedRelays...), pc.Exempt.Networks...),
		exemptLogins:     lowerSet(pc.Exempt.Logins),
		internalGroups:   lowerSet(pc.InternalOnly.Groups),
		internalText:     pc.InternalOnly.RejectText,
		senderLogin:      pc.SenderLogin,
		deferOnFailure:   pc.OnRedisFailure == "defer",
	}
	for _, r := range pc.RateLimits {
		p.rates = append(p.rates, compileRate(r))
	}
	return p
}

func lowerSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return m
}

// Decide answers one request. It never answers OK (see Action).
func (p *Policy) Decide(ctx context.Context, r *Request) Verdict {
	e := &evaluation{p: p, r: r}
	e.client, _ = netip.ParseAddr(r.ClientAddress)
	if p.exempt(e) {
		return dunno("exempt")
	}
	switch r.ProtocolState {
	case "MAIL":
		return e.senderLogin()
	case "RCPT":
		if v := e.senderLogin(); v.Action != Dunno {
			return v
		}
		if v := e.internalOnly(); v.Action != Dunno {
			return v
		}
		return e.rateLimits(ctx, false)
	case "END-OF-MESSAGE":
		return e.rateLimits(ctx, true)
	}
	return dunno("none")
}

// exempt: trusted relays (PMG), configured networks and logins.
func (p *Policy) exempt(e *evaluation) bool {
	return p.exemptNetworks.Contains(e.client) ||
		(e.r.SASLUsername != "" && p.exemptLogins[strings.ToLower(e.r.SASLUsername)])
}

// evaluation is one request being decided; it looks the sender up once, when a rule
// first needs it.
type evaluation struct {
	p          *Policy
	r          *Request
	client     netip.Addr
	who        *sender
	whoErr     error
	identified bool
}

func (e *evaluation) sender() (*sender, error) {
	if !e.identified {
		e.identified = true
		e.who, e.whoErr = e.p.identify(e.r, e.client)
	}
	return e.who, e.whoErr
}

// unavailable is the verdict when the directory cannot answer a rule that needs it:
// the message waits (fail closed), it is never let out unchecked.
func unavailable(rule, identity string, err error) Verdict {
	return Verdict{Action: Defer, Code: 451, Enhanced: "4.3.0", Text: "directory temporarily unavailable, try again later",
		Rule: rule, Identity: identity, Reason: err.Error()}
}
