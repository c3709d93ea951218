package address

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, delims string
		want             Address
		err              bool
	}{
		{"plain", "alice@corp.example.test", "+", Address{Local: "alice", Domain: "corp.example.test"}, false},
		{"upper case", "Alice@CORP.Example.Test", "+", Address{Local: "alice", Domain: "corp.example.test"}, false},
		{"extension keeps its case", "Alice+News@corp.example.test", "+", Address{Local: "alice", Extension: "+News", Domain: "corp.example.test"}, false},
		{"delimiter set", "alice-news@corp.example.test", "+-", Address{Local: "alice", Extension: "-news", Domain: "corp.example.test"}, false},
		{"first delimiter wins", "a+b-c@x.test", "-+", Address{Local: "a", Extension: "+b-c", Domain: "x.test"}, false},
		{"leading delimiter not split", "+alice@x.test", "+", Address{Local: "+alice", Domain: "x.test"}, false},
		{"no delimiters", "a+b@x.test", "", Address{Local: "a+b", Domain: "x.test"}, false},
		{"postmaster kept", "postmaster@x.test", "-", Address{Local: "postmaster", Domain: "x.test"}, false},
		{"owner- kept", "owner-list@x.test", "-", Address{Local: "owner-list", Domain: "x.test"}, false},
		{"-request kept", "list-request@x.test", "-", Address{Local: "list-request", Domain: "x.test"}, false},
		{"trailing dot", "alice@corp.example.test.", "+", Address{Local: "alice", Domain: "corp.example.test"}, false},
		{"angle brackets", "<alice@x.test>", "+", Address{Local: "alice", Domain: "x.test"}, false},
		{"IDN U-label", "anna@Bücher.example", "+", Address{Local: "anna", Domain: "xn--bcher-kva.example"}, false},
		{"IDN A-label", "anna@XN--BCHER-KVA.example", "+", Address{Local: "anna", Domain: "xn--bcher-kva.example"}, false},
		{"quoted local", `"a b"@corp.example.test`, "+", Address{Local: `"a b"`, Domain: "corp.example.test", Routed: true}, false},
		{"percent route", "x%evil.example@corp.example.test", "+", Address{Local: "x%evil.example", Domain: "corp.example.test", Routed: true}, false},
		{"bang route", "evil.example!x@corp.example.test", "+", Address{Local: "evil.example!x", Domain: "corp.example.test", Routed: true}, false},
		{"two at signs", "x@evil.example@corp.example.test", "+", Address{Local: "x@evil.example", Domain: "corp.example.test", Routed: true}, false},
		{"address literal", "x@[192.0.2.1]", "+", Address{Local: "x", Domain: "[192.0.2.1]", Routed: true}, false},
		{"empty", "", "+", Address{}, true},
		{"no domain", "alice@", "+", Address{}, true},
		{"no local", "@x.test", "+", Address{}, true},
		{"no at", "alice", "+", Address{}, true},
		{"control char", "ali\x01ce@x.test", "+", Address{}, true},
		{"space", "ali ce@x.test", "+", Address{}, true},
		{"bad domain", "a@-x-.test", "+", Address{}, true},
		{"empty label", "a@x..test", "+", Address{}, true},
		{"two trailing dots", "a@x.test..", "+", Address{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, tt.delims)
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrMalformed", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestWithExtension(t *testing.T) {
	if got := WithExtension("alice@x.test", "+News"); got != "alice+News@x.test" {
		t.Fatal(got)
	}
	if got := WithExtension("alice@x.test", ""); got != "alice@x.test" {
		t.Fatal(got)
	}
}

// FuzzParse checks that Parse never panics and that a parsed address is stable: its
// string form parses to the same address.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice@corp.example.test", "Alice+News@CORP.example.test.", `"a b"@x`, "a%b@c", "b!a@c", "a@b@c", "anna@bücher.example", "x@[1.2.3.4]", ""} {
		f.Add(s, "+")
	}
	f.Fuzz(func(t *testing.T, s, delims string) {
		a, err := Parse(s, delims)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): error %v is not ErrMalformed", s, err)
			}
			return
		}
		if a.Routed {
			return
		}
		b, err := Parse(a.String(), delims)
		if err != nil || b != a {
			t.Fatalf("Parse(%q) = %+v, but its string %q parses to %+v, %v", s, a, a.String(), b, err)
		}
	})
}
