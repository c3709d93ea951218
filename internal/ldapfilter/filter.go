// Package ldapfilter builds LDAP search filters (RFC 4515) so that no value ever reaches
// a filter unescaped: a name like "Smith (Sales)*" is matched literally, never as syntax.
package ldapfilter

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Filter is a complete, parenthesised filter string.
type Filter string

// Eq matches attr equal to value; value is escaped.
func Eq(attr, value string) Filter {
	return Filter("(" + attr + "=" + ldap.EscapeFilter(value) + ")")
}

// InChain matches objects whose attr (member, memberOf) reaches dn through any number of
// nested groups: AD's LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941).
func InChain(attr, dn string) Filter {
	return Filter("(" + attr + ":1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(dn) + ")")
}

// BitSet matches attr with every bit of mask set (LDAP_MATCHING_RULE_BIT_AND), e.g. the
// disabled bit of userAccountControl.
func BitSet(attr string, mask uint32) Filter {
	return Filter(fmt.Sprintf("(%s:1.2.840.113556.1.4.803:=%d)", attr, mask))
}

// Present matches objects that have attr.
func Present(attr string) Filter { return Filter("(" + attr + "=*)") }

// And matches when every filter matches.
func And(fs ...Filter) Filter { return compose("&", fs) }

// Or matches when any filter matches.
func Or(fs ...Filter) Filter { return compose("|", fs) }

// Not negates f.
func Not(f Filter) Filter { return Filter("(!" + string(f) + ")") }

func compose(op string, fs []Filter) Filter {
	if len(fs) == 1 {
		return fs[0]
	}
	var b strings.Builder
	b.WriteString("(" + op)
	for _, f := range fs {
		b.WriteString(string(f))
	}
	b.WriteString(")")
	return Filter(b.String())
}

// Parse checks a filter written by an operator (a configured user_filter, say) and
// returns it for composition.
func Parse(s string) (Filter, error) {
	if _, err := ldap.CompileFilter(s); err != nil {
		return "", fmt.Errorf("%q is not an LDAP filter (RFC 4515): %w", s, err)
	}
	return Filter(s), nil
}

func (f Filter) String() string { return string(f) }
