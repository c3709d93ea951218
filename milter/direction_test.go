package milter

import (
	"net/netip"
	"testing"

	"github.com/postern-mail/postern/internal/config"
)

func TestClassify(t *testing.T) {
	prefix := func(s string) config.Prefix {
		p, err := config.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	n := networks{
		Internal: config.Networks{prefix("10.0.0.0/8"), prefix("2001:db8::/32")},
		Trusted:  config.Networks{prefix("10.9.9.9")},
	}
	ip := netip.MustParseAddr
	tests := []struct {
		name     string
		o        origin
		external int
		want     Direction
	}{
		{"authenticated, one external", origin{Authenticated: true, Client: ip("198.51.100.1")}, 1, Outbound},
		{"authenticated, all internal", origin{Authenticated: true, Client: ip("198.51.100.1")}, 0, Internal},
		{"authenticated external sender still from inside", origin{Authenticated: true, Client: ip("198.51.100.1")}, 2, Outbound},
		{"internal network, internal sender", origin{Client: ip("10.1.1.1"), SenderInternal: true}, 1, Outbound},
		{"internal network, internal sender, internal rcpts", origin{Client: ip("10.1.1.1"), SenderInternal: true}, 0, Internal},
		{"internal network, external sender", origin{Client: ip("10.1.1.1")}, 1, Inbound},
		{"IPv6 internal network", origin{Client: ip("2001:db8::5"), SenderInternal: true}, 1, Outbound},
		{"IPv4-mapped IPv6", origin{Client: ip("::ffff:10.1.1.1"), SenderInternal: true}, 0, Internal},
		{"trusted relay with internal sender", origin{Client: ip("10.9.9.9"), SenderInternal: true}, 0, Inbound},
		{"trusted relay, authenticated", origin{Authenticated: true, Client: ip("10.9.9.9")}, 1, Outbound},
		{"internet, internal sender (spoofed)", origin{Client: ip("198.51.100.1"), SenderInternal: true}, 1, Inbound},
		{"local socket, internal sender", origin{SenderInternal: true}, 1, Outbound},
		{"local socket, external sender", origin{}, 1, Inbound},
	}
	for _, tt := range tests {
		if got := n.classify(tt.o, tt.external); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}
