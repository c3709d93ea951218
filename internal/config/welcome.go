package config

import (
	"fmt"
	htmltemplate "html/template"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Welcome configures `postern welcome`: a letter for every new directory user, rendered
// from templates and submitted over SMTP, once.
type Welcome struct {
	// From is the letter's author, e.g. "IT Service Desk <it@corp.example.test>".
	From string `yaml:"from"`
	// EnvelopeFrom is the SMTP MAIL FROM (where bounces go); default: From's address.
	EnvelopeFrom string `yaml:"envelope_from"`
	// Subject is a text/template over the same data as the bodies.
	Subject          string `yaml:"subject"`
	HTMLTemplateFile string `yaml:"html_template_file"`
	TextTemplateFile string `yaml:"text_template_file"`
	// ImagesDir holds the files the HTML refers to as cid:NAME; default: the HTML
	// template's folder.
	ImagesDir string      `yaml:"images_dir"`
	SMTP      WelcomeSMTP `yaml:"smtp"`
	// StateDir holds the ledger (welcome.json) and its lock; default: the top-level state_dir.
	StateDir string `yaml:"state_dir"`
	// MetricsFile is the Prometheus textfile (node_exporter's textfile collector);
	// default: state_dir/welcome.prom.
	MetricsFile string `yaml:"metrics_file"`
	// Groups limits letters to members (nested too) of any of these groups, by name or DN.
	Groups []string `yaml:"groups"`
	// OUs limits letters to users at or below any of these DNs.
	OUs []string `yaml:"ous"`
	// Lookback is how far before the newest account a run still looks for users without a
	// letter: it absorbs replication delay, clock skew and equal whenCreated seconds, and
	// lets an account created disabled get its letter once enabled within this time.
	Lookback Duration `yaml:"lookback"`
}

// WelcomeSMTP is where the letters are submitted: Postfix's submission service.
type WelcomeSMTP struct {
	Server         string   `yaml:"server"`   // host:port
	StartTLS       bool     `yaml:"starttls"` // port 587
	TLS            bool     `yaml:"tls"`      // implicit TLS, port 465
	CAFile         string   `yaml:"ca_file"`  // default: the system's roots
	ServerName     string   `yaml:"server_name"`
	AllowPlaintext bool     `yaml:"allow_plaintext"` // neither TLS nor STARTTLS: labs only
	Username       string   `yaml:"username"`
	PasswordFile   string   `yaml:"password_file"`
	Password       Secret   `yaml:"-"`
	HeloName       string   `yaml:"helo_name"` // default: the host name
	Timeout        Duration `yaml:"timeout"`   // every SMTP command's deadline
}

// Enabled reports whether the configuration sets up welcome letters at all.
func (w Welcome) Enabled() bool {
	return w.From != "" || w.HTMLTemplateFile != "" || w.TextTemplateFile != ""
}

// LedgerFile is the sent-ledger; LockFile keeps two runs from overlapping.
func (w Welcome) LedgerFile() string { return filepath.Join(w.StateDir, "welcome.json") }

// LockFile is held (flock) for the whole of a run that may send.
func (w Welcome) LockFile() string { return filepath.Join(w.StateDir, "welcome.lock") }

const (
	welcomeDefaultSubject  = "Welcome, {{.DisplayName}}"
	welcomeDefaultLookback = Duration(14 * 24 * time.Hour)
	welcomeDefaultTimeout  = Duration(30 * time.Second)
)

// validateWelcome fills the defaults and, when the section is used, checks every key.
func (l *loader) validateWelcome(c *Config) {
	w := &c.Welcome
	if w.Subject == "" {
		w.Subject = welcomeDefaultSubject
	}
	if w.Lookback == 0 {
		w.Lookback = welcomeDefaultLookback
	}
	if w.SMTP.Timeout == 0 {
		w.SMTP.Timeout = welcomeDefaultTimeout
	}
	if w.StateDir == "" {
		w.StateDir = c.StateDir
	}
	w.StateDir = l.path(w.StateDir)
	if w.MetricsFile == "" {
		w.MetricsFile = filepath.Join(w.StateDir, "welcome.prom")
	} else {
		w.MetricsFile = l.path(w.MetricsFile)
	}
	if !w.Enabled() {
		return
	}
	const k = "welcome."
	if a, err := mail.ParseAddress(w.From); err != nil {
		l.add(k+"from", "%q is not one address, e.g. \"IT Service Desk <it@corp.example.test>\": %v", w.From, err)
	} else if w.EnvelopeFrom == "" {
		w.EnvelopeFrom = a.Address
	}
	if _, err := mail.ParseAddress(w.EnvelopeFrom); w.EnvelopeFrom != "" && err != nil {
		l.add(k+"envelope_from", "%q is not an address: %v", w.EnvelopeFrom, err)
	}
	if _, err := texttemplate.New("subject").Parse(w.Subject); err != nil {
		l.add(k+"subject", "%v", err)
	}
	l.welcomeTemplate(k+"html_template_file", &w.HTMLTemplateFile, true)
	l.welcomeTemplate(k+"text_template_file", &w.TextTemplateFile, false)
	if w.ImagesDir != "" {
		w.ImagesDir = l.path(w.ImagesDir)
	} else if w.HTMLTemplateFile != "" {
		w.ImagesDir = filepath.Dir(w.HTMLTemplateFile) // already made absolute
	}
	if fi, err := os.Stat(w.ImagesDir); w.ImagesDir != "" && (err != nil || !fi.IsDir()) {
		l.add(k+"images_dir", "%q is not a folder", w.ImagesDir)
	}
	if !filepath.IsAbs(w.StateDir) {
		l.add(k+"state_dir", "%q must be an absolute path", w.StateDir)
	}
	if w.Lookback < 0 {
		l.add(k+"lookback", "must be positive, e.g. 14d")
	}
	for i, g := range w.Groups {
		if strings.TrimSpace(g) == "" {
			l.add(fmt.Sprintf("%sgroups.%d", k, i), "empty group name")
		}
	}
	for i, ou := range w.OUs {
		if _, err := ldap.ParseDN(ou); err != nil || strings.TrimSpace(ou) == "" {
			l.add(fmt.Sprintf("%sous.%d", k, i), "%q is not a DN, e.g. \"OU=Staff,DC=corp,DC=example,DC=test\"", ou)
		}
	}
	l.validateWelcomeSMTP(&w.SMTP)
}

// welcomeTemplate checks that a template file exists and parses; the job renders it
// against a sample user at start, which finds the errors only execution can.
func (l *loader) welcomeTemplate(key string, path *string, html bool) {
	if *path == "" {
		l.add(key, "required: the letter's template (see /usr/share/doc/postern/examples/welcome/)")
		return
	}
	*path = l.path(*path)
	b, err := os.ReadFile(*path)
	if err != nil {
		l.add(key, "%v", err)
		return
	}
	if html {
		_, err = htmltemplate.New(filepath.Base(*path)).Parse(string(b))
	} else {
		_, err = texttemplate.New(filepath.Base(*path)).Parse(string(b))
	}
	if err != nil {
		l.add(key, "%v", err)
	}
}

func (l *loader) validateWelcomeSMTP(s *WelcomeSMTP) {
	const k = "welcome.smtp."
	if host, port, err := net.SplitHostPort(s.Server); err != nil || host == "" || port == "" {
		l.add(k+"server", "%q: use HOST:PORT, e.g. 127.0.0.1:587 (submission) or :465 with tls: true", s.Server)
	}
	switch {
	case s.StartTLS && s.TLS:
		l.add(k+"tls", "choose one: starttls (port 587) or tls (implicit TLS, port 465)")
	case !s.StartTLS && !s.TLS && !s.AllowPlaintext:
		l.add(k+"starttls", "set starttls: true (port 587) or tls: true (port 465); allow_plaintext: true is for labs only")
	}
	if s.CAFile != "" {
		s.CAFile = l.path(s.CAFile)
		if _, err := os.ReadFile(s.CAFile); err != nil {
			l.add(k+"ca_file", "%v", err)
		}
	}
	if s.Username != "" {
		l.readSecret(k+"password_file", &s.PasswordFile, &s.Password)
	} else if s.PasswordFile != "" {
		l.add(k+"username", "password_file is set but username is not")
	}
	if s.Timeout < 0 {
		l.add(k+"timeout", "must be positive, e.g. 30s")
	}
}
