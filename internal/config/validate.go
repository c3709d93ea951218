package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern-mail/postern/internal/address"
	"github.com/postern-mail/postern/internal/ldapfilter"
)

// validate checks every key, normalises names and reads secret files, recording every
// problem rather than stopping at the first.
func (l *loader) validate(c *Config) {
	l.validateDomains(c)
	if strings.ContainsAny(c.RecipientDelimiter, "@ \t\"") {
		l.add("recipient_delimiter", "%q may not contain '@', quotes or white space", c.RecipientDelimiter)
	}
	if !filepath.IsAbs(c.StateDir) {
		l.add("state_dir", "%q must be an absolute path", c.StateDir)
	}
	l.validateDirectory(&c.Directory)
	l.validateTelemetry(c)
	l.validateRedis(c)
	l.validateTcptable(c)
	l.validatePolicyd(c)
	l.validateJournal(c)
	l.validateMilter(c)
	l.validateWelcome(c)
	l.validateLMTPShadow(c)
}

func (l *loader) validateDomains(c *Config) {
	if len(c.Domains) == 0 {
		l.add("domains", "list at least one accepted domain, e.g. [corp.example.test]")
	}
	primary := map[string]bool{}
	for i, d := range c.Domains {
		n, err := address.Domain(d)
		if err != nil {
			l.add(fmt.Sprintf("domains.%d", i), "%q is not a domain name", d)
			continue
		}
		c.Domains[i] = n
		primary[n] = true
	}
	aliases := make(map[string]string, len(c.DomainAliases))
	for alias, target := range c.DomainAliases {
		key := "domain_aliases." + alias
		a, err1 := address.Domain(alias)
		t, err2 := address.Domain(target)
		switch {
		case err1 != nil || err2 != nil:
			l.add(key, "%q -> %q: both must be domain names", alias, target)
		case primary[a]:
			l.add(key, "%q is also listed in domains; an alias domain maps to a primary one", alias)
		case !primary[t]:
			l.add(key, "target %q is not listed in domains", target)
		default:
			aliases[a] = t
		}
	}
	c.DomainAliases = aliases
}

func (l *loader) validateDirectory(d *Directory) {
	if d.Refresh <= 0 {
		l.add("directory.refresh", "must be positive, e.g. 60s")
	}
	if d.MaxStale < d.Refresh {
		l.add("directory.max_stale", "%s is shorter than directory.refresh (%s)", d.MaxStale.D(), d.Refresh.D())
	}
	if d.MaxDepth < 1 {
		l.add("directory.max_depth", "must be at least 1")
	}
	if d.MaxExpansion < 1 {
		l.add("directory.max_expansion", "must be at least 1")
	}
	switch d.Backend {
	case "static":
		if d.Static.File == "" {
			l.add("directory.static.file", "backend static needs a file (see examples/directory.yaml)")
			return
		}
		d.Static.File = l.path(d.Static.File)
		if _, err := os.Stat(d.Static.File); err != nil {
			l.add("directory.static.file", "%v", err)
		}
	case "ldap":
		l.validateLDAP(&d.LDAP)
	default:
		l.add("directory.backend", "%q is not a backend; use ldap or static", d.Backend)
	}
}

func (l *loader) validateLDAP(c *LDAP) {
	const k = "directory.ldap."
	if len(c.URLs) == 0 {
		l.add(k+"urls", "list at least one server, e.g. [ldaps://dc1.corp.example.test:636]")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
			l.add(fmt.Sprintf("%surls.%d", k, i), "%q is not an ldap:// or ldaps:// URL", raw)
		case u.Scheme == "ldap" && !c.StartTLS && !c.AllowPlaintext:
			l.add(fmt.Sprintf("%surls.%d", k, i), "%s would send the bind password in clear text; use ldaps://, or start_tls: true (allow_plaintext: true is for labs only)", raw)
		case u.Scheme == "ldaps" && c.StartTLS:
			l.add(k+"start_tls", "%s is already TLS; start_tls is for ldap:// URLs", raw)
		}
	}
	if c.CAFile != "" {
		c.CAFile = l.path(c.CAFile)
		if pem, err := os.ReadFile(c.CAFile); err != nil {
			l.add(k+"ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			l.add(k+"ca_file", "%s holds no PEM certificate", c.CAFile)
		}
	}
	if c.BaseDN == "" {
		l.add(k+"base_dn", `set the search base, e.g. "DC=corp,DC=example,DC=test"`)
	}
	if c.BindDN != "" {
		l.readSecret(k+"bind_password_file", &c.BindPasswordFile, &c.BindPassword)
	}
	if c.Timeout <= 0 {
		l.add(k+"timeout", "must be positive, e.g. 10s")
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		l.add(k+"page_size", "%d is outside 1..1000 (Active Directory returns at most 1000 entries a page)", c.PageSize)
	}
	for key, f := range map[string]string{"user_filter": c.UserFilter, "group_filter": c.GroupFilter, "contact_filter": c.ContactFilter} {
		if _, err := ldapfilter.Parse(f); err != nil {
			l.add(k+key, "%v", err)
		}
	}
}

// readSecret reads the file named by *path (made absolute) into *s.
func (l *loader) readSecret(key string, path *string, s *Secret) {
	if *path == "" {
		l.add(key, "required: a file holding the secret on one line, readable by _postern only")
		return
	}
	*path = l.path(*path)
	b, err := os.ReadFile(*path)
	if err != nil {
		l.add(key, "%v (create it, mode 0640, owner root:_postern)", err)
		return
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		l.add(key, "%s is empty", *path)
		return
	}
	*s = NewSecret(v)
}

func (l *loader) validateTelemetry(c *Config) {
	t := &c.Telemetry
	l.checkListen("telemetry.listen", t.Listen, c.AllowNonLoopback)
	switch t.LogFormat {
	case "auto", "json", "console":
	default:
		l.add("telemetry.log_format", "%q: use auto, json or console", t.LogFormat)
	}
	switch t.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.add("telemetry.log_level", "%q: use debug, info, warn or error", t.LogLevel)
	}
}

// checkListen refuses a listener other hosts can reach unless allow_non_loopback is set.
func (l *loader) checkListen(key string, ln Listen, allowNonLoopback bool) {
	if !ln.IsZero() && !ln.IsLoopback() && !allowNonLoopback {
		l.add(key, "%s can be reached from other hosts; listen on 127.0.0.1 or a unix socket, or set allow_non_loopback: true", ln)
	}
}
