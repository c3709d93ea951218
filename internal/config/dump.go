package config

import "go.yaml.in/yaml/v3"

// Effective renders the configuration as postern runs it, defaults filled in and every
// secret redacted, for check-config and the start-up log.
func (c *Config) Effective() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return "# cannot render configuration: " + err.Error()
	}
	return string(b)
}
