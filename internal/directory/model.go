// Package directory is postern's view of Active Directory: an in-memory snapshot of
// users, groups and contacts, synchronised from a Source every refresh and swapped
// atomically, and the Resolver that answers every address question from it.
package directory

import (
	"sort"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/address"
)

// Kind is the type of a directory object.
type Kind string

// The kinds of object the directory knows.
const (
	User    Kind = "user"
	Group   Kind = "group"
	Contact Kind = "contact"
)

// Object is one user, group or contact, as the sources deliver it.
type Object struct {
	DN        string            `json:"dn"`
	Kind      Kind              `json:"kind"`
	GUID      string            `json:"guid,omitempty"`  // user: objectGUID, stable across renames and moves
	Login     string            `json:"login,omitempty"` // sAMAccountName
	UPN       string            `json:"upn,omitempty"`
	Name      string            `json:"name,omitempty"` // group name
	Primary   string            `json:"primary,omitempty"`
	Addresses []string          `json:"addresses,omitempty"` // every SMTP address, primary included
	Disabled  bool              `json:"disabled,omitempty"`
	Target    string            `json:"target,omitempty"`  // contact: the external address
	Forward   string            `json:"forward,omitempty"` // user: DN or address mail is redirected to
	Members   []string          `json:"members,omitempty"` // group: member DNs
	MemberOf  []string          `json:"member_of,omitempty"`
	Created   time.Time         `json:"created,omitzero"`
	Attrs     map[string]string `json:"attrs,omitempty"` // person attributes for templates
}

// Snapshot is one consistent view of the directory. It is never modified after
// NewSnapshot returns, so any number of goroutines may read it.
type Snapshot struct {
	SyncedAt time.Time
	Source   string
	Objects  []*Object

	byDN      map[string]*Object
	byAddress map[string][]*Object
	byLogin   map[string]*Object
	children  map[string][]string // group DN -> member DNs (lower case)
	parents   map[string][]string // DN -> DNs of the groups it is a direct member of
	// Ambiguous lists addresses that more than one object claims (AD does not prevent
	// it), with the DNs claiming each; the resolver refuses to guess between them.
	Ambiguous map[string][]string
	// Skipped counts addresses dropped because they do not parse.
	Skipped int
}

// NewSnapshot indexes objects. Addresses are normalised (lower case, A-label domains);
// membership is the union of groups' member and objects' memberOf values, so a ranged
// member attribute of a very large AD group cannot hide members.
func NewSnapshot(objects []*Object, syncedAt time.Time, source string) *Snapshot {
	s := &Snapshot{
		SyncedAt: syncedAt, Source: source, Objects: objects,
		byDN: map[string]*Object{}, byAddress: map[string][]*Object{}, byLogin: map[string]*Object{},
		children: map[string][]string{}, parents: map[string][]string{}, Ambiguous: map[string][]string{},
	}
	for _, o := range objects {
		s.byDN[dnKey(o.DN)] = o
	}
	edges := map[[2]string]bool{}
	link := func(group, member string) {
		g, m := dnKey(group), dnKey(member)
		if s.byDN[g] == nil || s.byDN[m] == nil || s.byDN[g].Kind != Group || edges[[2]string{g, m}] {
			return
		}
		edges[[2]string{g, m}] = true
		s.children[g] = append(s.children[g], m)
		s.parents[m] = append(s.parents[m], g)
	}
	for _, o := range objects {
		s.indexAddresses(o)
		for _, login := range []string{o.Login, o.UPN} {
			if login != "" && o.Kind == User {
				s.byLogin[strings.ToLower(login)] = o
			}
		}
		for _, m := range o.Members {
			link(o.DN, m)
		}
		for _, g := range o.MemberOf {
			link(g, o.DN)
		}
	}
	for a, objs := range s.byAddress {
		if len(objs) > 1 {
			for _, o := range objs {
				s.Ambiguous[a] = append(s.Ambiguous[a], o.DN)
			}
			sort.Strings(s.Ambiguous[a])
		}
	}
	return s
}

func (s *Snapshot) indexAddresses(o *Object) {
	seen := map[string]bool{}
	norm := func(raw string) string {
		if raw == "" {
			return ""
		}
		a, err := address.Parse(raw, "")
		if err != nil || a.Routed {
			s.Skipped++
			return ""
		}
		return a.Base()
	}
	o.Primary = norm(o.Primary)
	for _, raw := range append([]string{o.Primary}, o.Addresses...) {
		if raw == "" {
			continue
		}
		if a := norm(raw); a != "" && !seen[a] {
			seen[a] = true
			s.byAddress[a] = append(s.byAddress[a], o)
		}
	}
	o.Addresses = o.Addresses[:0]
	for a := range seen {
		o.Addresses = append(o.Addresses, a)
	}
	sort.Strings(o.Addresses)
}

// ByDN returns the object with that distinguished name (case-insensitive).
func (s *Snapshot) ByDN(dn string) *Object { return s.byDN[dnKey(dn)] }

// ByAddress returns the objects that own a normalised address.
func (s *Snapshot) ByAddress(addr string) []*Object { return s.byAddress[addr] }

// ByLogin returns the user whose sAMAccountName or userPrincipalName is login. The
// forms "DOMAIN\login" and "login@realm" are accepted too.
func (s *Snapshot) ByLogin(login string) *Object {
	l := strings.ToLower(strings.TrimSpace(login))
	if o := s.byLogin[l]; o != nil {
		return o
	}
	if i := strings.LastIndexByte(l, '\\'); i >= 0 {
		return s.byLogin[l[i+1:]]
	}
	if i := strings.IndexByte(l, '@'); i > 0 {
		return s.byLogin[l[:i]]
	}
	return nil
}

// Members returns the direct members of a group.
func (s *Snapshot) Members(group *Object) []*Object {
	var out []*Object
	for _, dn := range s.children[dnKey(group.DN)] {
		out = append(out, s.byDN[dn])
	}
	return out
}

// GroupsOf returns every group o belongs to, directly or through nesting, sorted by
// name. Cycles in the group graph are harmless here.
func (s *Snapshot) GroupsOf(o *Object) []*Object {
	seen := map[string]bool{}
	queue := []string{dnKey(o.DN)}
	var out []*Object
	for len(queue) > 0 {
		dn := queue[0]
		queue = queue[1:]
		for _, p := range s.parents[dn] {
			if !seen[p] {
				seen[p] = true
				out = append(out, s.byDN[p])
				queue = append(queue, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}

// Count returns how many objects of each kind the snapshot holds, disabled users apart.
func (s *Snapshot) Count() map[string]int {
	n := map[string]int{"user": 0, "disabled_user": 0, "group": 0, "contact": 0}
	for _, o := range s.Objects {
		switch {
		case o.Kind == User && o.Disabled:
			n["disabled_user"]++
		default:
			n[string(o.Kind)]++
		}
	}
	return n
}

// dnKey folds a DN for comparison; AD compares DNs case-insensitively.
func dnKey(dn string) string { return strings.ToLower(strings.TrimSpace(dn)) }
