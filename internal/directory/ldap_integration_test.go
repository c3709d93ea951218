package directory

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

func sambaDirectory(t *testing.T, s *testbench.Samba, refresh time.Duration) (*Directory, *Resolver) {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "postern.yaml")
	os.WriteFile(cfgPath, []byte(testbench.CorpConfig(s, t.TempDir(), "")), 0o600)
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := SourceFrom(c.Directory)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Source: src, Refresh: refresh, MaxStale: time.Hour})
	return d, NewResolver(d, PolicyFrom(c))
}

// nextSync waits until a sync that started after now has finished.
func nextSync(d *Directory) {
	<-d.Synced() // may have started before the change
	<-d.Synced()
}

func TestChangesShowWithinOneRefresh(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	d, r := sambaDirectory(t, s, 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	nextSync(d)

	steps := []struct {
		name  string
		ldif  string
		query string
		check func(*Result) bool
	}{
		{"a new user", `
			dn: CN=Gina Green,OU=Staff,` + s.BaseDN + `
			objectClass: user
			sAMAccountName: gina
			mail: gina@corp.example.test
			proxyAddresses: SMTP:gina@corp.example.test
			userAccountControl: 544
		`, "gina@corp.example.test", func(r *Result) bool { return r.Kind == KindMailbox }},
		{"a user disabled", `
			dn: CN=Bob Brown,OU=Staff,` + s.BaseDN + `
			changetype: modify
			replace: userAccountControl
			userAccountControl: 546
			-
		`, "bob@corp.example.test", func(r *Result) bool { return r.Kind == KindUnknown && r.Disabled }},
		{"moved into Interns", `
			dn: CN=Interns,OU=Staff,` + s.BaseDN + `
			changetype: modify
			add: member
			member: CN=Gina Green,OU=Staff,` + s.BaseDN + `
			-
		`, "gina@corp.example.test", func(r *Result) bool { return slices.Contains(r.Groups, "Interns") }},
		{"renamed (moved to another DN)", `
			dn: CN=Gina Green,OU=Staff,` + s.BaseDN + `
			changetype: modrdn
			newrdn: CN=Gina Grey
			deleteoldrdn: 1
		`, "interns@corp.example.test", func(r *Result) bool { return slices.Contains(r.Targets, "gina@corp.example.test") }},
		{"deleted", `
			dn: CN=Gina Grey,OU=Staff,` + s.BaseDN + `
			changetype: delete
		`, "gina@corp.example.test", func(r *Result) bool { return r.Kind == KindUnknown && !r.Disabled }},
	}
	for _, st := range steps {
		s.LDIF(t, st.ldif)
		nextSync(d)
		res, err := r.Resolve(st.query)
		if err != nil || !st.check(res) {
			t.Fatalf("%s: not visible after one refresh: %+v, %v", st.name, res, err)
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
