package tcptable

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// tables answers every map from the directory's resolver.
type tables struct {
	resolver *directory.Resolver
	opts     atomic.Pointer[config.Tcptable]
}

func newTables(r *directory.Resolver, c config.Tcptable) *tables {
	t := &tables{resolver: r}
	t.opts.Store(&c)
	return t
}

// lookups are the maps by name; config.TcptableMaps lists the same names.
var lookups = map[string]func(*tables, string) Answer{
	// virtual_mailbox_domains: the accepted primary domains. From the configuration, so
	// they answer during a directory outage (the mailbox lookup then defers the mail).
	"domains": (*tables).domains,
	// virtual_alias_domains: the alias domains; the value is the primary domain.
	"alias_domains": (*tables).aliasDomains,
	// virtual_mailbox_maps: enabled mailboxes, with or without +extension.
	"mailboxes": (*tables).mailboxes,
	// virtual_alias_maps: where an address that is not itself a mailbox goes.
	"aliases": (*tables).aliases,
	// smtpd_sender_login_maps: the login(s) that may send as an address.
	"senders": (*tables).senders,
	// relay_recipient_maps: every deliverable address (e.g. on the PMG in front).
	"recipients": (*tables).recipients,
	// sender_bcc_maps, recipient_bcc_maps: the shadow archive address.
	"shadow": (*tables).shadow,
}

// lookup answers key from the named map.
func (t *tables) lookup(table, key string) Answer {
	f := lookups[table]
	if f == nil {
		return permanent("unknown map", fmt.Sprintf("main.cf asks for map %q, which postern does not serve (use one of %s)",
			table, strings.Join(config.TcptableMaps, ", ")))
	}
	return f(t, key)
}

// domains answers a bare domain that is an accepted primary domain with its A-label form.
// Postfix ignores the value. Postfix also asks for parent domains as ".example.com"; those
// are not domains and are not found.
func (t *tables) domains(key string) Answer {
	if d, ok := bareDomain(key); ok && t.resolver.Policy().Domains[d] {
		return found(d)
	}
	return notFound()
}

// aliasDomains answers an alias domain with the primary domain it stands for.
func (t *tables) aliasDomains(key string) Answer {
	if d, ok := bareDomain(key); ok {
		if primary := t.resolver.Policy().Aliases[d]; primary != "" {
			return found(primary)
		}
	}
	return notFound()
}

func bareDomain(key string) (string, bool) {
	if strings.Contains(key, "@") {
		return "", false
	}
	d, err := address.Domain(key)
	return d, err == nil
}

// mailboxes answers an enabled user's primary address, in any case and with any
// +extension, with that address. Secondary addresses are not mailboxes: the aliases map
// rewrites them first. With virtual_transport = lmtp: Postfix ignores the value (the
// virtual(8) agent would take it as a path).
func (t *tables) mailboxes(key string) Answer {
	res, a, ok := t.resolve(key)
	if !ok {
		return a
	}
	if res.Kind != directory.KindMailbox {
		return notFound()
	}
	return found(res.Canonical)
}

// aliases answers where mail for key goes, as comma-separated addresses with the
// +extension carried over: a secondary or alias-domain address to its mailbox, a list to
// its members (nested groups expanded, disabled users left out), a contact to its
// external address, a forwarding user to the forward target.
//
// A mailbox asked for in its own canonical form ("alice@corp", "alice+News@corp") is not
// found: virtual_mailbox_maps answers it, and an answer would only make Postfix look the
// result up again. Any other form of it ("Alice+News@CORP") is answered with the
// canonical form, so what reaches the mailbox server is always the canonical address.
// A bare domain is never found: answering one would turn it into a virtual alias domain.
func (t *tables) aliases(key string) Answer {
	if !strings.Contains(key, "@") {
		return notFound()
	}
	res, a, ok := t.resolve(key)
	if !ok {
		return a
	}
	if !res.Found() || len(res.Targets) == 0 || (len(res.Targets) == 1 && res.Targets[0] == key) {
		return notFound() // an empty list or a contact with no target delivers nowhere
	}
	return found(strings.Join(res.Targets, ","))
}

// senders answers the login (sAMAccountName) of the user who owns a mailbox or secondary
// address. A list's address is answered, with group_send_as, with the logins of its
// enabled users, nested groups included, so they may send as the list; without it, and
// for contacts, unknown and disabled users, it is not found: no login owns it, and
// reject_sender_login_mismatch refuses it to every logged-in user.
func (t *tables) senders(key string) Answer {
	res, a, ok := t.resolve(key)
	if !ok {
		return a
	}
	switch {
	case (res.Kind == directory.KindMailbox || res.Kind == directory.KindAlias) && res.Login != "":
		return found(res.Login)
	case res.Kind == directory.KindList && t.opts.Load().Senders.GroupSendAs:
		logins, err := t.groupLogins(res.Object)
		if err != nil {
			return directoryFailure(err)
		}
		if len(logins) > 0 {
			return found(strings.Join(logins, ","))
		}
	}
	return notFound()
}

// recipients answers every address mail can be delivered to (mailbox, secondary address,
// list with members, contact) with its canonical address; Postfix ignores the value.
func (t *tables) recipients(key string) Answer {
	res, a, ok := t.resolve(key)
	if !ok {
		return a
	}
	if !res.Found() || len(res.Targets) == 0 {
		return notFound()
	}
	return found(res.Canonical)
}

// shadow answers an internal address that exists (mailbox, secondary address, list) with
// the shadow archive address: tcptable.shadow.address with {domain} set to the owner's
// primary domain, so one shadow mailbox per primary domain also covers its alias domains.
// External, unknown and disabled addresses and contacts are not found: mail between
// outsiders is not ours to archive, and mail to an unknown user is refused anyway.
// Postfix takes one address only from a BCC map.
func (t *tables) shadow(key string) Answer {
	res, a, ok := t.resolve(key)
	if !ok {
		return a
	}
	switch res.Kind {
	case directory.KindMailbox, directory.KindAlias, directory.KindList:
	default:
		return notFound()
	}
	domain := res.Address.Domain
	if at := strings.LastIndexByte(res.Canonical, '@'); at >= 0 {
		domain = res.Canonical[at+1:]
	} else if primary := t.resolver.Policy().Aliases[domain]; primary != "" {
		domain = primary
	}
	return found(strings.ReplaceAll(t.opts.Load().Shadow.Address, config.ShadowDomain, domain))
}

// resolve asks the resolver; ok is false when a is the answer already: not found for a
// malformed key, temporary when the directory cannot answer.
func (t *tables) resolve(key string) (res *directory.Result, a Answer, ok bool) {
	res, err := t.resolver.Resolve(key)
	switch {
	case err == nil:
		return res, Answer{}, true
	case !directory.IsTemporary(err):
		return nil, notFound(), false
	default:
		return nil, directoryFailure(err), false
	}
}

// directoryFailure is the temporary answer for a directory error.
func directoryFailure(err error) Answer {
	reason := "directory error"
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		reason = "directory unavailable"
	case errors.Is(err, directory.ErrLimit):
		reason = "group expansion limit exceeded"
	case errors.Is(err, directory.ErrAmbiguous):
		reason = "ambiguous address in the directory"
	}
	return temporary(reason, err.Error())
}

// groupLogins returns the logins of the enabled users in group g, through nested groups,
// sorted. Like the resolver's expansion, exceeding directory.max_depth or max_expansion
// is directory.ErrLimit, never a shorter list.
func (t *tables) groupLogins(g *directory.Object) ([]string, error) {
	snap, err := t.resolver.Snapshot()
	if err != nil {
		return nil, err
	}
	p := t.resolver.Policy()
	seenGroup := map[string]bool{strings.ToLower(g.DN): true}
	seenLogin := map[string]bool{}
	var logins []string
	var walk func(g *directory.Object, depth int) error
	walk = func(g *directory.Object, depth int) error {
		if depth > p.MaxDepth {
			return fmt.Errorf("%w: %s nests deeper than directory.max_depth (%d)", directory.ErrLimit, g.DN, p.MaxDepth)
		}
		for _, m := range snap.Members(g) {
			switch {
			case m.Kind == directory.Group && !seenGroup[strings.ToLower(m.DN)]:
				seenGroup[strings.ToLower(m.DN)] = true
				if err := walk(m, depth+1); err != nil {
					return err
				}
			case m.Kind == directory.User && !m.Disabled && m.Login != "" && !seenLogin[strings.ToLower(m.Login)]:
				seenLogin[strings.ToLower(m.Login)] = true
				logins = append(logins, m.Login)
				if len(logins) > p.MaxExpansion {
					return fmt.Errorf("%w: %s has more than directory.max_expansion (%d) members", directory.ErrLimit, g.DN, p.MaxExpansion)
				}
			}
		}
		return nil
	}
	if err := walk(g, 1); err != nil {
		return nil, err
	}
	slices.Sort(logins)
	return logins, nil
}
