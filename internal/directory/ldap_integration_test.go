package directory

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

// sambaDirectory builds the seeded company's directory and resolver from its
// configuration file, as postern does: testbench.CorpConfig with ldapYAML appended under
// directory.ldap: (indented four spaces) and each old, new pair in edits replaced once.
// The directory syncs every refresh once its Run starts.
func sambaDirectory(t *testing.T, s *testbench.Samba, refresh time.Duration, ldapYAML string, edits ...string) (*Directory, *Resolver) {
	t.Helper()
	yaml := testbench.CorpConfig(s, t.TempDir(), ldapYAML)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(yaml, edits[i]) {
			t.Fatalf("the configuration has no %q to replace:\n%s", edits[i], yaml)
		}
		yaml = strings.Replace(yaml, edits[i], edits[i+1], 1)
	}
	cfgPath := filepath.Join(t.TempDir(), "postern.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	src, err := SourceFrom(c.Directory)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Source: src, Refresh: refresh, MaxStale: time.Hour})
	return d, NewResolver(d, PolicyFrom(c))
}

// resolve answers query or ends the test.
func resolve(t *testing.T, r *Resolver, query string) *Result {
	t.Helper()
	res, err := r.Resolve(query)
	if err != nil {
		t.Fatalf("resolve %s: %v", query, err)
	}
	return res
}

// nextSync waits until a sync that started after now has finished.
func nextSync(d *Directory) {
	<-d.Synced() // may have started before the change
	<-d.Synced()
}

func TestChangesShowWithinOneRefresh(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	d, r := sambaDirectory(t, s, 300*time.Millisecond, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	nextSync(d)

	const bob, carol, erin, gina = "bob@corp.example.test", "carol@corp.example.test", "erin@corp.example.test", "gina@corp.example.test"
	has := func(list []string, v string) bool { return slices.Contains(list, v) }
	staff := func(cn string) string { return "CN=" + cn + ",OU=Staff," + s.BaseDN }
	// membership is the LDIF that adds ("add") or removes ("delete") a member of a group.
	membership := func(op, group, member string) string {
		return "dn: " + staff(group) + "\nchangetype: modify\n" + op + ": member\nmember: " + staff(member) + "\n-\n\n"
	}
	steps := []struct {
		name      string
		ldif      string                        // the change; "" checks the seeded state
		want      map[string]func(*Result) bool // address -> what its answer must be after one refresh
		loginGone string                        // a login Resolver.User must no longer find
	}{
		{"the seeded company", "", map[string]func(*Result) bool{
			bob:                         func(r *Result) bool { return r.Kind == KindMailbox && has(r.Groups, "Sales") },
			"sales@corp.example.test":   func(r *Result) bool { return has(r.Targets, bob) && has(r.Targets, erin) && !has(r.Targets, carol) },
			"interns@corp.example.test": func(r *Result) bool { return has(r.Targets, carol) },
			carol:                       func(r *Result) bool { return has(r.Groups, "Interns") && !has(r.Groups, "Sales") },
		}, ""},
		{"a new user", `
			dn: ` + staff("Gina Green") + `
			objectClass: user
			sAMAccountName: gina
			mail: gina@corp.example.test
			proxyAddresses: SMTP:gina@corp.example.test
			userAccountControl: 544
		`, map[string]func(*Result) bool{gina: func(r *Result) bool { return r.Kind == KindMailbox }}, ""},
		{"a user disabled", `
			dn: ` + staff("Bob Brown") + `
			changetype: modify
			replace: userAccountControl
			userAccountControl: 546
			-
		`, map[string]func(*Result) bool{
			bob:                       func(r *Result) bool { return r.Kind == KindUnknown && r.Disabled },
			"sales@corp.example.test": func(r *Result) bool { return !has(r.Targets, bob) && has(r.Targets, erin) },
		}, "bob"},
		{"a member removed from a group", membership("delete", "Sales", "Erin Engel"), map[string]func(*Result) bool{
			"sales@corp.example.test": func(r *Result) bool { return r.Kind == KindList && !has(r.Targets, erin) },
			erin:                      func(r *Result) bool { return !has(r.Groups, "Sales") && has(r.Groups, "Partners") },
		}, ""},
		{"a user moved out of Interns into Sales",
			membership("delete", "Interns", "Carol Clark") + membership("add", "Sales", "Carol Clark"), map[string]func(*Result) bool{
				"interns@corp.example.test": func(r *Result) bool { return r.Kind == KindList && !has(r.Targets, carol) },
				"sales@corp.example.test":   func(r *Result) bool { return has(r.Targets, carol) },
				carol:                       func(r *Result) bool { return !has(r.Groups, "Interns") && has(r.Groups, "Sales") },
			}, ""},
		{"moved into Interns", membership("add", "Interns", "Gina Green"),
			map[string]func(*Result) bool{gina: func(r *Result) bool { return has(r.Groups, "Interns") }}, ""},
		{"renamed (moved to another DN)", `
			dn: ` + staff("Gina Green") + `
			changetype: modrdn
			newrdn: CN=Gina Grey
			deleteoldrdn: 1
		`, map[string]func(*Result) bool{"interns@corp.example.test": func(r *Result) bool { return has(r.Targets, gina) }}, ""},
		{"deleted", `
			dn: ` + staff("Gina Grey") + `
			changetype: delete
		`, map[string]func(*Result) bool{
			gina:                        func(r *Result) bool { return r.Kind == KindUnknown && !r.Disabled },
			"interns@corp.example.test": func(r *Result) bool { return !has(r.Targets, gina) },
		}, "gina"},
	}
	for _, st := range steps {
		if st.ldif != "" {
			s.LDIF(t, st.ldif)
			nextSync(d)
		}
		for query, ok := range st.want {
			if res := resolve(t, r, query); !ok(res) {
				t.Errorf("%s: %s is not as expected after one refresh: %+v", st.name, query, res)
			}
		}
		if st.loginGone != "" {
			if u, err := r.User(st.loginGone); u != nil || err != nil {
				t.Errorf("%s: login %q still resolves after one refresh: %+v, %v", st.name, st.loginGone, u, err)
			}
		}
		if t.Failed() {
			t.FailNow() // later steps build on this one
		}
	}
}

func TestLDAPFailoverToSecondURL(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	dead := "ldap://127.0.0.1:" + itoa(testbench.FreePort(t))
	cfg := config.Defaults().Directory.LDAP
	cfg.URLs = []string{dead, s.URL}
	cfg.AllowPlaintext, cfg.BindDN, cfg.BindPassword, cfg.BaseDN = true, s.BindDN, config.NewSecret(s.Password), s.BaseDN
	src, err := NewLDAPSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := src.Fetch(context.Background())
	if err != nil || len(objs) < 10 {
		t.Fatalf("failover: %d objects, %v", len(objs), err)
	}
	cfg.URLs = []string{dead}
	src, _ = NewLDAPSource(cfg)
	if _, err := src.Fetch(context.Background()); err == nil {
		t.Fatal("no server answered, yet Fetch succeeded")
	}
	cfg.URLs = []string{s.URL}
	cfg.BindPassword = config.NewSecret("wrong")
	src, _ = NewLDAPSource(cfg)
	if _, err := src.Fetch(context.Background()); err == nil || !contains(err.Error(), "bind_password_file") {
		t.Fatalf("a wrong password: %v, want a hint at bind_password_file", err)
	}
}

func TestPagedSearchReadsEveryPage(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	cfg := config.Defaults().Directory.LDAP
	cfg.URLs, cfg.AllowPlaintext, cfg.BindDN, cfg.BindPassword, cfg.BaseDN = []string{s.URL}, true, s.BindDN, config.NewSecret(s.Password), s.BaseDN
	cfg.PageSize = 2
	src, _ := NewLDAPSource(cfg)
	small, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg.PageSize = 1000
	src, _ = NewLDAPSource(cfg)
	big, err := src.Fetch(context.Background())
	if err != nil || len(small) != len(big) {
		t.Fatalf("page size 2 read %d objects, page size 1000 read %d (%v)", len(small), len(big), err)
	}
}
