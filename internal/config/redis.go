package config

// Redis is the shared state of several instances (rate limits, journal): standalone,
// Sentinel (master_name set) or Cluster (several addresses, no master_name).
type Redis struct {
	Addrs        []string `yaml:"addrs"`
	MasterName   string   `yaml:"master_name"`
	PasswordFile string   `yaml:"password_file"`
	Password     Secret   `yaml:"-"`
}

// Enabled reports whether Redis is configured.
func (r Redis) Enabled() bool { return len(r.Addrs) > 0 }

func (l *loader) validateRedis(c *Config) {
	if c.Redis.PasswordFile != "" {
		l.readSecret("redis.password_file", &c.Redis.PasswordFile, &c.Redis.Password)
	}
}
