package policyd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/ratelimit"
)

// ruleRateLimit prefixes a rate-limit rule's name in metric labels and log lines;
// ruleStoreDown labels a decision the store could not count.
const (
	ruleRateLimit = "rate_limit:"
	ruleStoreDown = "rate_limit_unavailable"
)

// rateRule is one compiled policyd.rate_limits entry.
type rateRule struct {
	name      string
	groups    map[string]bool // lower case; empty: everyone
	identity  string
	windows   []ratelimit.Window
	overrides map[string]rateOverride // by lower-case login
}

type rateOverride struct {
	unlimited bool
	windows   []ratelimit.Window
}

func compileRate(c config.RateLimit) rateRule {
	r := rateRule{name: c.Name, groups: lowerSet(c.Groups), identity: c.Identity,
		windows: compileWindows(c.AllWindows()), overrides: map[string]rateOverride{}}
	for _, o := range c.Overrides {
		ov := rateOverride{unlimited: o.Unlimited, windows: compileWindows(o.AllWindows())}
		for _, login := range o.Logins {
			r.overrides[strings.ToLower(strings.TrimSpace(login))] = ov
		}
	}
	return r
}

func compileWindows(ws []config.RateWindow) []ratelimit.Window {
	out := make([]ratelimit.Window, 0, len(ws))
	for _, w := range ws {
		out = append(out, ratelimit.Window{Length: w.Window.D(),
			Max: ratelimit.Amount{Messages: w.Messages, Recipients: w.Recipients, Bytes: int64(w.Bytes)}})
	}
	return out
}

// needsAccount reports whether choosing the rule's windows needs the directory.
func (r *rateRule) needsAccount() bool { return len(r.groups) > 0 || len(r.overrides) > 0 }

// counted is a counter and the rule it belongs to.
type counted struct {
	rule     *rateRule
	identity string
}

// rateLimits checks (RCPT) or counts (END-OF-MESSAGE, commit) the message against every
// rule that applies. At RCPT the cost is one message, one recipient and the announced
// SIZE, so a sender whose budget is spent is deferred before DATA; at END-OF-MESSAGE it
// is the real recipient count and size. A retried END-OF-MESSAGE request (same Postfix
// instance) is counted once.
func (e *evaluation) rateLimits(ctx context.Context, commit bool) Verdict {
	if len(e.p.rates) == 0 {
		return dunno("none")
	}
	s, err := e.sender()
	if err != nil {
		for i := range e.p.rates {
			if e.p.rates[i].needsAccount() {
				return unavailable(ruleRateLimit+e.p.rates[i].name, e.identityForLog(), err)
			}
		}
		s = &sender{login: e.r.SASLUsername} // counted by the login as sent
	}
	var counters []ratelimit.Counter
	var owners []counted
	for i := range e.p.rates {
		r := &e.p.rates[i]
		windows, ok := r.windowsFor(s)
		if !ok {
			continue
		}
		id := e.identity(r.identity, s)
		for _, w := range windows {
			counters = append(counters, ratelimit.Counter{Key: r.name + "|" + id, Window: w})
			owners = append(owners, counted{r, id})
		}
	}
	if len(counters) == 0 {
		return dunno("none")
	}
	req := ratelimit.Request{Counters: counters, Cost: e.cost(commit), Commit: commit}
	if commit && e.r.Instance != "" {
		req.Once = e.r.Instance + "|" + e.r.ClientAddress
	}
	out, err := e.p.store.Take(ctx, req)
	if err != nil {
		return e.p.storeDown(err, owners[0].identity)
	}
	if out.Allowed {
		return dunno("none")
	}
	o, w := owners[out.Exceeded], counters[out.Exceeded].Window
	return Verdict{Action: DeferIfPermit, Enhanced: "4.7.1", Rule: ruleRateLimit + o.rule.name, Identity: o.identity,
		Text: fmt.Sprintf("sending limit reached: %s per %s, try again later", limitText(w.Max, out.Dimension), windowText(w.Length)),
		Reason: fmt.Sprintf("%s has used %s in the last %s; limit %s (%s store)",
			o.identity, out.Used, windowText(w.Length), limitText(w.Max, out.Dimension), e.p.store.Name())}
}

// windowsFor returns the windows that apply to s: none when the rule is for groups s is
// not in or s has an unlimited override, an override's when s has one.
func (r *rateRule) windowsFor(s *sender) ([]ratelimit.Window, bool) {
	if len(r.groups) > 0 && s.groupIn(r.groups) == "" {
		return nil, false
	}
	if o, ok := r.overrides[s.loginKey()]; ok && s.loginKey() != "" {
		return o.windows, !o.unlimited
	}
	return r.windows, true
}

// identity is what a rule counts by: the SASL login (its account's login), else the
// client address; or always the client address; or the envelope sender, forgeable,
// only when configured.
func (e *evaluation) identity(kind string, s *sender) string {
	switch {
	case kind == config.IdentitySASL && e.r.SASLUsername != "":
		return "sasl:" + s.loginKey()
	case kind == config.IdentitySender && e.r.Sender != "":
		return "sender:" + strings.ToLower(e.r.Sender)
	}
	return "client:" + e.r.ClientAddress
}

func (e *evaluation) cost(commit bool) ratelimit.Amount {
	c := ratelimit.Amount{Messages: 1, Recipients: 1, Bytes: e.r.Size}
	if commit && e.r.RecipientCount > 1 {
		c.Recipients = e.r.RecipientCount
	}
	return c
}

// storeDown answers when the store cannot: by default DUNNO (mail flows, uncounted),
// with on_redis_failure: defer a 4xx. Either way it is counted and logged.
func (p *Policy) storeDown(err error, identity string) Verdict {
	action := "dunno"
	if p.deferOnFailure {
		action = "defer"
	}
	p.failures.report(p.store.Name(), action, err)
	if p.deferOnFailure {
		return Verdict{Action: Defer, Code: 451, Enhanced: "4.3.0", Text: "rate limit service temporarily unavailable, try again later",
			Rule: ruleStoreDown, Identity: identity, Reason: err.Error()}
	}
	return Verdict{Action: Dunno, Rule: ruleStoreDown, Identity: identity, Reason: err.Error()}
}

func limitText(max ratelimit.Amount, dim string) string {
	switch dim {
	case ratelimit.Recipients:
		return fmt.Sprintf("%d recipients", max.Recipients)
	case ratelimit.Bytes:
		return bytesText(max.Bytes)
	}
	return fmt.Sprintf("%d messages", max.Messages)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// windowText writes a window the way the configuration does: 7d, 24h, 30m, 90s.
func windowText(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
