package config

import (
	"strings"
	"text/template"
	"time"
)

// LMTPShadow configures `postern lmtp-shadow`: the LMTP server that receives the
// archive copies from Postfix and delivers them, envelope attached, into the store.
type LMTPShadow struct {
	Listen Listen `yaml:"listen"`
	Store  Store  `yaml:"store"`
	// Folder names the archive folder: a Go template over .Direction ("Outbound",
	// "Inbound", "Internal"), .Time and .Domain.
	Folder string `yaml:"folder"`
	// MissingFolder receives copies whose envelope is not in the journal.
	MissingFolder  string   `yaml:"missing_folder"`
	MaxMessageSize ByteSize `yaml:"max_message_size"`
	// Timeout bounds each delivery into the store.
	Timeout Duration `yaml:"timeout"`
}

// Store is the mailbox server the copies go into.
type Store struct {
	Kind              string `yaml:"kind"` // cyrus | dovecot
	LMTP              Listen `yaml:"lmtp"`
	IMAP              Listen `yaml:"imap"`
	AdminUser         string `yaml:"admin_user"`
	AdminPasswordFile string `yaml:"admin_password_file"`
	AdminPassword     Secret `yaml:"-"`
	// Poster is the identity given as MAIL FROM AUTH= (RFC 4954); Cyrus files a copy in
	// a folder only if this identity has the "p" right there, which postern grants when
	// it creates the folder.
	Poster string `yaml:"poster"`
}

// Enabled reports whether lmtp-shadow has anything to listen on.
func (s LMTPShadow) Enabled() bool { return !s.Listen.IsZero() }

// FolderTemplate parses the folder template (validated at load).
func (s LMTPShadow) FolderTemplate() *template.Template {
	return template.Must(template.New("folder").Option("missingkey=error").Parse(s.Folder))
}

func lmtpShadowDefaults() LMTPShadow {
	return LMTPShadow{
		Folder:         `{{.Direction}}/{{.Time.Format "2006/01"}}`,
		MissingFolder:  `Unjournaled/{{.Time.Format "2006/01"}}`,
		MaxMessageSize: 100 << 20,
		Timeout:        Duration(60 * time.Second),
		Store:          Store{Kind: "cyrus", Poster: "postern"},
	}
}

func (l *loader) validateLMTPShadow(c *Config) {
	s := &c.LMTPShadow
	const k = "lmtp_shadow."
	l.checkListen(k+"listen", s.Listen, c.AllowNonLoopback)
	if !s.Enabled() {
		return
	}
	for key, tpl := range map[string]string{"folder": s.Folder, "missing_folder": s.MissingFolder} {
		t, err := template.New(key).Option("missingkey=error").Parse(tpl)
		if err != nil {
			l.add(k+key, "%v", err)
			continue
		}
		var b strings.Builder
		if err := t.Execute(&b, struct {
			Direction, Domain string
			Time              time.Time
		}{"Outbound", "corp.example.test", time.Now()}); err != nil || b.Len() == 0 {
			l.add(k+key, "%q does not render a folder name: %v (fields: .Direction .Time .Domain)", tpl, err)
		}
	}
	switch s.Store.Kind {
	case "cyrus", "dovecot":
	default:
		l.add(k+"store.kind", "%q: use cyrus or dovecot", s.Store.Kind)
	}
	if s.Store.LMTP.IsZero() {
		l.add(k+"store.lmtp", "set the store's LMTP address, e.g. inet:127.0.0.1:24")
	}
	if s.Store.Kind == "cyrus" {
		if s.Store.IMAP.IsZero() {
			l.add(k+"store.imap", "set the store's IMAP address, to create archive folders")
		}
		if s.Store.AdminUser == "" {
			l.add(k+"store.admin_user", "set the Cyrus admin that creates the archive folders")
		}
		l.readSecret(k+"store.admin_password_file", &s.Store.AdminPasswordFile, &s.Store.AdminPassword)
	}
	if s.MaxMessageSize <= 0 {
		l.add(k+"max_message_size", "must be positive, e.g. 100MB")
	}
}
