package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/ldapfilter"
)

// LDAPSource reads users, groups and contacts from Active Directory (or any LDAP server
// whose attribute names are configured) with paged searches (RFC 2696).
type LDAPSource struct {
	cfg config.LDAP
	tls *tls.Config // nil for plain ldap:// without StartTLS
}

// NewLDAPSource prepares a source from validated configuration.
func NewLDAPSource(c config.LDAP) (*LDAPSource, error) {
	s := &LDAPSource{cfg: c}
	if c.CAFile != "" || c.ServerName != "" || c.StartTLS || hasLDAPS(c.URLs) {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldap: %w (check directory.ldap.ca_file)", err)
			}
			s.tls.RootCAs = x509.NewCertPool()
			if !s.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldap: %s holds no PEM certificate (check directory.ldap.ca_file)", c.CAFile)
			}
		}
	}
	return s, nil
}

func hasLDAPS(urls []string) bool {
	for _, u := range urls {
		if strings.HasPrefix(strings.ToLower(u), "ldaps://") {
			return true
		}
	}
	return false
}

// Name identifies the source.
func (s *LDAPSource) Name() string {
	return "ldap " + strings.Join(s.cfg.URLs, ",") + " " + s.cfg.BaseDN
}

// Fetch connects to the first server that answers and reads the whole directory.
func (s *LDAPSource) Fetch(ctx context.Context) ([]*Object, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // a cancelled sync aborts the search
	defer stop()
	a := s.cfg.Attributes
	var objs []*Object
	for _, q := range []struct {
		kind   Kind
		filter string
		attrs  []string
	}{
		{User, s.cfg.UserFilter, append(nonEmpty(a.Login, a.UPN, a.Mail, a.ProxyAddresses, a.MemberOf, a.AccountControl, a.Created, a.Forward, a.GUID), a.Person...)},
		{Group, s.cfg.GroupFilter, []string{a.GroupName, "cn", a.Mail, a.ProxyAddresses, a.Member, a.MemberOf}},
		{Contact, s.cfg.ContactFilter, []string{"cn", a.Mail, a.ProxyAddresses, a.TargetAddress, a.MemberOf}},
	} {
		entries, err := s.search(ctx, conn, q.filter, q.attrs)
		if err != nil {
			return nil, fmt.Errorf("ldap: search %ss under %s: %w", q.kind, s.cfg.BaseDN, err)
		}
		for _, e := range entries {
			objs = append(objs, s.object(q.kind, e))
		}
	}
	return objs, nil
}

// connect tries each URL in order and returns the first bound connection; the error
// names every server tried and why it failed.
func (s *LDAPSource) connect(ctx context.Context) (*ldap.Conn, error) {
	var errs []error
	for _, u := range s.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		conn, err := s.dial(u)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (s *LDAPSource) dial(rawURL string) (*ldap.Conn, error) {
	timeout := s.cfg.Timeout.D()
	tlsCfg := s.tlsFor(rawURL)
	conn, err := ldap.DialURL(rawURL, ldap.DialWithDialer(&net.Dialer{Timeout: timeout}), ldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("ldap: connect to %s: %w%s", rawURL, err, tlsHint(err))
	}
	conn.SetTimeout(timeout)
	if s.cfg.StartTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("ldap: StartTLS with %s: %w%s", rawURL, err, tlsHint(err))
		}
	}
	if s.cfg.BindDN != "" {
		if err := conn.Bind(s.cfg.BindDN, s.cfg.BindPassword.Reveal()); err != nil {
			conn.Close()
			hint := ""
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				hint = " (check directory.ldap.bind_dn and bind_password_file)"
			}
			return nil, fmt.Errorf("ldap: bind to %s as %s: %w%s", rawURL, s.cfg.BindDN, err, hint)
		}
	}
	return conn, nil
}

// tlsFor returns the TLS settings for one URL: the configured server name, or the URL's
// host when none is configured.
func (s *LDAPSource) tlsFor(rawURL string) *tls.Config {
	if s.tls == nil {
		return nil
	}
	c := s.tls.Clone()
	if c.ServerName == "" {
		if u, err := url.Parse(rawURL); err == nil {
			c.ServerName = u.Hostname()
		}
	}
	return c
}

func tlsHint(err error) string {
	const (
		caHint      = " (the server's certificate is not signed by directory.ldap.ca_file)"
		nameHint    = " (set directory.ldap.server_name to the name in the server's certificate)"
		invalidHint = " (the server's certificate is invalid or expired)"
	)
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return caHint
	case errors.As(err, &badName):
		return nameHint
	case errors.As(err, &invalid):
		return invalidHint
	}
	// go-ldap's StartTLS keeps only the text of the handshake error ("TLS handshake
	// failed (%v)"), so there the types are gone: match the words of crypto/x509.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "x509: certificate signed by unknown authority"):
		return caHint
	case strings.Contains(msg, "x509: certificate is valid for "),
		strings.Contains(msg, "x509: certificate is not valid for any names"),
		strings.Contains(msg, "x509: cannot validate certificate for "),
		strings.Contains(msg, "x509: certificate relies on legacy Common Name field"):
		return nameHint
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return invalidHint
	}
	return ""
}

// search runs one paged subtree search. Search continuation references (AD's
// Configuration and DomainDnsZones partitions) are ignored, never chased.
func (s *LDAPSource) search(ctx context.Context, conn *ldap.Conn, filter string, attrs []string) ([]*ldap.Entry, error) {
	f, err := ldapfilter.Parse(filter)
	if err != nil {
		return nil, err
	}
	paging := ldap.NewControlPaging(uint32(s.cfg.PageSize))
	req := ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(s.cfg.Timeout.D()/time.Second), false, f.String(), attrs, []ldap.Control{paging})
	var entries []*ldap.Entry
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := conn.Search(req)
		if err != nil {
			return nil, err
		}
		entries = append(entries, res.Entries...)
		next, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(next.Cookie) == 0 {
			return entries, nil
		}
		paging.SetCookie(next.Cookie)
	}
}

// object maps one entry to the model, reading AD's conventions: proxyAddresses typed
// "SMTP:" (primary) and "smtp:" (secondary), other types ignored; userAccountControl's
// ACCOUNTDISABLE bit; targetAddress of contacts.
func (s *LDAPSource) object(kind Kind, e *ldap.Entry) *Object {
	a := s.cfg.Attributes
	o := &Object{DN: e.DN, Kind: kind, MemberOf: e.GetEqualFoldAttributeValues(a.MemberOf)}
	o.Primary, o.Addresses = proxyAddresses(e.GetEqualFoldAttributeValues(a.ProxyAddresses))
	if mail := e.GetEqualFoldAttributeValue(a.Mail); mail != "" {
		if o.Primary == "" {
			o.Primary = mail
		} else {
			o.Addresses = append(o.Addresses, mail)
		}
	}
	switch kind {
	case User:
		o.Login = e.GetEqualFoldAttributeValue(a.Login)
		o.UPN = e.GetEqualFoldAttributeValue(a.UPN)
		uac, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue(a.AccountControl), 10, 64)
		o.Disabled = uac&0x2 != 0 // ADS_UF_ACCOUNTDISABLE
		o.Forward = e.GetEqualFoldAttributeValue(a.Forward)
		if a.GUID != "" {
			o.GUID = guidString(e.GetEqualFoldRawAttributeValue(a.GUID))
		}
		if t, err := ber.ParseGeneralizedTime([]byte(e.GetEqualFoldAttributeValue(a.Created))); err == nil {
			o.Created = t.UTC()
		}
		o.Attrs = map[string]string{}
		for _, name := range a.Person {
			if v := e.GetEqualFoldAttributeValue(name); v != "" {
				o.Attrs[name] = v
			}
		}
	case Group:
		o.Name = e.GetEqualFoldAttributeValue(a.GroupName)
		if o.Name == "" {
			o.Name = e.GetEqualFoldAttributeValue("cn")
		}
		o.Members = e.GetEqualFoldAttributeValues(a.Member)
	case Contact:
		o.Name = e.GetEqualFoldAttributeValue("cn")
		o.Target = stripType(e.GetEqualFoldAttributeValue(a.TargetAddress))
		if o.Target == "" {
			o.Target = e.GetEqualFoldAttributeValue(a.Mail)
		}
		o.Primary, o.Addresses = "", append(o.Addresses, o.Primary) // a contact's own addresses are aliases of its target
	}
	return o
}

// proxyAddresses splits AD's typed values; untyped values (plain LDAP directories) count
// as secondary addresses.
func proxyAddresses(values []string) (primary string, secondary []string) {
	for _, v := range values {
		typ, addr, typed := strings.Cut(v, ":")
		switch {
		case !typed || strings.Contains(typ, "@"):
			secondary = append(secondary, v)
		case typ == "SMTP":
			if primary == "" {
				primary = addr
			} else {
				secondary = append(secondary, addr)
			}
		case strings.EqualFold(typ, "smtp"):
			secondary = append(secondary, addr)
		}
	}
	return primary, secondary
}

// stripType removes an AD address type ("SMTP:") from a value.
func stripType(v string) string {
	if typ, addr, ok := strings.Cut(v, ":"); ok && !strings.Contains(typ, "@") {
		return addr
	}
	return v
}

// guidString formats AD's 16-byte objectGUID the way AD tools print it (the first three
// fields little-endian); a textual value (OpenLDAP's entryUUID) is kept as it is.
func guidString(b []byte) string {
	if len(b) == 16 {
		return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]),
			binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
	}
	if utf8.Valid(b) {
		return strings.ToLower(strings.TrimSpace(string(b)))
	}
	return ""
}

// nonEmpty drops unset attribute names, so an attribute turned off ("") is not requested.
func nonEmpty(names ...string) []string {
	out := names[:0]
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
