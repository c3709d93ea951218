package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/address"
)

// TcptableMaps are the tables `postern tcptable` serves: the socketmap name of each, and
// its key under tcptable.tcp.
var TcptableMaps = []string{"domains", "alias_domains", "mailboxes", "aliases", "senders", "recipients", "shadow"}

// ShadowDomain is the placeholder in tcptable.shadow.address for the archived address's
// primary domain.
const ShadowDomain = "{domain}"

// Tcptable configures `postern tcptable`: Postfix socketmap and tcp_table lookups.
type Tcptable struct {
	// Socketmap is the one listener for every map (socketmap_table(5)).
	Socketmap Listen `yaml:"socketmap"`
	// TCP gives a map its own tcp_table(5) listener: tcp_table has no map name in its
	// requests, so each map needs a port of its own.
	TCP map[string]Listen `yaml:"tcp"`
	// Senders configures smtpd_sender_login_maps.
	Senders TcptableSenders `yaml:"senders"`
	// Shadow configures the sender_bcc_maps/recipient_bcc_maps answer.
	Shadow TcptableShadow `yaml:"shadow"`
	// IdleTimeout closes a connection that sent nothing for this long. Postfix's clients
	// reconnect by themselves; their processes exit long before this (max_idle 100 s).
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// TcptableSenders configures who may send as an address.
type TcptableSenders struct {
	// GroupSendAs lets the enabled members of a group (transitively) send as the group's
	// address.
	GroupSendAs bool `yaml:"group_send_as"`
}

// TcptableShadow configures the archive BCC address.
type TcptableShadow struct {
	// Address is the shadow mailbox: a fixed address, or one per primary domain with
	// {domain} in it ("shadow@{domain}").
	Address string `yaml:"address"`
}

// Enabled reports whether the configuration gives tcptable anything to listen on.
func (t Tcptable) Enabled() bool { return !t.Socketmap.IsZero() || len(t.TCP) > 0 }

func tcptableDefaults() Tcptable {
	return Tcptable{
		Shadow:      TcptableShadow{Address: "shadow@" + ShadowDomain},
		IdleTimeout: Duration(15 * time.Minute),
	}
}

func (l *loader) validateTcptable(c *Config) {
	t := &c.Tcptable
	const k = "tcptable."
	l.checkListen(k+"socketmap", t.Socketmap, c.AllowNonLoopback)
	taken := map[Listen]string{}
	if !t.Socketmap.IsZero() {
		taken[t.Socketmap] = k + "socketmap"
	}
	for _, name := range slices.Sorted(maps.Keys(t.TCP)) {
		key, ln := k+"tcp."+name, t.TCP[name]
		switch {
		case !slices.Contains(TcptableMaps, name):
			l.add(key, "%q is not a map; use one of %s", name, strings.Join(TcptableMaps, ", "))
		case ln.IsZero():
			l.add(key, "set an address, e.g. 127.0.0.1:10051")
		case ln.Network != "tcp":
			l.add(key, "%s: tcp_table(5) speaks TCP only; use tcptable.socketmap for a unix socket", ln)
		case taken[ln] != "":
			l.add(key, "%s is already used by %s; every tcp_table map needs a port of its own", ln, taken[ln])
		default:
			taken[ln] = key
			l.checkListen(key, ln, c.AllowNonLoopback)
		}
	}
	if t.IdleTimeout <= 0 {
		l.add(k+"idle_timeout", "must be positive, e.g. 15m")
	}
	if err := checkShadowAddress(t.Shadow.Address); err != nil {
		l.add(k+"shadow.address", "%v", err)
	}
}

// checkShadowAddress accepts a plain address, optionally with {domain} as its domain.
func checkShadowAddress(s string) error {
	rendered := strings.ReplaceAll(s, ShadowDomain, "corp.example.test")
	if strings.ContainsAny(rendered, "{}") {
		return fmt.Errorf("%q: the only placeholder is %s", s, ShadowDomain)
	}
	a, err := address.Parse(rendered, "")
	if err != nil || a.Routed || strings.ContainsAny(rendered, "<> ") {
		return fmt.Errorf("%q is not a mail address (e.g. shadow@%s or archive@corp.example.com)", s, ShadowDomain)
	}
	return nil
}
