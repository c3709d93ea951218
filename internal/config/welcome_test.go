package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWelcomeConfig(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"directory.yaml": "users: []\n",
		"welcome.html":   "<p>Hello {{.DisplayName}}</p>\n",
		"welcome.txt":    "Hello {{.DisplayName}}\n",
		"broken.html":    "<p>{{.DisplayName</p>\n",
		"smtp.secret":    "Welcome-Passw0rd\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const base = `domains: [corp.example.test]
state_dir: /var/lib/postern
directory:
  backend: static
  static: {file: directory.yaml}
`
	const good = `welcome:
  from: "IT Service Desk <it@corp.example.test>"
  html_template_file: welcome.html
  text_template_file: welcome.txt
  smtp: {server: "127.0.0.1:587", starttls: true, username: welcome@corp.example.test, password_file: smtp.secret}
`
	tests := []struct {
		name string
		body string
		want []string // every problem, reported at once; none for a valid configuration
	}{
		{"no welcome section", "", nil},
		{"valid", good, nil},
		{"every problem at once", `welcome:
  from: "not an address"
  subject: "{{.DisplayName"
  html_template_file: broken.html
  text_template_file: missing.txt
  groups: [""]
  ous: ["not a DN"]
  lookback: -1h
  smtp: {server: "127.0.0.1", starttls: true, tls: true, password_file: smtp.secret}
`, []string{"welcome.from", "welcome.subject", "welcome.html_template_file", "welcome.text_template_file: open",
			"welcome.groups.0", "welcome.ous.0", "welcome.lookback", "welcome.smtp.server", "welcome.smtp.tls: choose one",
			"welcome.smtp.username: password_file is set"}},
		{"plaintext needs consent", strings.Replace(good, "starttls: true", "starttls: false", 1),
			[]string{"welcome.smtp.starttls: set starttls: true"}},
		{"an unknown key", good + "  subjekt: x\n", []string{"welcome.subjekt: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "postern.yaml"), []byte(base+tt.body))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", c.Welcome)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the errors lack %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestWelcomeDefaults(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"welcome.html", "welcome.txt", "directory.yaml", "smtp.secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("Welcome-Passw0rd"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse(filepath.Join(dir, "postern.yaml"), []byte(`domains: [corp.example.test]
state_dir: /var/lib/postern
directory: {backend: static, static: {file: directory.yaml}}
welcome:
  from: "IT <it@corp.example.test>"
  html_template_file: welcome.html
  text_template_file: welcome.txt
  smtp: {server: "127.0.0.1:465", tls: true, username: w@corp.example.test, password_file: smtp.secret}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Welcome
	if w.EnvelopeFrom != "it@corp.example.test" || w.Subject == "" || w.Lookback.D() != 14*24*time.Hour ||
		w.SMTP.Timeout.D() != 30*time.Second || w.ImagesDir != dir || w.LedgerFile() != "/var/lib/postern/welcome.json" ||
		w.MetricsFile != "/var/lib/postern/welcome.prom" || w.HTMLTemplateFile != filepath.Join(dir, "welcome.html") {
		t.Errorf("defaults: %+v", w)
	}
	if w.SMTP.Password.Reveal() != "Welcome-Passw0rd" || strings.Contains(c.Effective(), "Welcome-Passw0rd") {
		t.Error("the effective configuration shows the SMTP password")
	}
}

// A configuration named by a relative path (postern -c examples/postern.yaml) anchors
// its relative paths at its own folder, once.
func TestWelcomeRelativePaths(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "examples")
	if err := os.MkdirAll(filepath.Join(sub, "welcome"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"welcome/welcome.html", "welcome/welcome.txt", "directory.yaml"} {
		if err := os.WriteFile(filepath.Join(sub, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	c, err := Parse("examples/postern.yaml", []byte(`domains: [corp.example.test]
directory: {backend: static, static: {file: directory.yaml}}
welcome:
  from: it@corp.example.test
  html_template_file: welcome/welcome.html
  text_template_file: welcome/welcome.txt
  smtp: {server: "127.0.0.1:25", allow_plaintext: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Welcome.ImagesDir != filepath.Join("examples", "welcome") || c.Welcome.HTMLTemplateFile != filepath.Join("examples", "welcome", "welcome.html") {
		t.Errorf("images_dir %q, html_template_file %q", c.Welcome.ImagesDir, c.Welcome.HTMLTemplateFile)
	}
}
