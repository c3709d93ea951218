package directory

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/postern-mail/postern/internal/config"
)

func itoa(n int) string           { return strconv.Itoa(n) }
func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestLDAPObjectMapping(t *testing.T) {
	src, err := NewLDAPSource(config.Defaults().Directory.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		kind  Kind
		attrs map[string][]string
		want  Object
	}{
		{"AD user", User, map[string][]string{
			"sAMAccountName": {"carol"}, "userPrincipalName": {"carol@corp.example.test"}, "mail": {"carol@corp.example.test"},
			"proxyAddresses":     {"smtp:c.clark@corp.example.test", "SMTP:Carol@Corp.Example.Test", "X500:/o=Corp/cn=carol", "sip:carol@corp.example.test"},
			"userAccountControl": {"514"}, "whenCreated": {"20261122041046.0Z"}, "title": {"Intern"},
			"altRecipient": {"CN=Home,OU=Staff,DC=corp"}, "memberOf": {"CN=Interns,OU=Staff,DC=corp"},
		}, Object{DN: "x", Kind: User, Login: "carol", UPN: "carol@corp.example.test", Primary: "Carol@Corp.Example.Test",
			Addresses: []string{"c.clark@corp.example.test", "carol@corp.example.test"}, Disabled: true, Forward: "CN=Home,OU=Staff,DC=corp",
			MemberOf: []string{"CN=Interns,OU=Staff,DC=corp"}, Created: time.Date(2026, 11, 22, 4, 10, 46, 0, time.UTC), Attrs: map[string]string{"title": "Intern"}}},
		{"plain LDAP user: mail only, untyped aliases", User, map[string][]string{
			"sAMAccountName": {"bob"}, "mail": {"bob@corp.example.test"}, "proxyAddresses": {"robert@corp.example.test"},
		}, Object{DN: "x", Kind: User, Login: "bob", Primary: "bob@corp.example.test", Addresses: []string{"robert@corp.example.test"}, Attrs: map[string]string{}}},
		{"group", Group, map[string][]string{
			"sAMAccountName": {"Sales"}, "mail": {"sales@corp.example.test"}, "member": {"CN=A,DC=corp", "CN=B,DC=corp"},
		}, Object{DN: "x", Kind: Group, Name: "Sales", Primary: "sales@corp.example.test", Members: []string{"CN=A,DC=corp", "CN=B,DC=corp"}}},
		{"contact with targetAddress", Contact, map[string][]string{
			"cn": {"Partner"}, "mail": {"bob@partner.example"}, "targetAddress": {"SMTP:bob@partner.example"},
			"proxyAddresses": {"SMTP:bob@partner.example", "smtp:partner@corp.example.test"},
		}, Object{DN: "x", Kind: Contact, Name: "Partner", Target: "bob@partner.example",
			Addresses: []string{"partner@corp.example.test", "bob@partner.example", "bob@partner.example"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := src.object(tt.kind, ldap.NewEntry("x", tt.attrs))
			if tt.name == "AD user" { // the snapshot normalises; compare what it indexes
				NewSnapshot([]*Object{got}, time.Now(), "t")
				tt.want.Primary = "carol@corp.example.test"
			}
			if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", tt.want) { // nil and empty lists alike
				t.Fatalf("\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// TestTLSHint names the key to fix whether the x509 error arrives typed (LDAPS) or only as
// text, as go-ldap's StartTLS passes it on.
func TestTLSHint(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"dc1.corp.example.test"}}
	tests := []struct {
		err  error
		want string
	}{
		{x509.UnknownAuthorityError{Cert: cert}, "directory.ldap.ca_file"},
		{x509.HostnameError{Certificate: cert, Host: "dc9.corp.example.test"}, "directory.ldap.server_name"},
		{x509.HostnameError{Certificate: cert, Host: "127.0.0.1"}, "directory.ldap.server_name"},
		{x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}, "invalid or expired"},
		{errors.New("connection refused"), ""},
	}
	for _, tt := range tests {
		for _, err := range []error{fmt.Errorf("ldaps: %w", tt.err), fmt.Errorf("TLS handshake failed (%v)", tt.err)} {
			if got := tlsHint(err); !strings.Contains(got, tt.want) || (tt.want == "") != (got == "") {
				t.Errorf("tlsHint(%v) = %q, want it to name %q", err, got, tt.want)
			}
		}
	}
}
