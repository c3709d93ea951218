package directory

import (
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/config"
)

// SourceFrom builds the configured source.
func SourceFrom(c config.Directory) (Source, error) {
	if c.Backend == "static" {
		return StaticSource{Path: c.Static.File}, nil
	}
	return NewLDAPSource(c.LDAP)
}

// StateFile is where the snapshot is persisted under the state directory.
func StateFile(c *config.Config) string { return filepath.Join(c.StateDir, "directory.json") }

// OptionsFrom builds a directory's options from a loaded configuration.
func OptionsFrom(c *config.Config, log *zap.Logger, reg prometheus.Registerer) (Options, error) {
	src, err := SourceFrom(c.Directory)
	if err != nil {
		return Options{}, err
	}
	return Options{Source: src, Refresh: c.Directory.Refresh.D(), MaxStale: c.Directory.MaxStale.D(),
		StateFile: StateFile(c), Logger: log, Registry: reg}, nil
}

// FromConfig builds the directory and its resolver from a loaded configuration.
func FromConfig(c *config.Config, log *zap.Logger, reg prometheus.Registerer) (*Directory, *Resolver, error) {
	o, err := OptionsFrom(c, log, reg)
	if err != nil {
		return nil, nil, err
	}
	d := New(o)
	return d, NewResolver(d, PolicyFrom(c)), nil
}
