package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicydConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "directory.yaml"), []byte("users: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "redis.secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = `domains: [corp.example.test]
directory:
  backend: static
  static: {file: directory.yaml}
`
	tests := []struct {
		name string
		body string
		want []string // every problem, reported at once; none for a valid configuration
	}{
		{"the issue's example", `policyd:
  listen: inet:127.0.0.1:10040
  internal_only: {groups: [Interns], reject_text: "interns may only send to internal addresses"}
  sender_login: {enforce: true}
  rate_limits:
    - {name: interns-daily, groups: [Interns], identity: sasl_username, window: 24h, messages: 50, recipients: 200}
    - {name: everyone-hourly, identity: sasl_username, window: 1h, messages: 300, bytes: 500MB}
  exempt: {networks: [192.0.2.10/32]}
redis:
  addrs: [127.0.0.1:6379]
  master_name: ""
  password_file: redis.secret
`, nil},
		{"several windows, overrides, a unix socket, Sentinel", `policyd:
  listen: unix:/var/spool/postfix/postern/policy.sock
  rate_limits:
    - name: everyone
      identity: client_address
      windows: [{window: 1h, messages: 60}, {window: 1d, messages: 300}]
      overrides: [{logins: [bob], unlimited: true}, {logins: [alice], window: 1h, recipients: 1000}]
  on_redis_failure: defer
redis: {addrs: ["10.0.0.1:26379", "10.0.0.2:26379"], master_name: mymaster}
`, nil},
		{"every mistake at once", `policyd:
  listen: inet:0.0.0.0:10040
  internal_only: {groups: [""], reject_text: "two\nlines"}
  sender_login: {reject_text: ""}
  rate_limits:
    - {name: "bad name", identity: envelope, window: 500ms, messages: -1}
    - {name: dup, window: 1h}
    - {name: dup}
    - {name: ov, window: 1h, messages: 1, overrides: [{logins: [], unlimited: true, window: 1h, messages: 2}]}
  on_redis_failure: maybe
redis: {addrs: [localhost], master_name: x, timeout: 0s}
`, []string{
			"policyd.listen: inet:0.0.0.0:10040 can be reached from other hosts",
			`policyd.internal_only.groups.0: "" is not a name`,
			"policyd.internal_only.reject_text: \"two\\nlines\": use printable ASCII only",
			"policyd.sender_login.reject_text: give the text the SMTP client sees",
			`policyd.rate_limits.0.name: "bad name": give every rule a name`,
			`policyd.rate_limits.0.identity: "envelope": use sasl_username`,
			"policyd.rate_limits.0.window: 500ms: a window is at least 1s",
			"policyd.rate_limits.0: limits cannot be negative",
			"policyd.rate_limits.1: set at least one of messages, recipients or bytes",
			`policyd.rate_limits.2.name: "dup" is used by another rule`,
			"policyd.rate_limits.2: give a window and a limit",
			"policyd.rate_limits.3.overrides.0.logins: list the logins",
			"policyd.rate_limits.3.overrides.0.unlimited: an unlimited override has no windows",
			`policyd.on_redis_failure: "maybe": use dunno`,
			`redis.addrs.0: "localhost" is not HOST:PORT`,
			"redis.timeout: must be positive",
		}},
		{"a size that is no size", `policyd:
  rate_limits: [{name: x, window: 1h, bytes: lots}]
`, []string{`bad size "lots"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "postern.yaml"), []byte(base+tt.body))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !c.Policyd.Enabled() {
					t.Error("policyd not enabled")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestPolicydParsed(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d.yaml"), []byte("users: []\n"), 0o600)
	c, err := Parse(filepath.Join(dir, "postern.yaml"), []byte(`domains: [corp.example.test]
directory: {backend: static, static: {file: d.yaml}}
policyd:
  rate_limits:
    - {name: a, window: 24h, messages: 50, windows: [{window: 1h, messages: 10}]}
    - {name: b, window: 7d, bytes: 500MB}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policyd
	if p.Enabled() || !p.SenderLogin.Enforce || !p.SenderLogin.GroupAddresses || p.OnRedisFailure != "dunno" || c.Redis.Timeout.D() != time.Second {
		t.Errorf("defaults: %+v, redis %+v", p, c.Redis)
	}
	a, b := p.RateLimits[0], p.RateLimits[1]
	if w := a.AllWindows(); len(w) != 2 || w[0].Window.D() != 24*time.Hour || w[0].Messages != 50 || w[1].Window.D() != time.Hour || a.Identity != IdentitySASL {
		t.Errorf("rule a: %+v", a)
	}
	if w := b.AllWindows(); len(w) != 1 || w[0].Bytes != 500<<20 || w[0].Window.D() != 7*24*time.Hour {
		t.Errorf("rule b: %+v", b)
	}
}
