// Package ldapfilter checks the LDAP search filters (RFC 4515) an operator writes in the
// configuration (user_filter, group_filter, contact_filter), so that a typo is a
// configuration error naming the key, not a failed sync at run time. No value from mail
// or from the directory is ever put into a filter: the directory is read whole.
package ldapfilter

import (
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// Filter is a complete, parenthesised filter string that compiles.
type Filter string

// Parse checks a filter written by an operator and returns it.
func Parse(s string) (Filter, error) {
	if _, err := ldap.CompileFilter(s); err != nil {
		return "", fmt.Errorf("%q is not an LDAP filter (RFC 4515): %w", s, err)
	}
	return Filter(s), nil
}

func (f Filter) String() string { return string(f) }
