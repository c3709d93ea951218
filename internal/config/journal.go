package config

import "path/filepath"

// Journal is the envelope journal the milter writes and lmtp-shadow reads: one entry per
// message (who sent it to whom, BCC included), found again by the opaque id in the
// message's X-Postern-Journal header.
type Journal struct {
	// Store is "file" (one file per entry under Path, safe for several processes) or
	// "redis" (the top-level redis section).
	Store string `yaml:"store"`
	// Path is the file store's folder; default state_dir/journal.
	Path string `yaml:"path"`
	// Retention is how long an entry is kept; expired entries are removed, so the store
	// cannot grow forever.
	Retention Duration `yaml:"retention"`
	// Timeout bounds every call to the store, well inside Postfix's milter timeouts.
	Timeout Duration `yaml:"timeout"`
	// KeyPrefix prefixes the Redis keys.
	KeyPrefix string `yaml:"key_prefix"`
}

// Journal defaults, applied to keys the file leaves out.
const (
	defaultJournalRetention = Duration(30 * 24 * 3600e9)
	defaultJournalTimeout   = Duration(5e9)
	defaultJournalKeyPrefix = "postern:journal:"
)

func (l *loader) validateJournal(c *Config) {
	j := &c.Journal
	if j.Store == "" {
		j.Store = "file"
	}
	if j.Retention == 0 {
		j.Retention = defaultJournalRetention
	}
	if j.Timeout == 0 {
		j.Timeout = defaultJournalTimeout
	}
	if j.KeyPrefix == "" {
		j.KeyPrefix = defaultJournalKeyPrefix
	}
	switch j.Store {
	case "file":
		if j.Path == "" {
			j.Path = filepath.Join(c.StateDir, "journal")
		}
		j.Path = l.path(j.Path)
	case "redis":
		if !c.Redis.Enabled() {
			l.add("journal.store", "redis needs the top-level redis section (redis.addrs), or use store: file")
		}
	default:
		l.add("journal.store", "%q: use file or redis", j.Store)
	}
	if j.Retention < Duration(3600e9) {
		l.add("journal.retention", "%s is too short: an entry must outlive the queue (use e.g. 30d)", j.Retention.D())
	}
	if j.Timeout < 0 || j.Timeout > Duration(60e9) {
		l.add("journal.timeout", "%s is outside 0s..60s (Postfix waits milter_content_timeout, 300s, for the whole end of message)", j.Timeout.D())
	}
}
