// Package address parses and normalises mail addresses the way every postern daemon must
// agree on: case-insensitive, a set of recipient delimiter characters, IDN domains in
// A-label form, one trailing dot ignored, and routing forms flagged so that they are
// never taken for internal addresses.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrMalformed means the string is not an address at all; lookups answer "not found".
var ErrMalformed = errors.New("malformed address")

// RFC 5321 4.5.3.1: the longest path and local part a server must accept.
const (
	maxAddress = 254
	maxLocal   = 64
)

// Address is a parsed mail address.
type Address struct {
	Local     string // lower case, without the extension; raw text for routed forms
	Extension string // the delimiter and what follows it, in the sender's case ("+News")
	Domain    string // lower case, A-labels, no trailing dot
	// Routed marks forms that are never internal: a quoted local part, the '%' and '!'
	// source-routing forms, a second '@', or an address literal domain.
	Routed bool
}

// String is the address with its extension: "local+ext@domain".
func (a Address) String() string { return a.Local + a.Extension + "@" + a.Domain }

// Base is the address without its extension: "local@domain".
func (a Address) Base() string { return a.Local + "@" + a.Domain }

// WithExtension returns addr (a normalised "local@domain") with ext inserted before '@'.
func WithExtension(addr, ext string) string {
	if ext == "" {
		return addr
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr + ext
	}
	return addr[:at] + ext + addr[at:]
}

// Parse parses raw, splitting the extension at the first character of delimiters.
func Parse(raw, delimiters string) (Address, error) {
	s := strings.TrimSpace(raw)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > maxAddress {
		return Address{}, fmt.Errorf("%w: empty or longer than %d bytes", ErrMalformed, maxAddress)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return Address{}, fmt.Errorf("%w: control character", ErrMalformed)
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, fmt.Errorf("%w: %q needs a local part and a domain", ErrMalformed, s)
	}
	local, dom := s[:at], s[at+1:]
	if strings.HasPrefix(dom, "[") {
		return Address{Local: local, Domain: strings.ToLower(dom), Routed: true}, nil
	}
	domain, err := Domain(dom)
	if err != nil {
		return Address{}, err
	}
	if strings.HasPrefix(local, `"`) || strings.ContainsAny(local, "@%!") {
		return Address{Local: local, Domain: domain, Routed: true}, nil
	}
	if len(local) > maxLocal || strings.ContainsAny(local, " \t\"(),:;<>[\\]") {
		return Address{}, fmt.Errorf("%w: bad local part %q", ErrMalformed, local)
	}
	a := Address{Local: asciiLower(local), Domain: domain}
	if i := strings.IndexAny(a.Local, asciiLower(delimiters)); i > 0 && splittable(a.Local) {
		a.Local, a.Extension = a.Local[:i], local[i:]
	}
	return a, nil
}

// splittable mirrors Postfix's split_addr(): the reserved names keep their delimiters.
func splittable(local string) bool {
	return local != "postmaster" && local != "mailer-daemon" &&
		!strings.HasPrefix(local, "owner-") && !strings.HasSuffix(local, "-request")
}

// Domain normalises a domain name: one trailing dot dropped, lower case, U-labels turned
// into A-labels (RFC 5891). An invalid name is ErrMalformed.
func Domain(s string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(s), ".")
	if d == "" || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return "", fmt.Errorf("%w: bad domain %q", ErrMalformed, s)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil || a == "" || len(a) > 253 || !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: bad domain %q", ErrMalformed, s)
	}
	// A name whose A-label form does not convert back to itself is not a valid IDN.
	if again, err := idna.Lookup.ToASCII(a); err != nil || !strings.EqualFold(again, a) {
		return "", fmt.Errorf("%w: bad domain %q", ErrMalformed, s)
	}
	return strings.ToLower(a), nil
}

// asciiLower folds ASCII letters only, so byte offsets stay valid in the original.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
