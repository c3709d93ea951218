package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Policyd configures `postern policyd`: Postfix policy delegation (SMTPD_POLICY_README)
// for internal-only groups, the sender/login match and rate limits.
type Policyd struct {
	Listen       Listen        `yaml:"listen"`
	InternalOnly InternalOnly  `yaml:"internal_only"`
	SenderLogin  SenderLogin   `yaml:"sender_login"`
	RateLimits   []RateLimit   `yaml:"rate_limits"`
	Exempt       PolicydExempt `yaml:"exempt"`
	// OnRedisFailure is what a request that rate limits apply to gets when Redis cannot
	// answer: "dunno" lets the mail flow uncounted (logged and counted in
	// postern_policyd_rate_limit_store_errors_total), "defer" makes it wait.
	OnRedisFailure string `yaml:"on_redis_failure"`
}

// InternalOnly restricts members of the groups to internal recipients.
type InternalOnly struct {
	Groups     []string `yaml:"groups,omitempty"`
	RejectText string   `yaml:"reject_text"`
}

// SenderLogin makes an authenticated client use only its own addresses.
type SenderLogin struct {
	Enforce bool `yaml:"enforce"`
	// GroupAddresses lets a user send as the address of a group it belongs to.
	GroupAddresses bool   `yaml:"group_addresses"`
	RejectText     string `yaml:"reject_text"`
}

// RateWindow is one limit: at most Messages, Recipients and Bytes in any period of
// Window (a sliding window). 0 leaves that dimension unlimited. The whole budget may be
// used at once: the burst is the limit itself; add a shorter window to smooth it.
type RateWindow struct {
	Window     Duration `yaml:"window,omitempty"`
	Messages   int64    `yaml:"messages,omitempty"`
	Recipients int64    `yaml:"recipients,omitempty"`
	Bytes      ByteSize `yaml:"bytes,omitempty"`
}

// IsZero reports whether no window is written inline.
func (w RateWindow) IsZero() bool { return w == RateWindow{} }

// RateLimit is one rule: who it applies to, what it counts them by, and its windows
// (one inline, or several under windows).
type RateLimit struct {
	Name       string   `yaml:"name"`
	Groups     []string `yaml:"groups,omitempty"`
	Identity   string   `yaml:"identity"` // sasl_username (default) | client_address | sender
	RateWindow `yaml:",inline"`
	Windows    []RateWindow   `yaml:"windows,omitempty"`
	Overrides  []RateOverride `yaml:"overrides,omitempty"`
}

// AllWindows returns the inline window and the listed ones.
func (r RateLimit) AllWindows() []RateWindow {
	if !r.RateWindow.IsZero() {
		return append([]RateWindow{r.RateWindow}, r.Windows...)
	}
	return r.Windows
}

// RateOverride replaces a rule's windows for some logins, or exempts them.
type RateOverride struct {
	Logins     []string `yaml:"logins"`
	Unlimited  bool     `yaml:"unlimited,omitempty"`
	RateWindow `yaml:",inline"`
	Windows    []RateWindow `yaml:"windows,omitempty"`
}

// AllWindows returns the inline window and the listed ones.
func (o RateOverride) AllWindows() []RateWindow {
	if !o.RateWindow.IsZero() {
		return append([]RateWindow{o.RateWindow}, o.Windows...)
	}
	return o.Windows
}

// PolicydExempt lists clients no policyd rule applies to (besides trusted_relays).
type PolicydExempt struct {
	Networks Networks `yaml:"networks"`
	Logins   []string `yaml:"logins"`
}

// Enabled reports whether the configuration gives policyd anything to listen on.
func (p Policyd) Enabled() bool { return !p.Listen.IsZero() }

// Identities a rate limit can count by.
const (
	IdentitySASL   = "sasl_username"
	IdentityClient = "client_address"
	IdentitySender = "sender"
)

func policydDefaults() Policyd {
	return Policyd{
		InternalOnly:   InternalOnly{RejectText: "you may only send to internal addresses"},
		SenderLogin:    SenderLogin{Enforce: true, GroupAddresses: true, RejectText: "sender address not owned by your login"},
		OnRedisFailure: "dunno",
	}
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func (l *loader) validatePolicyd(c *Config) {
	p := &c.Policyd
	l.checkListen("policyd.listen", p.Listen, c.AllowNonLoopback)
	l.checkNames("policyd.internal_only.groups", p.InternalOnly.Groups)
	l.checkReplyText("policyd.internal_only.reject_text", p.InternalOnly.RejectText)
	l.checkReplyText("policyd.sender_login.reject_text", p.SenderLogin.RejectText)
	l.checkNames("policyd.exempt.logins", p.Exempt.Logins)
	switch p.OnRedisFailure {
	case "dunno", "defer":
	default:
		l.add("policyd.on_redis_failure", "%q: use dunno (mail flows uncounted) or defer (mail waits)", p.OnRedisFailure)
	}
	seen := map[string]bool{}
	for i := range p.RateLimits {
		l.validateRateLimit(fmt.Sprintf("policyd.rate_limits.%d", i), &p.RateLimits[i], seen)
	}
}

func (l *loader) validateRateLimit(key string, r *RateLimit, seen map[string]bool) {
	switch {
	case !ruleName.MatchString(r.Name):
		l.add(key+".name", "%q: give every rule a name of letters, digits, '.', '_' or '-' (it labels metrics and log lines)", r.Name)
	case seen[r.Name]:
		l.add(key+".name", "%q is used by another rule", r.Name)
	}
	seen[r.Name] = true
	if r.Identity == "" {
		r.Identity = IdentitySASL
	}
	switch r.Identity {
	case IdentitySASL, IdentityClient, IdentitySender:
	default:
		l.add(key+".identity", "%q: use sasl_username (the SASL login, else the client address), client_address or sender (forgeable)", r.Identity)
	}
	l.checkNames(key+".groups", r.Groups)
	l.checkWindows(key, r.RateWindow, r.Windows, true)
	for j, o := range r.Overrides {
		ok := fmt.Sprintf("%s.overrides.%d", key, j)
		if len(o.Logins) == 0 {
			l.add(ok+".logins", "list the logins this override is for")
		}
		l.checkNames(ok+".logins", o.Logins)
		if o.Unlimited {
			if len(o.AllWindows()) > 0 {
				l.add(ok+".unlimited", "an unlimited override has no windows")
			}
			continue
		}
		l.checkWindows(ok, o.RateWindow, o.Windows, false)
	}
}

// checkWindows wants at least one window, each with a length and at least one limit.
func (l *loader) checkWindows(key string, inline RateWindow, list []RateWindow, rule bool) {
	if inline.IsZero() && len(list) == 0 {
		hint := "give a window and a limit, e.g. {window: 1h, messages: 300}, or several under windows"
		if !rule {
			hint += " (or unlimited: true)"
		}
		l.add(key, "%s", hint)
		return
	}
	check := func(k string, w RateWindow) {
		if w.Window.D() < time.Second {
			l.add(k+".window", "%s: a window is at least 1s, e.g. 1h or 24h", w.Window.D())
		}
		if w.Messages < 0 || w.Recipients < 0 || w.Bytes < 0 {
			l.add(k, "limits cannot be negative (0 or absent means unlimited)")
		}
		if w.Messages == 0 && w.Recipients == 0 && w.Bytes == 0 {
			l.add(k, "set at least one of messages, recipients or bytes")
		}
	}
	if !inline.IsZero() {
		check(key, inline)
	}
	for i, w := range list {
		check(fmt.Sprintf("%s.windows.%d", key, i), w)
	}
}

// checkNames wants non-empty names without control characters.
func (l *loader) checkNames(key string, names []string) {
	for i, n := range names {
		if strings.TrimSpace(n) == "" || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			l.add(fmt.Sprintf("%s.%d", key, i), "%q is not a name", n)
		}
	}
}

// checkReplyText wants a short, printable, one-line SMTP reply text.
func (l *loader) checkReplyText(key, text string) {
	switch {
	case strings.TrimSpace(text) == "":
		l.add(key, "give the text the SMTP client sees")
	case len(text) > 200:
		l.add(key, "is %d bytes long; keep it under 200 (an SMTP reply line is at most 512)", len(text))
	case strings.IndexFunc(text, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		l.add(key, "%q: use printable ASCII only (SMTP replies are 7-bit)", text)
	}
}
