package testbench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestSamba(t *testing.T) {
	began := time.Now()
	s := StartSamba(t)
	t.Logf("StartSamba took %s", time.Since(began).Round(time.Millisecond))

	if b, err := os.ReadFile(s.PasswordFile); err != nil || string(b) != s.Password {
		t.Fatalf("PasswordFile %s holds %q, %v; want the password", s.PasswordFile, b, err)
	}
	if fi, err := os.Stat(s.PasswordFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("PasswordFile mode: %v %v, want 0600", fi.Mode(), err)
	}

	s.LDIF(t, fmt.Sprintf(`
		dn: OU=Bench,%[1]s
		changetype: add
		objectClass: organizationalUnit

		# a user with a password, several addresses and a long folded line
		dn: CN=Carol Clark,OU=Bench,%[1]s
		changetype: add
		objectClass: user
		sAMAccountName: carol
		userPrincipalName: carol@corp.example.test
		mail: carol@corp.example.test
		proxyAddresses: SMTP:carol@corp.example.test
		proxyAddresses: smtp:c.clark@corp.example.test
		proxyAddresses: X500:/o=Corp/ou=Exchange/cn=Recipients/cn=carol-with-a-rather-lo
		 ng-name
		unicodePwd:: %[2]s
		userAccountControl: 512

		dn: CN=Dave Disabled,OU=Bench,%[1]s
		objectClass: user
		sAMAccountName: dave
		userAccountControl: 514

		dn: CN=Interns,OU=Bench,%[1]s
		changetype: add
		objectClass: group
		sAMAccountName: Interns
		groupType: -2147483646
		member: CN=Carol Clark,OU=Bench,%[1]s
		member: CN=Dave Disabled,OU=Bench,%[1]s
		`, s.BaseDN, UnicodePwd("Carol-Passw0rd!")))

	c := s.Dial(t)
	carol := searchOne(t, c, s.BaseDN, "(proxyAddresses=smtp:C.CLARK@corp.example.test)")
	if carol.DN != "CN=Carol Clark,OU=Bench,"+s.BaseDN {
		t.Errorf("found %s by proxyAddresses", carol.DN)
	}
	if got := carol.GetAttributeValues("proxyAddresses"); len(got) != 3 ||
		!slices.Contains(got, "X500:/o=Corp/ou=Exchange/cn=Recipients/cn=carol-with-a-rather-long-name") {
		t.Errorf("proxyAddresses = %q", got)
	}
	if got := carol.GetAttributeValues("memberOf"); !slices.Equal(got, []string{"CN=Interns,OU=Bench," + s.BaseDN}) {
		t.Errorf("memberOf = %q", got)
	}
	if got := searchOne(t, c, s.BaseDN, "(sAMAccountName=Interns)").GetAttributeValues("member"); len(got) != 2 {
		t.Errorf("Interns members = %q", got)
	}

	// The password set through unicodePwd works for a simple bind.
	uc, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.Bind("carol@corp.example.test", "Carol-Passw0rd!"); err != nil {
		t.Errorf("bind as carol: %v", err)
	}
	uc.Close()

	// modify, modrdn and delete records.
	s.LDIF(t, fmt.Sprintf(`
		dn: CN=Carol Clark,OU=Bench,%[1]s
		changetype: modify
		add: proxyAddresses
		proxyAddresses: smtp:carol@example.org
		-
		replace: title
		title: Intern
		-

		dn: CN=Dave Disabled,OU=Bench,%[1]s
		changetype: modrdn
		newrdn: CN=Dave Gone
		deleteoldrdn: 1

		dn: CN=Dave Gone,OU=Bench,%[1]s
		changetype: delete
		`, s.BaseDN))
	carol = searchOne(t, c, s.BaseDN, "(sAMAccountName=carol)")
	if len(carol.GetAttributeValues("proxyAddresses")) != 4 || carol.GetAttributeValue("title") != "Intern" {
		t.Errorf("after modify: proxyAddresses %q title %q",
			carol.GetAttributeValues("proxyAddresses"), carol.GetAttributeValue("title"))
	}
	if n := count(t, c, s.BaseDN, "(sAMAccountName=dave)"); n != 0 {
		t.Errorf("dave still there after modrdn+delete (%d entries)", n)
	}

	// A rejected record fails the test with Samba's own words.
	msg := fatalMessage(func(tb testing.TB) {
		s.LDIF(tb, "dn: OU=Bench,"+s.BaseDN+"\nchangetype: add\nobjectClass: organizationalUnit\n")
	})
	if !strings.Contains(msg, "Already exists (68)") {
		t.Errorf("LDIF error message = %q, want Samba's 'Already exists (68)'", msg)
	}

	// LDAPS verifies with CAFile + ServerName, and only with the right name.
	lc, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig(t)))
	if err != nil {
		t.Fatalf("LDAPS with CAFile and ServerName %q: %v", s.ServerName, err)
	}
	if err := lc.Bind(s.BindDN, s.Password); err != nil {
		t.Errorf("bind over LDAPS: %v", err)
	}
	lc.Close()
	for _, name := range []string{"dc2.corp.example.test", "127.0.0.1"} {
		cfg := s.TLSConfig(t)
		cfg.ServerName = name
		if lc, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(cfg)); err == nil {
			lc.Close()
			t.Errorf("LDAPS verified with ServerName %q; want a certificate error", name)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("LDAPS with ServerName %q: %v; want a certificate error", name, err)
		}
	}
	// StartTLS on the plain port verifies the same way.
	sc := s.Dial(t)
	if err := sc.StartTLS(s.TLSConfig(t)); err != nil {
		t.Errorf("StartTLS: %v", err)
	}

	// An outage, then the same data again.
	began = time.Now()
	s.Stop()
	t.Logf("Stop took %s", time.Since(began).Round(time.Millisecond))
	for _, port := range []string{"389", "636"} {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			t.Errorf("port %s still answers after Stop", port)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s after Stop: %v, want connection refused", port, err)
		}
	}
	began = time.Now()
	s.Start(t)
	t.Logf("Start (restart) took %s", time.Since(began).Round(time.Millisecond))
	c = s.Dial(t)
	if got := searchOne(t, c, s.BaseDN, "(sAMAccountName=carol)").GetAttributeValue("title"); got != "Intern" {
		t.Errorf("after restart carol's title = %q", got)
	}
}

func TestUnicodePwd(t *testing.T) {
	// The value from the recipe, made there with Python's utf-16-le.
	if got, want := UnicodePwd("Carol-Passw0rd!"), "IgBDAGEAcgBvAGwALQBQAGEAcwBzAHcAMAByAGQAIQAiAA=="; got != want {
		t.Errorf("UnicodePwd = %s, want %s", got, want)
	}
}

func TestDedent(t *testing.T) {
	in := "\n\t\tdn: x\n\t\tdescription: a\n\t\t  b\n\n\t\tdn: y\n\t"
	want := "\ndn: x\ndescription: a\n  b\n\ndn: y\n"
	if got := dedent(in); got != want {
		t.Errorf("dedent = %q, want %q", got, want)
	}
	if got := dedent("dn: x\n b\n"); got != "dn: x\n b\n" {
		t.Errorf("dedent changed unindented LDIF: %q", got)
	}
}

func searchOne(t *testing.T, c *ldap.Conn, base, filter string) *ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"*", "memberOf"}, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("search %s: %d entries, want 1", filter, len(res.Entries))
	}
	return res.Entries[0]
}

func count(t *testing.T, c *ldap.Conn, base, filter string) int {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"dn"}, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return len(res.Entries)
}

// fatalTB records the message of a Fatal call instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalMessage runs fn with a testing.TB whose Fatal ends fn and returns the message ("" if
// fn did not call Fatal).
func fatalMessage(fn func(testing.TB)) string {
	f := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}
