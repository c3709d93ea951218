package welcome

import (
	"bytes"
	"errors"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
)

// renderFor renders the shipped templates for one user of a small snapshot.
func renderFor(t *testing.T, cfg config.Welcome, o *directory.Object, others ...*directory.Object) *Letter {
	t.Helper()
	tpl, err := loadTemplates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap := directory.NewSnapshot(append([]*directory.Object{o}, others...), t0, "test")
	l, err := tpl.render(recipientOf(snap, o), ledgerKey(o), 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLetterIsWellFormedMIME(t *testing.T) {
	cfg := welcomeConfig(t, plainSMTP("127.0.0.1:1"), "")
	boss := person("li", "李娜", t0, "givenName", "娜")
	o := person("zhang", "张伟 <script>alert(1)</script>", t0,
		"givenName", "伟", "department", "R&D 研发部", "title", `Engineer "Backend"`,
		"manager", boss.DN, "employeeID", "E-1234")
	l := renderFor(t, cfg, o, boss)
	p := parseLetter(t, l.Raw)

	if want := "Welcome to Corp, 张伟 <script>alert(1)</script> · 欢迎加入"; p.Subject != want {
		t.Errorf("Subject %q, want %q", p.Subject, want)
	}
	if len(p.To) != 1 || p.To[0].Address != "zhang@corp.example.test" || p.To[0].Name != "张伟 <script>alert(1)</script>" {
		t.Errorf("To %v", p.To)
	}
	if !slices.Equal(p.Types, []string{"multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"}) {
		t.Errorf("MIME structure %v", p.Types)
	}
	logo, _ := os.ReadFile(filepath.Join(examples(t), "logo.png"))
	if !bytes.Equal(p.Images["logo.png@welcome"], logo) || !strings.Contains(p.HTML, `src="cid:logo.png@welcome"`) {
		t.Errorf("inline image: %d bytes under Content-ID <logo.png@welcome> (want %d), images %v", len(p.Images["logo.png@welcome"]), len(logo), keys(p.Images))
	}
	for _, want := range []string{"欢迎加入，张伟 &lt;script&gt;alert(1)&lt;/script&gt;！", "R&amp;D 研发部", "Engineer &#34;Backend&#34;",
		"李娜", `href="mailto:li@corp.example.test"`} {
		if !strings.Contains(p.HTML, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(p.HTML, "<script>") {
		t.Error("HTML holds an unescaped directory value")
	}
	for _, want := range []string{"欢迎加入，张伟 <script>alert(1)</script>！", "Welcome aboard, 伟!", "Sign-in name · 登录名   zhang", "Manager · 直属上级      李娜 <li@corp.example.test>"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, p.Text)
		}
	}
	if p.Header.Get("Auto-Submitted") != "auto-generated" || p.Header.Get("MIME-Version") != "1.0" {
		t.Errorf("headers %v", p.Header.Map())
	}
	checkWire(t, l.Raw)
}

// checkWire checks the bytes a server receives: 7-bit, CRLF line ends only, header lines
// folded within 78 columns and body lines within 76 (quoted-printable and base64).
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if i := bytes.IndexFunc(raw, func(r rune) bool { return r > 127 }); i >= 0 {
		t.Errorf("8-bit byte at %d", i)
	}
	if bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("a line end other than CRLF")
	}
	header, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range bytes.Split(header, []byte("\r\n")) {
		if len(line) > 78 {
			t.Errorf("header line of %d characters: %s", len(line), line)
		}
	}
	for _, line := range bytes.Split(body, []byte("\r\n")) {
		if len(line) > 76 && !bytes.Contains(line, []byte("boundary=")) {
			t.Errorf("body line of %d characters: %s", len(line), line)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestEncodeText(t *testing.T) {
	tests := []struct{ in, plain string }{
		{"Welcome to Corp, Alice", "Welcome to Corp, Alice"},
		{"Welcome to Corp, 张伟 · 欢迎加入", "Welcome to Corp,"},
		{"Willkommen, Jürgen Dvořák!", "Willkommen,"},
		{"looks =?utf-8?q?encoded?= but is not", "looks"},
		{strings.Repeat("欢迎加入我们的团队 ", 12), ""},
	}
	dec := mime.WordDecoder{}
	for _, tt := range tests {
		enc := encodeText(tt.in)
		got, err := dec.DecodeHeader(enc)
		if err != nil || got != strings.Join(strings.Fields(tt.in), " ") {
			t.Errorf("encodeText(%q) = %q, decodes to %q, %v", tt.in, enc, got, err)
		}
		if !strings.HasPrefix(enc, tt.plain) {
			t.Errorf("encodeText(%q) = %q: ASCII words should stay readable", tt.in, enc)
		}
		for _, w := range strings.Fields(enc) {
			if len(w) > 75 {
				t.Errorf("encoded word of %d characters (RFC 2047 allows 75): %s", len(w), w)
			}
		}
	}
}

func TestLetterWithoutImagesHasNoRelatedPart(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "plain.html", `<p>Hello {{.DisplayName}}</p>`)
	write(t, dir, "plain.txt", `Hello {{.DisplayName}}`)
	cfg := welcomeConfig(t, plainSMTP("127.0.0.1:1"), "")
	cfg.HTMLTemplateFile, cfg.TextTemplateFile, cfg.ImagesDir = filepath.Join(dir, "plain.html"), filepath.Join(dir, "plain.txt"), dir
	p := parseLetter(t, renderFor(t, cfg, person("dan", "Dan", t0)).Raw)
	if !slices.Equal(p.Types, []string{"multipart/alternative", "text/plain", "text/html"}) || p.HTML != "<p>Hello Dan</p>" {
		t.Errorf("structure %v, HTML %q", p.Types, p.HTML)
	}
}

func TestHeaderInjectionIsFolded(t *testing.T) {
	cfg := welcomeConfig(t, plainSMTP("127.0.0.1:1"), "")
	l := renderFor(t, cfg, person("eve", "Eve\r\nBcc: victim@example.org", t0))
	p := parseLetter(t, l.Raw)
	if p.Header.Get("Bcc") != "" || !strings.Contains(p.Subject, "Eve Bcc: victim@example.org") {
		t.Errorf("a display name with a line break added a header: Bcc %q, Subject %q", p.Header.Get("Bcc"), p.Subject)
	}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Template and image problems are configuration errors found by New, before any
// directory or SMTP work.
func TestTemplateProblemsAreConfigErrors(t *testing.T) {
	logo, err := os.ReadFile(filepath.Join(examples(t), "logo.png"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, html, want string
		files            map[string][]byte
	}{
		{"missing image", `<img src="cid:banner.png@welcome">`, "banner.png", nil},
		{"not an image", `<img src="cid:fake.png@welcome">`, "not image/png", map[string][]byte{"fake.png": []byte("<html>not a png</html>")}},
		{"unknown kind", `<img src="cid:logo.bmp@welcome">`, "not a png", map[string][]byte{"logo.bmp": logo}},
		{"path in cid", `<img src="cid:..%2Fsecret.png@welcome">`, "name a file in images_dir", nil},
		{"unknown field", `<p>{{.Nickname}}</p>`, "Nickname", nil},
		{"svg is fine", `<img src="cid:logo.svg@welcome">`, "", map[string][]byte{"logo.svg": []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`)}},
		{"png is fine", `<img src="cid:logo.png@w"><img src="CID:logo.png@w">`, "", map[string][]byte{"logo.png": logo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := welcomeConfig(t, plainSMTP("127.0.0.1:1"), "")
			cfg.HTMLTemplateFile, cfg.ImagesDir = write(t, dir, "t.html", tt.html), dir
			for name, b := range tt.files {
				write(t, dir, name, string(b))
			}
			_, err := New(Options{Config: cfg, Directory: nil})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want a configuration error naming %q", err, tt.want)
			}
		})
	}
}

func TestRecipientData(t *testing.T) {
	boss := person("li", "", t0)
	snap := directory.NewSnapshot([]*directory.Object{
		person("ann", "", t0, "givenName", "Ann", "sn", "Arden", "manager", boss.DN, "preferredLanguage", "zh-CN"),
		person("bo", "", t0), boss, group("Staff"),
	}, t0, "test")
	tests := []struct {
		login             string
		display, language string
		manager           string
	}{
		{"ann", "Ann Arden", "zh-CN", "li"}, // no displayName: given name and surname; a manager without one: the login
		{"bo", "bo", "", ""},
	}
	for _, tt := range tests {
		o := snap.ByLogin(tt.login)
		o.Attrs["displayName"] = ""
		r := recipientOf(snap, o)
		if r.DisplayName != tt.display || r.Language != tt.language || r.Manager != tt.manager || r.Created != t0 {
			t.Errorf("%s: %+v", tt.login, r)
		}
	}
}

func TestMessageIDIsStablePerUserAndSend(t *testing.T) {
	a, b := messageID("guid:1", 0, "it@corp.example.test"), messageID("guid:1", 0, "it@corp.example.test")
	c, d := messageID("guid:1", 1, "it@corp.example.test"), messageID("guid:2", 0, "it@corp.example.test")
	if a != b || a == c || a == d || !strings.HasSuffix(a, "@corp.example.test") || strings.Contains(a, "guid") {
		t.Errorf("message IDs %s %s %s %s", a, b, c, d)
	}
}
