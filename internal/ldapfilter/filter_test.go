package ldapfilter

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestParse(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"(objectClass=user)", true},
		{"(&(objectCategory=person)(objectClass=user))", true},
		{"(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", true},
		{`(cn=Smith \28Sales\29)`, true},
		{"(&(objectClass=user)", false}, // unbalanced
		{"objectClass=user", false},     // no parentheses
		{"(cn=Smith (Sales))", false},   // unescaped parentheses
		{"", false},
	}
	for _, tt := range tests {
		f, err := Parse(tt.filter)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q) = %q, %v; want ok %v", tt.filter, f, err, tt.ok)
		}
		if err == nil && f.String() != tt.filter {
			t.Errorf("Parse(%q) changed the filter to %q", tt.filter, f)
		}
	}
}

// FuzzParse checks that any text is either refused or accepted as a filter the LDAP
// library compiles, and that an accepted filter means the same after a round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"(objectClass=user)", "(&(a=1)(!(b=*)))", `(cn=a\2a)`, "(", ")(|(cn=*", "(cn=ü)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Parse(s)
		if err != nil {
			return
		}
		pkt, err := ldap.CompileFilter(flt.String())
		if err != nil {
			t.Fatalf("Parse accepted %q, which does not compile: %v", s, err)
		}
		again, err := ldap.DecompileFilter(pkt)
		if err != nil {
			t.Fatalf("accepted %q does not decompile: %v", s, err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted %q came back as %q, which is refused: %v", s, again, err)
		}
	})
}
