package milter

import (
	htmltemplate "html/template"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/postern-mail/postern/internal/directory"
)

func parseText(src string) (executor, error) {
	return texttemplate.New("t").Option("missingkey=zero").Parse(src)
}

func parseHTML(src string) (executor, error) {
	return htmltemplate.New("t").Option("missingkey=zero").Parse(src)
}

func TestLineTemplate(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		parse func(string) (executor, error)
		data  map[string]string
		want  string
	}{
		{"empty field line dropped", "{{.name}}\nMobile: {{.mobile}}\nPhone: {{.phone}}\n", parseText,
			map[string]string{"name": "Bob", "phone": "1"}, "Bob\nPhone: 1\n"},
		{"line with one of two fields kept", "{{.title}} | {{.department}}\n", parseText,
			map[string]string{"department": "Sales"}, " | Sales\n"},
		{"all fields of a line empty", "{{.title}} | {{.department}}\nend\n", parseText,
			map[string]string{}, "end\n"},
		{"static lines stay", "-- \n{{.mobile}}\nCorp\n", parseText, map[string]string{}, "-- \nCorp\n"},
		{"control lines stay, their bodies may go",
			"{{if .mobile}}\nMobile: {{.mobile}}\n{{end}}\nx\n", parseText, map[string]string{}, "\nx\n"},
		{"piped field", "{{.name | html}}\n{{.mobile | html}}\n", parseText,
			map[string]string{"name": "A&B"}, "A&amp;B\n"},
		{"missing last newline", "{{.a}}\n{{.b}}", parseText, map[string]string{"a": "x"}, "x\n"},
		{"html escapes directory values", "<b>{{.title}}</b><br>\n<i>{{.mobile}}</i><br>\n", parseHTML,
			map[string]string{"title": `CEO <script>alert(1)</script> & "Founder"`},
			"<b>CEO &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Founder&#34;</b><br>\n"},
		{"html attribute", `<a href="tel:{{.phone}}">{{.phone}}</a>` + "\n", parseHTML,
			map[string]string{"phone": "+49 30"}, `<a href="tel:&#43;49%2030">&#43;49 30</a>` + "\n"},
		{"action across lines is never dropped", "{{.a\n}}\nb\n", parseText, map[string]string{}, "\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt, err := newLineTemplate(tt.src, tt.parse)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second run uses the cached variant
				got, err := lt.render(tt.data)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestSignatureFromDirectory(t *testing.T) {
	sig, err := loadSignature("testdata/signature.html.tmpl", "testdata/signature.txt.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	bob := &directory.Object{Login: "bob", Primary: "bob@corp.example.test", Attrs: map[string]string{
		"displayName": "Bob <b>Brown</b>", "title": "Sales", "mobile": "+49 170\r\nBcc: evil@example.org\u202e",
	}}
	r, err := sig.render(bob)
	if err != nil {
		t.Fatal(err)
	}
	wantText := "-- \nBob <b>Brown</b>\nSales | \nMobile: +49 170  Bcc: evil@example.org\n"
	if r.Text != wantText {
		t.Errorf("text:\n%q\nwant\n%q", r.Text, wantText)
	}
	for _, bad := range []string{"<b>Brown</b>", "\r", "Phone:", "\u202e"} {
		if strings.Contains(r.HTML, bad) {
			t.Errorf("html has %q:\n%s", bad, r.HTML)
		}
	}
	if !strings.Contains(r.HTML, "Bob &lt;b&gt;Brown&lt;/b&gt;") {
		t.Errorf("html does not escape the name:\n%s", r.HTML)
	}
}

func TestCleanValue(t *testing.T) {
	for in, want := range map[string]string{
		"  plain ":           "plain",
		"a\r\nb":             "a  b",
		"tab\there":          "tab here",
		"bell\a":             "bell",
		"rtl\u202eoverride":  "rtloverride",
		"zero\u200bwidth":    "zerowidth",
		"line\u2028sep":      "line sep",
		"Müller & Söhne":     "Müller & Söhne",
		"+49 (30) 1234-5678": "+49 (30) 1234-5678",
	} {
		if got := cleanValue(in); got != want {
			t.Errorf("cleanValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLongestLine(t *testing.T) {
	for in, want := range map[string]string{
		"--\nShort.\n":                  "Short.",
		"a\nThis is the longest line\n": "This is the longest line",
		"Corp Example GmbH, Berlin. This message is confidential and meant for its addressees only.": "Corp Example GmbH, Berlin. This message is",
	} {
		if got := longestLine(in); got != want {
			t.Errorf("longestLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarker(t *testing.T) {
	key := []byte("k1")
	v := markerValue(key, "<a@x>", "Q1")
	tests := []struct {
		name      string
		key       []byte
		value     string
		messageID string
		queueID   string
		want      bool
	}{
		{"same message", key, v, "<a@x>", "Q2", true},
		{"folding space around", key, " " + v + " ", " <a@x>", "", true},
		{"other message", key, v, "<b@x>", "Q1", false},
		{"other key", []byte("k2"), v, "<a@x>", "Q1", false},
		{"no key configured", nil, v, "<a@x>", "Q1", false},
		{"garbage", key, "v1 AAAA", "<a@x>", "Q1", false},
		{"no message-id binds the queue id", key, markerValue(key, "", "Q1"), "", "Q1", true},
		{"no message-id, other queue id", key, markerValue(key, "", "Q1"), "", "Q2", false},
	}
	for _, tt := range tests {
		if got := validMarker(tt.key, tt.value, tt.messageID, tt.queueID); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
