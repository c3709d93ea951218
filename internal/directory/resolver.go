package directory

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/config"
)

// Policy is the part of the configuration that gives addresses their meaning.
type Policy struct {
	Domains      map[string]bool   // accepted primary domains
	Aliases      map[string]string // alias domain -> primary domain
	Delimiters   string            // recipient delimiter characters
	MaxDepth     int               // nesting levels a group may expand through
	MaxExpansion int               // targets a group may expand to
}

// PolicyFrom takes the address policy out of a loaded configuration.
func PolicyFrom(c *config.Config) Policy {
	p := Policy{Domains: map[string]bool{}, Aliases: c.DomainAliases, Delimiters: c.RecipientDelimiter,
		MaxDepth: c.Directory.MaxDepth, MaxExpansion: c.Directory.MaxExpansion}
	for _, d := range c.Domains {
		p.Domains[d] = true
	}
	return p
}

// IsInternalDomain reports whether a normalised domain is accepted or an alias of one.
func (p *Policy) IsInternalDomain(domain string) bool {
	return p.Domains[domain] || p.Aliases[domain] != ""
}

// Kinds of result, as `postern lookup` prints them.
const (
	KindMailbox = "mailbox"
	KindAlias   = "alias"
	KindList    = "list"
	KindContact = "contact"
	KindUnknown = "unknown"
)

// Result is what the directory says about one address.
type Result struct {
	Query     string   `json:"query"`
	Kind      string   `json:"kind"`
	Canonical string   `json:"canonical,omitempty"` // the owner's primary address
	Targets   []string `json:"targets"`             // final leaf addresses, extension re-appended
	Login     string   `json:"login,omitempty"`     // a mailbox's login
	Groups    []string `json:"groups,omitempty"`    // a mailbox's groups, transitively
	Internal  bool     `json:"internal"`            // every target is in an accepted domain
	Extension string   `json:"extension,omitempty"`
	Disabled  bool     `json:"disabled,omitempty"` // the address belongs to a disabled account
	Routed    bool     `json:"routed,omitempty"`   // a routing form, never internal

	Address address.Address `json:"-"`
	Object  *Object         `json:"-"` // the owner, when there is one
}

// Found reports whether the address exists and can receive mail.
func (r *Result) Found() bool { return r.Kind != KindUnknown }

// Resolver answers address questions from the directory's current snapshot. It is the
// one place that knows address semantics; every daemon asks it.
type Resolver struct {
	dir    *Directory
	policy atomic.Pointer[Policy]
}

// NewResolver returns a resolver over dir with the given policy.
func NewResolver(dir *Directory, p Policy) *Resolver {
	r := &Resolver{dir: dir}
	r.SetPolicy(p)
	return r
}

// SetPolicy swaps the policy, e.g. after a configuration reload.
func (r *Resolver) SetPolicy(p Policy) { r.policy.Store(&p) }

// Policy returns the policy in force.
func (r *Resolver) Policy() *Policy { return r.policy.Load() }

// Snapshot returns the directory's current snapshot, or ErrUnavailable.
func (r *Resolver) Snapshot() (*Snapshot, error) { return r.dir.Snapshot() }

// Resolve says what raw is: who owns it, what it expands to, whether it is internal.
// Errors are address.ErrMalformed (not found) or temporary (see IsTemporary).
func (r *Resolver) Resolve(raw string) (*Result, error) {
	p := r.Policy()
	a, err := address.Parse(raw, p.Delimiters)
	if err != nil {
		return nil, err
	}
	res := &Result{Query: raw, Kind: KindUnknown, Targets: []string{}, Address: a, Extension: a.Extension, Routed: a.Routed}
	if a.Routed || !p.IsInternalDomain(a.Domain) {
		return res, nil // never looked up: not ours, or a routing trick
	}
	snap, err := r.dir.Snapshot()
	if err != nil {
		return nil, err
	}
	// Like Postfix's indexed tables: the address as written first ("jean-luc" with "-"
	// as a delimiter), then without its extension.
	owner, err := r.owner(snap, p, address.Address{Local: a.Local + strings.ToLower(a.Extension), Domain: a.Domain})
	if owner != nil {
		res.Extension = ""
	} else if err == nil && a.Extension != "" {
		owner, err = r.owner(snap, p, a)
	}
	if err != nil || owner == nil {
		return res, err
	}
	res.Object, res.Canonical = owner, owner.Primary
	switch owner.Kind {
	case User:
		if owner.Disabled {
			res.Disabled = true
			return res, nil
		}
		res.Kind = KindAlias
		if a.Base() == owner.Primary {
			res.Kind = KindMailbox
		}
		res.Login = owner.Login
		for _, g := range snap.GroupsOf(owner) {
			res.Groups = append(res.Groups, g.Name)
		}
		res.Targets = []string{r.userTarget(snap, owner)}
	case Group:
		res.Kind = KindList
		if res.Targets, err = r.expand(snap, p, owner); err != nil {
			return nil, err
		}
	case Contact:
		res.Kind, res.Canonical = KindContact, owner.Target
		if owner.Target != "" {
			res.Targets = []string{owner.Target}
		}
	}
	r.finish(p, res)
	return res, nil
}

// owner finds the one object that owns a, trying the address as written and then with
// an alias domain mapped to its primary.
func (r *Resolver) owner(snap *Snapshot, p *Policy, a address.Address) (*Object, error) {
	keys := []string{a.Base()}
	if primary := p.Aliases[a.Domain]; primary != "" {
		keys = append(keys, a.Local+"@"+primary)
	}
	for _, k := range keys {
		switch objs := snap.ByAddress(k); len(objs) {
		case 0:
			continue
		case 1:
			return objs[0], nil
		default:
			return nil, fmt.Errorf("%w: %s is claimed by %s (make it unique in proxyAddresses)",
				ErrAmbiguous, k, strings.Join(snap.Ambiguous[k], " and "))
		}
	}
	return nil, nil
}

// userTarget is where a user's mail goes: the mailbox, or the forwarding target.
func (r *Resolver) userTarget(snap *Snapshot, u *Object) string {
	if u.Forward == "" {
		return u.Primary
	}
	if fwd := snap.ByDN(u.Forward); fwd != nil {
		if fwd.Kind == Contact && fwd.Target != "" {
			return fwd.Target
		}
		if fwd.Primary != "" {
			return fwd.Primary
		}
	}
	if a, err := address.Parse(u.Forward, ""); err == nil {
		return a.Base()
	}
	return u.Primary
}

// expand returns the leaf addresses of a group: enabled users, contacts' targets and the
// members of nested groups, each once. Cycles end where they meet a group already seen;
// exceeding MaxDepth or MaxExpansion is ErrLimit, never a truncated list.
func (r *Resolver) expand(snap *Snapshot, p *Policy, g *Object) ([]string, error) {
	seenGroup := map[string]bool{dnKey(g.DN): true}
	seenTarget := map[string]bool{}
	targets := []string{}
	var walk func(g *Object, depth int) error
	walk = func(g *Object, depth int) error {
		if depth > p.MaxDepth {
			return fmt.Errorf("%w: %s nests deeper than directory.max_depth (%d)", ErrLimit, g.DN, p.MaxDepth)
		}
		for _, m := range snap.Members(g) {
			var t string
			switch {
			case m.Kind == Group:
				if !seenGroup[dnKey(m.DN)] {
					seenGroup[dnKey(m.DN)] = true
					if err := walk(m, depth+1); err != nil {
						return err
					}
				}
				continue
			case m.Kind == Contact:
				t = m.Target
			case !m.Disabled && m.Primary != "":
				t = r.userTarget(snap, m)
			}
			if t != "" && !seenTarget[t] {
				seenTarget[t] = true
				targets = append(targets, t)
				if len(targets) > p.MaxExpansion {
					return fmt.Errorf("%w: %s expands to more than directory.max_expansion (%d) addresses", ErrLimit, g.DN, p.MaxExpansion)
				}
			}
		}
		return nil
	}
	if err := walk(g, 1); err != nil {
		return nil, err
	}
	sort.Strings(targets)
	return targets, nil
}

// finish carries the extension to internal targets and decides Internal: true only when
// every target is in an accepted domain.
func (r *Resolver) finish(p *Policy, res *Result) {
	res.Internal = true
	for i, t := range res.Targets {
		a, err := address.Parse(t, "")
		if err != nil || a.Routed || !p.IsInternalDomain(a.Domain) {
			res.Internal = false
			continue
		}
		res.Targets[i] = address.WithExtension(t, res.Extension)
	}
}

// User returns the enabled user with that login (sAMAccountName, UPN, DOMAIN\login), or
// nil when there is none.
func (r *Resolver) User(login string) (*Object, error) {
	snap, err := r.dir.Snapshot()
	if err != nil {
		return nil, err
	}
	u := snap.ByLogin(login)
	if u == nil || u.Disabled {
		return nil, nil
	}
	return u, nil
}
