package systemtest

import (
	"fmt"
	"strings"

	"github.com/postern-mail/postern/internal/testbench"
)

// person is a mailbox owner of the company.
type person struct {
	login  string // sAMAccountName, the SASL login
	addr   string // primary address
	intern bool
}

func (p *person) domain() string { return domainOf(p.addr) }

// company is the model of the directory the test seeds: testbench.SeedCorp plus
// generated employees, so that ~250 people send and receive. The accounting asks it
// where each address should lead.
type company struct {
	people  []*person
	byAddr  map[string]*person  // primary addresses
	aliases map[string]*person  // secondary addresses
	lists   map[string][]string // list address -> member logins (enabled mailboxes, transitive)
	byLogin map[string]*person
}

// generated is the number of employees added to the seeded four.
const generated = 246

// throttledLogin is the employee with a low hourly sending limit.
const throttledLogin = "emp123"

func newCompany() *company {
	c := &company{byAddr: map[string]*person{}, aliases: map[string]*person{}, lists: map[string][]string{}, byLogin: map[string]*person{}}
	add := func(p *person) {
		c.people = append(c.people, p)
		c.byAddr[p.addr] = p
		c.byLogin[p.login] = p
	}
	for _, login := range []string{"alice", "bob", "carol", "erin"} {
		add(&person{login: login, addr: login + "@corp.example.test", intern: login == "carol"})
	}
	for i := 1; i <= generated; i++ {
		domain := "corp.example.test"
		if i%5 == 0 {
			domain = "other.example.test"
		}
		login := fmt.Sprintf("emp%03d", i)
		add(&person{login: login, addr: login + "@" + domain, intern: i > generated-6})
	}
	for alias, login := range map[string]string{
		"a.anderson@corp.example.test": "alice", "alice@other.example.test": "alice",
		"c.clark@corp.example.test": "carol", "erin@other.example.test": "erin",
		"bob@alias.example.test": "bob", "emp001@alias.example.test": "emp001",
	} {
		c.aliases[alias] = c.byLogin[login]
	}
	interns := []string{}
	for _, p := range c.people {
		if p.intern {
			interns = append(interns, p.login)
		}
	}
	c.lists["interns@corp.example.test"] = interns
	c.lists["sales@corp.example.test"] = []string{"erin", "bob"} // dave is disabled
	c.lists["all@corp.example.test"] = append([]string{"alice", "erin", "bob"}, interns...)
	return c
}

// ldif adds the generated employees to a Samba seeded with testbench.SeedCorp and puts
// the generated interns into the Interns group.
func (c *company) ldif(s *testbench.Samba) string {
	var b strings.Builder
	for _, p := range c.people[4:] {
		fmt.Fprintf(&b, "dn: CN=%[1]s,OU=Staff,%[2]s\nobjectClass: user\nsAMAccountName: %[1]s\n"+
			"userPrincipalName: %[1]s@corp.example.test\ndisplayName: Employee %[1]s\ntitle: Engineer\n"+
			"mail: %[3]s\nproxyAddresses: SMTP:%[3]s\nuserAccountControl: 544\n\n", p.login, s.BaseDN, p.addr)
	}
	b.WriteString("dn: CN=emp001,OU=Staff," + s.BaseDN + "\nchangetype: modify\nadd: proxyAddresses\n" +
		"proxyAddresses: smtp:emp001@alias.example.test\n-\n\n")
	fmt.Fprintf(&b, "dn: CN=Interns,OU=Staff,%s\nchangetype: modify\nadd: member\n", s.BaseDN)
	for _, p := range c.people[4:] {
		if p.intern {
			fmt.Fprintf(&b, "member: CN=%s,OU=Staff,%s\n", p.login, s.BaseDN)
		}
	}
	b.WriteString("-\n")
	return b.String()
}

// resolve returns the people an address delivers to, or nil for an external address.
// Plus-extensions and the alias domain resolve as Postfix and the tcptable maps do.
func (c *company) resolve(addr string) []*person {
	addr = strings.ToLower(addr)
	local, domain, _ := strings.Cut(addr, "@")
	if base, _, ok := strings.Cut(local, "+"); ok {
		local = base
	}
	for _, a := range []string{local + "@" + domain, strings.Replace(local+"@"+domain, "@alias.example.test", "@corp.example.test", 1)} {
		if p := c.byAddr[a]; p != nil {
			return []*person{p}
		}
		if p := c.aliases[a]; p != nil {
			return []*person{p}
		}
		if members, ok := c.lists[a]; ok {
			var out []*person
			for _, m := range members {
				out = append(out, c.byLogin[m])
			}
			return out
		}
	}
	return nil
}

// shadowOf is the archive address the shadow map gives an internal address: shadow@ the
// primary domain of its owner (a list's own domain), "" for an external address.
func (c *company) shadowOf(addr string) string {
	addr = strings.ToLower(addr)
	if _, ok := c.lists[addr]; ok {
		return "shadow@" + domainOf(addr)
	}
	if ps := c.resolve(addr); len(ps) == 1 {
		return "shadow@" + ps[0].domain()
	}
	return ""
}

func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return d
}
