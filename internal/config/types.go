package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "90s", "5m", "24h" or "7d".
type Duration time.Duration

// UnmarshalYAML parses Go durations plus a whole number of days ("7d").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return typeError(n, "bad duration %q (use e.g. 30s, 5m, 24h or 7d)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration the way it is read.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("bad duration")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Prefix is an IP network written as "10.0.0.0/8" or a single address.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML accepts a CIDR prefix or a bare address (a /32 or /128).
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePrefix(n.Value)
	if err != nil {
		return typeError(n, "bad network %q (use CIDR notation, e.g. 10.0.0.0/8)", n.Value)
	}
	*p = v
	return nil
}

// MarshalYAML writes the prefix in CIDR notation.
func (p Prefix) MarshalYAML() (any, error) { return p.String(), nil }

// ParsePrefix parses a CIDR prefix or a bare address.
func ParsePrefix(s string) (Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Prefix{}, err
		}
		return Prefix{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Prefix{}, err
	}
	return Prefix{p.Masked()}, nil
}

// Networks is a list of prefixes with a membership test.
type Networks []Prefix

// Contains reports whether addr lies in one of the networks.
func (ns Networks) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range ns {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// Listen is where a daemon listens, in Postfix's notation: "inet:HOST:PORT",
// "unix:/path", or plain "HOST:PORT".
type Listen struct {
	Network string // "tcp" or "unix"
	Address string // "127.0.0.1:10040" or "/var/spool/postfix/postern/policy.sock"
}

// UnmarshalYAML parses the Postfix-style notation.
func (l *Listen) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseListen(n.Value)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*l = v
	return nil
}

// MarshalYAML writes the Postfix-style notation.
func (l Listen) MarshalYAML() (any, error) { return l.String(), nil }

func (l Listen) String() string {
	if l.Network == "" {
		return ""
	}
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return "inet:" + l.Address
}

// IsZero reports whether no listener is set.
func (l Listen) IsZero() bool { return l.Network == "" }

// IsLoopback reports whether the listener can be reached only from this host: a unix
// socket, or a TCP address on a loopback IP or "localhost".
func (l Listen) IsLoopback() bool {
	if l.Network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(l.Address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ParseListen parses "inet:HOST:PORT", "unix:/path" or "HOST:PORT".
func ParseListen(s string) (Listen, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Listen{}, nil
	case strings.HasPrefix(s, "unix:"):
		path := strings.TrimPrefix(s, "unix:")
		if !strings.HasPrefix(path, "/") {
			return Listen{}, fmt.Errorf("bad listener %q: a unix socket needs an absolute path", s)
		}
		return Listen{Network: "unix", Address: path}, nil
	default:
		addr := strings.TrimPrefix(s, "inet:")
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return Listen{}, fmt.Errorf("bad listener %q (use inet:127.0.0.1:PORT or unix:/path)", s)
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return Listen{}, fmt.Errorf("bad listener %q: bad port %q", s, port)
		}
		return Listen{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
	}
}

// Secret is a value read from a *_file key. It prints as "[redacted]" everywhere, so it
// cannot reach a log line or check-config's output by accident.
type Secret struct{ value string }

// NewSecret wraps a secret value.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the secret itself, for the one place that needs it (a bind, an AUTH).
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

func (s Secret) String() string                { return redacted }
func (s Secret) GoString() string              { return redacted }
func (s Secret) MarshalYAML() (any, error)     { return redacted, nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

const redacted = "[redacted]"

// typeError reports a value error at the node's line; yaml collects every such error
// instead of stopping at the first.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}
