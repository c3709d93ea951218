package ldapfilter

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestBuild(t *testing.T) {
	tests := []struct {
		name string
		got  Filter
		want string
	}{
		{"eq escapes syntax", Eq("cn", "Smith (Sales)*"), `(cn=Smith \28Sales\29\2a)`},
		{"eq escapes backslash and NUL", Eq("cn", "a\\b\x00"), `(cn=a\5cb\00)`},
		{"in chain", InChain("memberOf", "CN=Interns,OU=Staff,DC=corp"), `(memberOf:1.2.840.113556.1.4.1941:=CN=Interns,OU=Staff,DC=corp)`},
		{"bit set", BitSet("userAccountControl", 2), `(userAccountControl:1.2.840.113556.1.4.803:=2)`},
		{"and", And(Eq("a", "1"), Not(Present("b"))), `(&(a=1)(!(b=*)))`},
		{"single or", Or(Eq("a", "1")), `(a=1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got %s, want %s", tt.got, tt.want)
			}
			if _, err := ldap.CompileFilter(string(tt.got)); err != nil {
				t.Fatalf("%s does not compile: %v", tt.got, err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	if _, err := Parse("(&(objectClass=user)"); err == nil {
		t.Fatal("an unbalanced filter was accepted")
	}
	if f, err := Parse("(objectClass=user)"); err != nil || f != "(objectClass=user)" {
		t.Fatal(f, err)
	}
}

// FuzzEq checks that any value yields a filter that compiles and, decompiled, matches
// exactly that value: no value can change the filter's structure.
func FuzzEq(f *testing.F) {
	for _, s := range []string{"plain", "a*b", "(x)", `back\slash`, "\x00", "ü", ")(|(cn=*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		flt := And(Eq("cn", v), Present("mail"))
		pkt, err := ldap.CompileFilter(string(flt))
		if err != nil {
			t.Fatalf("value %q gave a filter that does not compile: %s: %v", v, flt, err)
		}
		if len(pkt.Children) != 2 {
			t.Fatalf("value %q changed the filter's structure: %s", v, flt)
		}
		eq := pkt.Children[0]
		if eq.Tag != ldap.FilterEqualityMatch || len(eq.Children) != 2 || eq.Children[1].Data.String() != v {
			t.Fatalf("value %q did not survive: %s", v, flt)
		}
	})
}
