package tcptable

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// The static directory the resolver's own tests use: alice (secondary addresses, an IDN
// one), bob, carol, dave (disabled), frank (forwards outside), nomail (no address), twin1
// and twin2 (both claim shared@), the partner contact, lists with nesting, a cycle, a
// disabled member and a contact member, and deep@ three levels down.
const testDirectory = "../internal/directory/testdata/directory.yaml"

func testPolicy() directory.Policy {
	return directory.Policy{
		Domains:      map[string]bool{"corp.example.test": true, "other.example.test": true, "xn--bcher-kva.example.test": true},
		Aliases:      map[string]string{"alias.example.test": "corp.example.test"},
		Delimiters:   "+",
		MaxDepth:     16,
		MaxExpansion: 5000,
	}
}

func testTables(t *testing.T, p directory.Policy, c config.Tcptable) *tables {
	t.Helper()
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: testDirectory}, Refresh: time.Minute, MaxStale: time.Hour})
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return newTables(directory.NewResolver(d, p), c)
}

func defaultTcptable() config.Tcptable {
	return config.Tcptable{Shadow: config.TcptableShadow{Address: "shadow@{domain}"}, IdleTimeout: config.Duration(time.Minute)}
}

// short renders an answer the way an operator reads postmap's output: the value, "-" for
// not found, TEMP or PERM.
func short(a Answer) string {
	switch a.Status {
	case Found:
		return a.Value
	case NotFound:
		return "-"
	case Temporary:
		return "TEMP"
	default:
		return "PERM"
	}
}

// mapCase is one key and what each map answers for it; a map left out answers not found.
type mapCase struct {
	name, key string
	want      map[string]string
}

const (
	alice = "alice@corp.example.test"
	bob   = "bob@corp.example.test"
	carol = "carol@corp.example.test"
	erin  = "erin@corp.example.test"
	frank = "frank@corp.example.test"
	corp  = "corp.example.test"
	sh    = "shadow@corp.example.test"
)

// mailbox is what every address map answers for an address of an enabled user whose
// aliases-map answer is alias ("-" for the canonical mailbox address itself).
func mailbox(canonical, alias, login string) map[string]string {
	return map[string]string{"mailboxes": canonical, "aliases": alias, "senders": login, "recipients": canonical, "shadow": sh}
}

func secondary(canonical, target, login string) map[string]string {
	return map[string]string{"aliases": target, "senders": login, "recipients": canonical, "shadow": sh}
}

func list(canonical, members string) map[string]string {
	return map[string]string{"aliases": members, "recipients": canonical, "shadow": sh}
}

var allTemp = map[string]string{"mailboxes": "TEMP", "aliases": "TEMP", "senders": "TEMP", "recipients": "TEMP", "shadow": "TEMP"}

var mapCases = []mapCase{
	{"mailbox", alice, mailbox(alice, "-", "alice")},
	{"mailbox upper case is rewritten to the canonical form", "ALICE@Corp.Example.TEST", mailbox(alice, alice, "alice")},
	{"mailbox with +extension, canonical", "alice+News@corp.example.test", mailbox(alice, "-", "alice")},
	{"mailbox with +extension, upper case", "Alice+News@CORP.EXAMPLE.TEST", mailbox(alice, "alice+News@corp.example.test", "alice")},
	{"mailbox with a trailing dot", "bob@corp.example.test.", mailbox(bob, bob, "bob")},
	{"secondary proxyAddress", "a.anderson@corp.example.test", secondary(alice, alice, "alice")},
	{"secondary address keeps the extension", "A.Anderson+x@corp.example.test", secondary(alice, "alice+x@corp.example.test", "alice")},
	{"alias domain", "alice@alias.example.test", secondary(alice, alice, "alice")},
	{"secondary address in another primary domain", "c.clark@other.example.test", secondary(carol, carol, "carol")},
	{"IDN U-label", "anna@bücher.example.test", secondary(alice, alice, "alice")},
	{"IDN A-label", "anna@xn--bcher-kva.example.test", secondary(alice, alice, "alice")},
	{"nested list", "all@corp.example.test", list("all@corp.example.test", alice+","+bob+","+carol+","+erin)},
	{"list skips the disabled member, carries the extension", "sales+q3@corp.example.test",
		list("sales@corp.example.test", "bob+q3@corp.example.test,erin+q3@corp.example.test")},
	{"list with a contact", "partners@corp.example.test", list("partners@corp.example.test", "bob@partner.example,"+erin)},
	{"group cycle", "cycle-a@corp.example.test", list("cycle-a@corp.example.test", alice+","+bob)},
	{"three levels deep", "deep@corp.example.test", list("deep@corp.example.test", erin)},
	{"contact", "partner@corp.example.test", map[string]string{"aliases": "bob@partner.example", "recipients": "bob@partner.example"}},
	{"forwarding user", frank, map[string]string{"mailboxes": frank, "aliases": "frank@home.example", "senders": "frank", "recipients": frank, "shadow": sh}},
	{"disabled user", "dave@corp.example.test", nil},
	{"unknown user", "nobody@corp.example.test", nil},
	{"unknown domain", "alice@elsewhere.example", nil},
	{"look-alike domain", "alice@corp.example.test.evil.example", nil},
	{"IDN look-alike", "alice@corp.exаmple.test", nil},
	{"percent route", "x%evil.example@corp.example.test", nil},
	{"bang route", "evil.example!x@corp.example.test", nil},
	{"quoted local part", `"alice"@corp.example.test`, nil},
	{"two at signs", "alice@evil.example@corp.example.test", nil},
	{"control character", "ali\x01ce@corp.example.test", nil},
	{"empty key", "", nil},
	{"catch-all form", "@corp.example.test", nil},
	{"ambiguous address is temporary", "shared@corp.example.test", allTemp},
	{"primary domain", corp, map[string]string{"domains": corp}},
	{"primary domain, upper case and trailing dot", "Corp.Example.TEST.", map[string]string{"domains": corp}},
	{"IDN primary domain", "bücher.example.test", map[string]string{"domains": "xn--bcher-kva.example.test"}},
	{"alias domain is not a primary domain", "alias.example.test", map[string]string{"alias_domains": corp}},
	{"parent-domain probe", ".example.test", nil},
	{"unknown domain alone", "elsewhere.example", nil},
}

func TestMaps(t *testing.T) {
	tb := testTables(t, testPolicy(), defaultTcptable())
	for _, tt := range mapCases {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range config.TcptableMaps {
				want := tt.want[m]
				if want == "" {
					want = "-"
				}
				if got := short(tb.lookup(m, tt.key)); got != want {
					t.Errorf("%s %q = %q, want %q", m, tt.key, got, want)
				}
			}
		})
	}
}

func TestLookupsServeTheConfiguredMaps(t *testing.T) {
	var names []string
	for n := range lookups {
		names = append(names, n)
	}
	if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(config.TcptableMaps))) {
		t.Fatalf("tcptable serves %v, the configuration knows %v", names, config.TcptableMaps)
	}
}

func TestUnknownMapIsPermanent(t *testing.T) {
	a := testTables(t, testPolicy(), defaultTcptable()).lookup("virtual", alice)
	if a.Status != Permanent || a.Detail == "" {
		t.Fatalf("unknown map: %+v, want PERM with a reason for the log", a)
	}
}

func TestGroupSendAs(t *testing.T) {
	c := defaultTcptable()
	c.Senders.GroupSendAs = true
	tb := testTables(t, testPolicy(), c)
	tests := []struct{ key, want string }{
		{"all@corp.example.test", "alice,bob,carol,erin,nomail"}, // nomail can log in, it just has no mailbox
		{"sales@corp.example.test", "bob,erin,nomail"},           // dave is disabled
		{"partners@corp.example.test", "erin"},                   // the contact has no login
		{"cycle-b@corp.example.test", "alice,bob"},
		{"deep@corp.example.test", "erin"},
		{alice, "alice"}, // a mailbox is still its owner's
	}
	for _, tt := range tests {
		if got := short(tb.lookup("senders", tt.key)); got != tt.want {
			t.Errorf("senders %q = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestGroupLimitsAreTemporary(t *testing.T) {
	c := defaultTcptable()
	c.Senders.GroupSendAs = true
	p := testPolicy()
	p.MaxDepth = 2
	tb := testTables(t, p, c)
	for _, m := range []string{"aliases", "senders", "recipients"} {
		if a := tb.lookup(m, "deep@corp.example.test"); a.Status != Temporary {
			t.Errorf("%s of a list nested deeper than max_depth: %+v, want TEMP (never a shorter list)", m, a)
		}
	}
	p = testPolicy()
	p.MaxExpansion = 3
	tb = testTables(t, p, c)
	if a := tb.lookup("aliases", "all@corp.example.test"); a.Status != Temporary || a.Reason != "group expansion limit exceeded" {
		t.Errorf("list over max_expansion: %+v, want TEMP", a)
	}
}

func TestFixedShadowAddress(t *testing.T) {
	c := defaultTcptable()
	c.Shadow.Address = "archive@other.example.test"
	tb := testTables(t, testPolicy(), c)
	for _, key := range []string{alice, "c.clark@other.example.test", "all@corp.example.test"} {
		if got := short(tb.lookup("shadow", key)); got != "archive@other.example.test" {
			t.Errorf("shadow %q = %q, want the fixed address", key, got)
		}
	}
}

func TestDirectoryUnavailable(t *testing.T) {
	now := time.Now()
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: testDirectory}, Refresh: time.Minute,
		MaxStale: time.Hour, Now: func() time.Time { return now }})
	tb := newTables(directory.NewResolver(d, testPolicy()), defaultTcptable())
	check := func(when string) {
		t.Helper()
		for _, m := range []string{"mailboxes", "aliases", "senders", "recipients", "shadow"} {
			if a := tb.lookup(m, alice); a.Status != Temporary || a.Reason != "directory unavailable" {
				t.Errorf("%s: %s answered %+v, want TEMP directory unavailable", when, m, a)
			}
		}
		// The accepted domains come from the configuration: mail is deferred by the
		// mailbox lookup, not refused for its domain.
		if got := short(tb.lookup("domains", corp)); got != corp {
			t.Errorf("%s: domains = %q, want %q", when, got, corp)
		}
	}
	check("before the first sync")
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := short(tb.lookup("mailboxes", alice)); got != alice {
		t.Fatalf("after the sync: %q", got)
	}
	now = now.Add(2 * time.Hour)
	check("snapshot older than max_stale")
}
