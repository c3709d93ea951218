package config

import (
	"fmt"
	"net"
)

// Redis is the shared state of several instances (rate limits, journal): standalone (one
// address), Sentinel (master_name set; the addresses are the sentinels) or Cluster
// (several addresses, no master_name).
type Redis struct {
	Addrs        []string `yaml:"addrs"`
	MasterName   string   `yaml:"master_name"`
	Username     string   `yaml:"username"` // Redis 6 ACL user; "" is the default user
	PasswordFile string   `yaml:"password_file"`
	Password     Secret   `yaml:"-"`
	// Timeout bounds every Redis call (connect, command, reply), so a slow or unreachable
	// Redis cannot hold a Postfix client beyond it.
	Timeout Duration `yaml:"timeout"`
}

// Enabled reports whether Redis is configured.
func (r Redis) Enabled() bool { return len(r.Addrs) > 0 }

func redisDefaults() Redis { return Redis{Timeout: Duration(1e9)} }

func (l *loader) validateRedis(c *Config) {
	r := &c.Redis
	if r.PasswordFile != "" {
		l.readSecret("redis.password_file", &r.PasswordFile, &r.Password)
	}
	for i, a := range r.Addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			l.add(fmt.Sprintf("redis.addrs.%d", i), "%q is not HOST:PORT, e.g. 127.0.0.1:6379", a)
		}
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		l.add("redis.addrs", "master_name %q needs the Sentinel addresses in addrs", r.MasterName)
	}
	if r.Timeout <= 0 {
		l.add("redis.timeout", "must be positive, e.g. 1s")
	}
}
