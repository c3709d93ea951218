package welcome

import (
	"sort"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/postern-mail/postern/internal/directory"
)

// scope is the part of the directory that gets letters: members of welcome.groups
// (nested membership counts) and users under welcome.ous; empty lists mean everyone.
type scope struct {
	groups map[string]bool // DNs, lower case
	ous    []*ldap.DN
}

// newScope resolves the configured groups in the snapshot. A group that is not there is
// a configuration error: a misspelt name must not quietly mean "nobody gets a letter".
func newScope(s *directory.Snapshot, groups, ous []string) (*scope, error) {
	sc := &scope{groups: map[string]bool{}}
	for _, g := range groups {
		dn := groupDN(s, g)
		if dn == "" {
			return nil, classify(ErrConfig, "welcome.groups: the directory has no group %q (give its name or DN)", g)
		}
		sc.groups[strings.ToLower(dn)] = true
	}
	for _, ou := range ous {
		dn, err := ldap.ParseDN(ou)
		if err != nil {
			return nil, classify(ErrConfig, "welcome.ous: %q: %w", ou, err)
		}
		sc.ous = append(sc.ous, dn)
	}
	return sc, nil
}

func groupDN(s *directory.Snapshot, nameOrDN string) string {
	if o := s.ByDN(nameOrDN); o != nil && o.Kind == directory.Group {
		return o.DN
	}
	for _, o := range s.Objects {
		if o.Kind == directory.Group && strings.EqualFold(o.Name, nameOrDN) {
			return o.DN
		}
	}
	return ""
}

func (sc *scope) contains(s *directory.Snapshot, o *directory.Object) bool {
	if len(sc.ous) > 0 {
		dn, err := ldap.ParseDN(o.DN)
		if err != nil || !underAny(dn, sc.ous) {
			return false
		}
	}
	if len(sc.groups) == 0 {
		return true
	}
	for _, g := range s.GroupsOf(o) {
		if sc.groups[strings.ToLower(g.DN)] {
			return true
		}
	}
	return false
}

func underAny(dn *ldap.DN, ous []*ldap.DN) bool {
	for _, ou := range ous {
		if ou.AncestorOfFold(dn) || ou.EqualFold(dn) {
			return true
		}
	}
	return false
}

// eligible reports why a user cannot have a letter now, or "" when they can: an
// enabled account with a mailbox address and a creation time.
func eligible(o *directory.Object) string {
	switch {
	case o.Kind != directory.User:
		return "is not a user"
	case o.Disabled:
		return "is disabled"
	case o.Primary == "":
		return "has no mail address"
	}
	return ""
}

// newest is the latest whenCreated in the directory, by the directory's clock (so this
// host's clock does not matter), but never later than now.
func newest(s *directory.Snapshot, now time.Time) time.Time {
	var t time.Time
	for _, o := range s.Objects {
		if o.Kind == directory.User && o.Created.After(t) {
			t = o.Created
		}
	}
	if t.IsZero() || t.After(now) {
		return now
	}
	return t
}

// candidates are the users a run writes to: created at or after the ledger's Since, not
// in the ledger, eligible and in scope; oldest first.
func candidates(s *directory.Snapshot, l *ledger, sc *scope) []*directory.Object {
	var out []*directory.Object
	for _, o := range s.Objects {
		if o.Kind != directory.User || o.Created.IsZero() || o.Created.Before(l.Since) || l.find(o) != nil {
			continue
		}
		if eligible(o) == "" && sc.contains(s, o) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return strings.ToLower(out[i].Login) < strings.ToLower(out[j].Login)
	})
	return out
}
