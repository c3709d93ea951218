package config

// Policyd configures `postern policyd`: Postfix policy delegation.
type Policyd struct {
	Listen Listen `yaml:"listen"`
}

// Enabled reports whether the configuration gives policyd anything to listen on.
func (p Policyd) Enabled() bool { return !p.Listen.IsZero() }

func (l *loader) validatePolicyd(c *Config) {
	l.checkListen("policyd.listen", c.Policyd.Listen, c.AllowNonLoopback)
}
