package config

// Tcptable configures `postern tcptable`: Postfix socketmap and tcp_table lookups.
type Tcptable struct {
	// Socketmap is the one listener for every map (socketmap_table(5)).
	Socketmap Listen `yaml:"socketmap"`
}

// Enabled reports whether the configuration gives tcptable anything to listen on.
func (t Tcptable) Enabled() bool { return !t.Socketmap.IsZero() }

func (l *loader) validateTcptable(c *Config) {
	l.checkListen("tcptable.socketmap", c.Tcptable.Socketmap, c.AllowNonLoopback)
}
