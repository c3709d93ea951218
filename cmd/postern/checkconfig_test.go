package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret = "S3cret-Bind-Passw0rd"

// writeConfig writes a configuration and a password file beside it.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ldap.secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "postern.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodLDAP = `domains: [corp.example.test]
state_dir: /var/lib/postern
directory:
  backend: ldap
  ldap:
    urls: [ldaps://dc1.corp.example.test:636]
    bind_dn: "CN=postern,CN=Users,DC=corp,DC=example,DC=test"
    bind_password_file: ldap.secret
    base_dn: "DC=corp,DC=example,DC=test"
`

func TestCheckConfigValid(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check-config", "-c", writeConfig(t, goodLDAP)}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"refresh: 1m0s", "max_stale: 24h0m0s", "user_filter:", "listen: inet:127.0.0.1:9540"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("effective configuration lacks the default %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errb.String(), secret) {
		t.Fatal("check-config printed the bind password")
	}
}

func TestCheckConfigBroken(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // every one must be reported, at once
	}{
		{"unknown key with its line", goodLDAP + "  refersh: 10s\n", []string{"line 10: directory.refersh: unknown key"}},
		{"unknown top-level key", "domain: [x.test]\n" + goodLDAP, []string{"line 1: domain: unknown key"}},
		{"missing secret file", strings.Replace(goodLDAP, "ldap.secret", "missing.secret", 1), []string{"directory.ldap.bind_password_file", "missing.secret: no such file"}},
		{"bad duration", goodLDAP + "  refresh: 60x\n", []string{`line 10: directory.refresh: bad duration "60x"`}},
		{"non-loopback listener", goodLDAP + "telemetry: {listen: 0.0.0.0:9540}\n", []string{"telemetry.listen", "allow_non_loopback"}},
		{"plain ldap without opt-in", strings.Replace(goodLDAP, "ldaps://dc1.corp.example.test:636", "ldap://dc1.corp.example.test", 1), []string{"directory.ldap.urls.0", "clear text"}},
		{"several errors at once", strings.Replace(goodLDAP, "ldap.secret", "missing.secret", 1) + "  refresh: 60x\n  bogus: 1\ntelemetry: {listen: 192.0.2.1:9540, log_format: xml}\n",
			[]string{"bind_password_file", "bad duration", "directory.bogus: unknown key", "telemetry.listen", "telemetry.log_format"}},
		{"no domains", strings.Replace(goodLDAP, "domains: [corp.example.test]", "domains: []", 1), []string{"domains: list at least one"}},
		{"alias to unknown domain", goodLDAP + "domain_aliases: {alias.test: nowhere.test}\n", []string{"domain_aliases.alias.test", "not listed in domains"}},
		{"bad filter", goodLDAP + "    user_filter: \"(&(objectClass=user)\"\n", []string{"directory.ldap.user_filter", "not an LDAP filter"}},
		{"not YAML", "domains: [\n", []string{"line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"-c", writeConfig(t, tt.body), "check-config"}, &out, &errb)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d\n%s", code, exitConfig, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("errors do not mention %q:\n%s", w, errb.String())
				}
			}
			if strings.Contains(out.String()+errb.String(), secret) {
				t.Fatal("the password appeared in the output")
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "postern ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := run([]string{"no-such-command"}, &out, &errb); code != exitConfig {
		t.Errorf("unknown command: exit %d, want %d", code, exitConfig)
	}
	if code := run([]string{"-c", "/nonexistent/postern.yaml", "lookup", "a@b.test"}, &out, &errb); code != exitConfig {
		t.Errorf("missing configuration: exit %d, want %d", code, exitConfig)
	}
}

func TestLookupStaticExample(t *testing.T) {
	var out, errb bytes.Buffer
	// The example's state_dir may not exist here; lookups need no state.
	code := run([]string{"-c", "../../examples/postern.yaml", "lookup", "c.clark@corp.example.test"}, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), "canonical: carol@corp.example.test") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := run([]string{"-c", "../../examples/postern.yaml", "lookup", "nobody@corp.example.test"}, &out, &errb); code != exitNotFound {
		t.Fatalf("unknown address: exit %d, want %d", code, exitNotFound)
	}
}

// A daemon run by its own unit whose section is not configured exits 2 (its unit's
// RestartPreventExitStatus) and names the setting, instead of serving unvalidated.
func TestUnconfiguredDaemonRefusesToRun(t *testing.T) {
	cfg := writeConfig(t, goodLDAP)
	for _, d := range daemons {
		var out, errb bytes.Buffer
		code := run([]string{"-c", cfg, d.name}, &out, &errb)
		if code != exitConfig || !strings.Contains(errb.String(), d.setting) {
			t.Errorf("postern %s unconfigured: exit %d, stderr %q; want exit %d naming %s", d.name, code, errb.String(), exitConfig, d.setting)
		}
	}
}
