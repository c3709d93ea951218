package directory

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/address"
)

func testPolicy() Policy {
	return Policy{
		Domains:      map[string]bool{"corp.example.test": true, "other.example.test": true, "xn--bcher-kva.example.test": true},
		Aliases:      map[string]string{"alias.example.test": "corp.example.test"},
		Delimiters:   "+-",
		MaxDepth:     16,
		MaxExpansion: 100,
	}
}

func testResolver(t *testing.T, p Policy) *Resolver {
	t.Helper()
	d := New(Options{Source: StaticSource{Path: "testdata/directory.yaml"}, Refresh: time.Minute, MaxStale: time.Hour})
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return NewResolver(d, p)
}

func TestResolve(t *testing.T) {
	r := testResolver(t, testPolicy())
	tests := []struct {
		name, query string
		kind        string
		canonical   string
		targets     []string
		internal    bool
		groups      []string
	}{
		{"mailbox", "alice@corp.example.test", KindMailbox, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, []string{"AllStaff", "CycleA", "CycleB"}},
		{"upper case", "ALICE@Corp.Example.TEST", KindMailbox, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, nil},
		{"extension carried", "Alice+News@corp.example.test", KindMailbox, "alice@corp.example.test", []string{"alice+News@corp.example.test"}, true, nil},
		{"second delimiter", "alice-news@corp.example.test", KindMailbox, "alice@corp.example.test", []string{"alice-news@corp.example.test"}, true, nil},
		{"secondary address", "a.anderson@corp.example.test", KindAlias, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, nil},
		{"alias domain", "alice@alias.example.test", KindAlias, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, nil},
		{"alias in other domain", "c.clark@other.example.test", KindAlias, "carol@corp.example.test", []string{"carol@corp.example.test"}, true, []string{"AllStaff", "Interns"}},
		{"trailing dot", "bob@corp.example.test.", KindMailbox, "bob@corp.example.test", []string{"bob@corp.example.test"}, true, nil},
		{"IDN U-label", "anna@bücher.example.test", KindAlias, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, nil},
		{"IDN A-label", "anna@xn--bcher-kva.example.test", KindAlias, "alice@corp.example.test", []string{"alice@corp.example.test"}, true, nil},
		{"nested list skips disabled and mailless", "all@corp.example.test", KindList, "all@corp.example.test", []string{"alice@corp.example.test", "bob@corp.example.test", "carol@corp.example.test", "erin@corp.example.test"}, true, nil},
		{"list extension", "sales+q3@corp.example.test", KindList, "sales@corp.example.test", []string{"bob+q3@corp.example.test", "erin+q3@corp.example.test"}, true, nil},
		{"list with contact", "partners@corp.example.test", KindList, "partners@corp.example.test", []string{"bob@partner.example", "erin@corp.example.test"}, false, nil},
		{"group cycle", "cycle-a@corp.example.test", KindList, "cycle-a@corp.example.test", []string{"alice@corp.example.test", "bob@corp.example.test"}, true, nil},
		{"contact", "partner@corp.example.test", KindContact, "bob@partner.example", []string{"bob@partner.example"}, false, nil},
		{"forwarding user", "frank@corp.example.test", KindMailbox, "frank@corp.example.test", []string{"frank@home.example"}, false, nil},
		{"disabled user", "dave@corp.example.test", KindUnknown, "dave@corp.example.test", []string{}, false, nil},
		{"unknown user", "nobody@corp.example.test", KindUnknown, "", []string{}, false, nil},
		{"unknown domain", "alice@elsewhere.example", KindUnknown, "", []string{}, false, nil},
		{"look-alike domain", "alice@corp.example.test.evil.example", KindUnknown, "", []string{}, false, nil},
		{"IDN look-alike", "alice@corp.exаmple.test", KindUnknown, "", []string{}, false, nil},
		{"percent route", "x%evil.example@corp.example.test", KindUnknown, "", []string{}, false, nil},
		{"bang route", "evil.example!x@corp.example.test", KindUnknown, "", []string{}, false, nil},
		{"quoted local", `"alice"@corp.example.test`, KindUnknown, "", []string{}, false, nil},
		{"two at signs", "alice@evil.example@corp.example.test", KindUnknown, "", []string{}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Resolve(tt.query)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.query, err)
			}
			if res.Kind != tt.kind || res.Canonical != tt.canonical || res.Internal != tt.internal || !reflect.DeepEqual(res.Targets, tt.targets) {
				t.Fatalf("Resolve(%q) = kind %s canonical %q targets %v internal %v; want %s %q %v %v",
					tt.query, res.Kind, res.Canonical, res.Targets, res.Internal, tt.kind, tt.canonical, tt.targets, tt.internal)
			}
			if tt.groups != nil && !reflect.DeepEqual(res.Groups, tt.groups) {
				t.Fatalf("groups %v, want %v", res.Groups, tt.groups)
			}
		})
	}
}

func TestResolveFailures(t *testing.T) {
	r := testResolver(t, testPolicy())
	if _, err := r.Resolve("shared@corp.example.test"); !errors.Is(err, ErrAmbiguous) || !IsTemporary(err) {
		t.Errorf("ambiguous address: got %v, want a temporary ErrAmbiguous", err)
	}
	for _, bad := range []string{"", "no-at-sign", "a\x00b@corp.example.test"} {
		if _, err := r.Resolve(bad); !errors.Is(err, address.ErrMalformed) || IsTemporary(err) {
			t.Errorf("Resolve(%q): got %v, want a permanent ErrMalformed", bad, err)
		}
	}
	p := testPolicy()
	p.MaxDepth = 2
	r.SetPolicy(p)
	if _, err := r.Resolve("deep@corp.example.test"); !errors.Is(err, ErrLimit) || !IsTemporary(err) {
		t.Errorf("too deep: got %v, want a temporary ErrLimit", err)
	}
	p = testPolicy()
	p.MaxExpansion = 3
	r.SetPolicy(p)
	if _, err := r.Resolve("all@corp.example.test"); !errors.Is(err, ErrLimit) {
		t.Errorf("too large: got %v, want ErrLimit (never a truncated list)", err)
	}
}

func TestUnavailableIsTemporary(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := New(Options{Source: StaticSource{Path: "testdata/missing.yaml"}, Refresh: time.Minute, MaxStale: time.Hour, Now: clock})
	r := NewResolver(d, testPolicy())
	if err := d.Sync(context.Background()); err == nil {
		t.Fatal("sync of a missing file succeeded")
	}
	if _, err := r.Resolve("alice@corp.example.test"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("before the first sync: got %v, want ErrUnavailable (never not-found)", err)
	}
	// An external address needs no directory: it is answered even now.
	if res, err := r.Resolve("x@elsewhere.example"); err != nil || res.Internal {
		t.Fatalf("external address without a directory: %+v, %v", res, err)
	}
	d.Reconfigure(StaticSource{Path: "testdata/directory.yaml"}, time.Minute, time.Hour)
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Minute)
	if _, err := r.Resolve("alice@corp.example.test"); err != nil {
		t.Fatalf("within max_stale: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := r.Resolve("alice@corp.example.test"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past max_stale: got %v, want ErrUnavailable", err)
	}
}

func TestStatePersistsAcrossRestart(t *testing.T) {
	state := t.TempDir() + "/directory.json"
	src := StaticSource{Path: "testdata/directory.yaml"}
	d := New(Options{Source: src, Refresh: time.Minute, MaxStale: time.Hour, StateFile: state})
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A restart while the source is down: the persisted snapshot answers.
	down := StaticSource{Path: "testdata/directory.yaml"}
	d2 := New(Options{Source: down, Refresh: time.Minute, MaxStale: time.Hour, StateFile: state})
	if err := d2.LoadState(); err != nil {
		t.Fatal(err)
	}
	res, err := NewResolver(d2, testPolicy()).Resolve("all@corp.example.test")
	if err != nil || len(res.Targets) != 4 {
		t.Fatalf("from the persisted snapshot: %+v, %v", res, err)
	}
	// A snapshot from another source is not used.
	d3 := New(Options{Source: StaticSource{Path: "other.yaml"}, Refresh: time.Minute, MaxStale: time.Hour, StateFile: state})
	if err := d3.LoadState(); err == nil || d3.Ready() {
		t.Fatalf("a snapshot of another source was loaded: %v", err)
	}
}

func TestUserByLogin(t *testing.T) {
	r := testResolver(t, testPolicy())
	for _, login := range []string{"carol", "CAROL", `CORP\carol`, "carol@corp.example.test", "bob@corp.example.test"} {
		if u, err := r.User(login); err != nil || u == nil {
			t.Errorf("User(%q) = %v, %v", login, u, err)
		}
	}
	if u, _ := r.User("dave"); u != nil {
		t.Error("a disabled user was returned")
	}
}
