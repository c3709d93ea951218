package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/postern-mail/postern/internal/testbench"
)

// corpBench starts Samba seeded with the test company and writes a configuration for it.
func corpBench(t *testing.T, extra string) (*testbench.Samba, string) {
	t.Helper()
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.yaml")
	if err := os.WriteFile(cfg, []byte(testbench.CorpConfig(s, filepath.Join(dir, "state"), extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	return s, cfg
}

type lookupJSON struct {
	Query     string   `json:"query"`
	Kind      string   `json:"kind"`
	Canonical string   `json:"canonical"`
	Targets   []string `json:"targets"`
	Login     string   `json:"login"`
	Groups    []string `json:"groups"`
	Internal  bool     `json:"internal"`
}

func runLookup(t *testing.T, cfg, addr string) (int, lookupJSON, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run([]string{"-c", cfg, "lookup", "--json", addr}, &out, &errb)
	var res lookupJSON
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("lookup %s printed no JSON: %v\n%s", addr, err, out.String())
		}
	}
	return code, res, errb.String()
}

func TestLookupAgainstSamba(t *testing.T) {
	_, cfg := corpBench(t, "")
	all := []string{"alice@corp.example.test", "bob@corp.example.test", "carol@corp.example.test", "erin@corp.example.test"}
	tests := []struct {
		name, query string
		code        int
		want        lookupJSON
	}{
		{"mailbox", "alice@corp.example.test", 0, lookupJSON{Kind: "mailbox", Canonical: "alice@corp.example.test", Targets: []string{"alice@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"upper case", "ALICE@CORP.EXAMPLE.TEST", 0, lookupJSON{Kind: "mailbox", Canonical: "alice@corp.example.test", Targets: []string{"alice@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"plus extension", "Alice+News@corp.example.test", 0, lookupJSON{Kind: "mailbox", Canonical: "alice@corp.example.test", Targets: []string{"alice+News@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"secondary proxyAddress", "a.anderson@corp.example.test", 0, lookupJSON{Kind: "alias", Canonical: "alice@corp.example.test", Targets: []string{"alice@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"alias domain", "carol@alias.example.test", 0, lookupJSON{Kind: "alias", Canonical: "carol@corp.example.test", Targets: []string{"carol@corp.example.test"}, Login: "carol", Groups: []string{"AllStaff", "Interns"}, Internal: true}},
		{"second domain", "erin@other.example.test", 0, lookupJSON{Kind: "alias", Canonical: "erin@corp.example.test", Targets: []string{"erin@corp.example.test"}, Login: "erin", Groups: []string{"AllStaff", "Partners", "Sales"}, Internal: true}},
		{"IDN U-label", "anna@bücher.example.test", 0, lookupJSON{Kind: "alias", Canonical: "alice@corp.example.test", Targets: []string{"alice@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"IDN A-label", "anna@xn--bcher-kva.example.test", 0, lookupJSON{Kind: "alias", Canonical: "alice@corp.example.test", Targets: []string{"alice@corp.example.test"}, Login: "alice", Groups: []string{"AllStaff", "CycleA", "CycleB"}, Internal: true}},
		{"trailing dot", "bob@corp.example.test.", 0, lookupJSON{Kind: "mailbox", Canonical: "bob@corp.example.test", Targets: []string{"bob@corp.example.test"}, Login: "bob", Groups: []string{"AllStaff", "CycleA", "CycleB", "Sales"}, Internal: true}},
		{"nested list", "all@corp.example.test", 0, lookupJSON{Kind: "list", Canonical: "all@corp.example.test", Targets: all, Internal: true}},
		{"list skips disabled member", "sales@corp.example.test", 0, lookupJSON{Kind: "list", Canonical: "sales@corp.example.test", Targets: []string{"bob@corp.example.test", "erin@corp.example.test"}, Internal: true}},
		{"list with a contact", "partners@corp.example.test", 0, lookupJSON{Kind: "list", Canonical: "partners@corp.example.test", Targets: []string{"bob@partner.example", "erin@corp.example.test"}, Internal: false}},
		{"group cycle", "cycle-a@corp.example.test", 0, lookupJSON{Kind: "list", Canonical: "cycle-a@corp.example.test", Targets: []string{"alice@corp.example.test", "bob@corp.example.test"}, Internal: true}},
		{"contact", "partner@corp.example.test", 0, lookupJSON{Kind: "contact", Canonical: "bob@partner.example", Targets: []string{"bob@partner.example"}, Internal: false}},
		{"disabled user", "dave@corp.example.test", 1, lookupJSON{Kind: "unknown", Canonical: "dave@corp.example.test", Targets: []string{}}},
		{"unknown user", "nobody@corp.example.test", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"unknown domain", "alice@elsewhere.example", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"look-alike domain", "alice@corp.example.test.evil.example", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"IDN look-alike", "alice@corp.exаmple.test", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"percent route", "x%evil.example@corp.example.test", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"bang route", "evil.example!x@corp.example.test", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"quoted local part", `"alice"@corp.example.test`, 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
		{"two at signs", "alice@evil.example@corp.example.test", 1, lookupJSON{Kind: "unknown", Targets: []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got, stderr := runLookup(t, cfg, tt.query)
			tt.want.Query = tt.query
			if code != tt.code || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("lookup %q: exit %d\n got %+v\nwant %+v (exit %d)\nstderr: %s", tt.query, code, got, tt.want, tt.code, stderr)
			}
		})
	}
	if code, _, _ := runLookup(t, cfg, "not an address"); code != exitNotFound {
		t.Errorf("a malformed address: exit %d, want %d", code, exitNotFound)
	}
}

func TestLookupBeforeFirstSyncIsTemporary(t *testing.T) {
	s, cfg := corpBench(t, "")
	s.Stop()
	code, _, stderr := runLookup(t, cfg, "alice@corp.example.test")
	if code != exitTempFail {
		t.Fatalf("Samba down, no snapshot: exit %d, want %d (never 'not found')\n%s", code, exitTempFail, stderr)
	}
	if !strings.Contains(stderr, "temporary failure") || !strings.Contains(stderr, "127.0.0.1:389") {
		t.Errorf("the error does not tell the operator what failed:\n%s", stderr)
	}
}

func TestLDAPSVerification(t *testing.T) {
	s, _ := corpBench(t, "")
	other := testbench.Dir(t)
	wrongCA := filepath.Join(other, "wrong-ca.pem")
	// Any valid certificate that did not sign Samba's: the system's first CA will do.
	pems, _ := filepath.Glob("/etc/ssl/certs/*.pem")
	if len(pems) == 0 {
		t.Fatal("no CA certificates in /etc/ssl/certs (install ca-certificates)")
	}
	b, _ := os.ReadFile(pems[0])
	os.WriteFile(wrongCA, b, 0o644)

	tests := []struct {
		name, ca, serverName string
		code                 int
		hint                 string
	}{
		{"right CA and name", s.CAFile, s.ServerName, exitOK, ""},
		{"wrong CA", wrongCA, s.ServerName, exitTempFail, "not signed by directory.ldap.ca_file"},
		{"wrong server name", s.CAFile, "dc9.corp.example.test", exitTempFail, "server_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "postern.yaml")
			yaml := strings.Replace(testbench.CorpConfig(s, dir, ""), "urls: ["+s.URL+"]",
				"urls: ["+s.LDAPSURL+"]\n    ca_file: "+tt.ca+"\n    server_name: "+tt.serverName, 1)
			yaml = strings.Replace(yaml, "allow_plaintext: true", "allow_plaintext: false", 1)
			os.WriteFile(cfg, []byte(yaml), 0o600)
			code, _, stderr := runLookup(t, cfg, "alice@corp.example.test")
			if code != tt.code || !strings.Contains(stderr, tt.hint) {
				t.Fatalf("exit %d, want %d; stderr should mention %q:\n%s", code, tt.code, tt.hint, stderr)
			}
		})
	}
}
