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
}

// daemons lists every daemon in start order.
var daemons = []daemon{
	{name: "tcptable", enabled: func(c *config.Config) bool { return c.Tcptable.Enabled() }, build: tcptable.Build},
	{name: "policyd", enabled: func(c *config.Config) bool { return c.Policyd.Enabled() }, build: policyd.Build},
	{name: "milter", enabled: func(c *config.Config) bool { return c.Milter.Enabled() }, build: milter.New},
	{name: "lmtp-shadow", enabled: func(c *config.Config) bool { return c.LMTPShadow.Enabled() }, build: lmtpshadow.Build},
}

func findDaemon(name string) (daemon, bool) {
	for _, d := range daemons {
		if d.name == name {
			return d, true
		}
	}
	return daemon{}, false
}
