package directory

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestStartTLSAgainstSamba syncs through postern's own StartTLS path: a plain ldap://
// URL with start_tls, ca_file and server_name, and allow_plaintext off, as an operator
// configures a DC whose LDAPS port is closed. The cases after the first are the mistakes
// an operator makes; each must fail the sync with an error that names the key to fix.
// (ldap:// without start_tls or allow_plaintext is refused by the configuration:
// TestCheckConfigBroken in cmd/postern.)
func TestStartTLSAgainstSamba(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	startTLS := func(caFile, serverName string) string {
		y := "    start_tls: true\n    ca_file: " + caFile + "\n"
		if serverName != "" {
			y += "    server_name: " + serverName + "\n"
		}
		return y
	}
	tests := []struct {
		name     string
		ldapYAML string
		want     []string // in the sync's error; none: the sync succeeds
	}{
		{"the DC's CA and name", startTLS(s.CAFile, s.ServerName), nil},
		{"wrong server_name", startTLS(s.CAFile, "dc9.corp.example.test"),
			[]string{"StartTLS with " + s.URL, "dc9.corp.example.test", "directory.ldap.server_name"}},
		{"no server_name: the URL's IP address is not in the certificate", startTLS(s.CAFile, ""),
			[]string{"StartTLS with " + s.URL, "directory.ldap.server_name"}},
		{"a CA that did not sign the DC's certificate", startTLS(foreignCA(t), s.ServerName),
			[]string{"StartTLS with " + s.URL, "directory.ldap.ca_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := sambaDirectory(t, s, time.Hour, tt.ldapYAML, "allow_plaintext: true", "allow_plaintext: false")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := d.Sync(ctx)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("sync over StartTLS: %v", err)
				}
				if res := resolve(t, r, "alice@corp.example.test"); res.Kind != KindMailbox || !slices.Contains(res.Groups, "AllStaff") {
					t.Fatalf("alice over StartTLS: %+v", res)
				}
				return
			}
			if err == nil {
				t.Fatal("the sync succeeded; the DC's certificate should have been refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), s.Password) {
				t.Errorf("the error shows the bind password: %v", err)
			}
			if _, err := r.Resolve("alice@corp.example.test"); !IsTemporary(err) {
				t.Errorf("a lookup with no snapshot: %v, want a temporary failure", err)
			}
		})
	}
}

// foreignCA is the certificate of a new CA that signed nothing of Samba's.
func foreignCA(t *testing.T) string {
	t.Helper()
	f, err := testbench.WriteTLS(t.TempDir(), "some other CA", "other.example.test")
	if err != nil {
		t.Fatal(err)
	}
	return f.CAFile
}

// TestAttributeNamesOverridable reads the same Samba twice: with AD's attribute names,
// and with directory.ldap.attributes mapping mail, login and group_name to other
// attributes, as for a directory that keeps them elsewhere. Hank has a different address
// in mail and in otherMailbox and a different login in sAMAccountName and uid, and the
// All Staff group he is in through Interns has sAMAccountName AllStaff, so each answer
// shows which attribute was read.
func TestAttributeNamesOverridable(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s)+`
		dn: CN=Hank Hill,OU=Staff,`+s.BaseDN+`
		objectClass: user
		sAMAccountName: hank
		uid: hhill
		mail: hank.default@corp.example.test
		otherMailbox: hank@corp.example.test
		userAccountControl: 544

		dn: CN=Interns,OU=Staff,`+s.BaseDN+`
		changetype: modify
		add: member
		member: CN=Hank Hill,OU=Staff,`+s.BaseDN+`
		-
	`)
	const mapped = "    attributes:\n      mail: otherMailbox\n      login: uid\n      group_name: cn\n"
	tests := []struct {
		name, ldapYAML   string
		mailbox, unknown string // hank's address, and the one read by the other configuration
		login, notLogin  string
		group, notGroup  string // the name of All Staff (CN) in hank's groups (through Interns)
	}{
		{"AD's names", "", "hank.default@corp.example.test", "hank@corp.example.test", "hank", "hhill", "AllStaff", "All Staff"},
		{"mapped names", mapped, "hank@corp.example.test", "hank.default@corp.example.test", "hhill", "hank", "All Staff", "AllStaff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r := sambaDirectory(t, s, time.Hour, tt.ldapYAML)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if res := resolve(t, r, tt.mailbox); res.Kind != KindMailbox || res.Canonical != tt.mailbox || res.Login != tt.login ||
				!slices.Contains(res.Groups, tt.group) || slices.Contains(res.Groups, tt.notGroup) {
				t.Errorf("%s: %+v, want a mailbox with login %s in group %s", tt.mailbox, res, tt.login, tt.group)
			}
			if res := resolve(t, r, tt.unknown); res.Kind != KindUnknown {
				t.Errorf("%s: %+v, want unknown (read from the attribute not configured)", tt.unknown, res)
			}
			if u, err := r.User(tt.login); u == nil || u.Primary != tt.mailbox {
				t.Errorf("login %s: %+v, %v; want hank", tt.login, u, err)
			}
			if u, err := r.User(tt.notLogin); u != nil || err != nil {
				t.Errorf("login %s: %+v, %v; want none", tt.notLogin, u, err)
			}
		})
	}
}
