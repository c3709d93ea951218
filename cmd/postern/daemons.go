package main

import (
	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/service"
	lmtpshadow "github.com/postern-mail/postern/lmtp-shadow"
	"github.com/postern-mail/postern/milter"
	"github.com/postern-mail/postern/policyd"
	"github.com/postern-mail/postern/tcptable"
)

// daemon is a subcommand that serves: its name, whether the configuration enables it
// (for `postern run`), and how to build it.
type daemon struct {
	name    string
	enabled func(*config.Config) bool
	build   service.Constructor
	setting string // what enables it, for the error when it is run but not configured
}

// daemons lists every daemon in start order.
var daemons = []daemon{
	{name: "tcptable", enabled: func(c *config.Config) bool { return c.Tcptable.Enabled() }, build: tcptable.Build, setting: "tcptable.socketmap or tcptable.tcp"},
	{name: "policyd", enabled: func(c *config.Config) bool { return c.Policyd.Enabled() }, build: policyd.Build, setting: "policyd.listen"},
	{name: "milter", enabled: func(c *config.Config) bool { return c.Milter.Enabled() }, build: milter.New, setting: "milter.listen"},
	{name: "lmtp-shadow", enabled: func(c *config.Config) bool { return c.LMTPShadow.Enabled() }, build: lmtpshadow.Build, setting: "lmtp_shadow.listen"},
}

func findDaemon(name string) (daemon, bool) {
	for _, d := range daemons {
		if d.name == name {
			return d, true
		}
	}
	return daemon{}, false
}
