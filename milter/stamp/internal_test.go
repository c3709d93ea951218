package stamp

import (
	"bytes"
	"io"
	"math/rand"
	"mime/quotedprintable"
	"strings"
	"testing"
)

func TestEncodeQP(t *testing.T) {
	cases := []struct{ name, in, eol, want string }{
		{"plain ascii", "Hello\nworld\n", "\r\n", "Hello\r\nworld\r\n"},
		{"equals and 8-bit", "a=b é", "\n", "a=3Db =C3=A9"},
		{"trailing space before break", "sig \nx\t\n", "\n", "sig=20\nx=09\n"},
		{"trailing space at end", "end ", "\n", "end=20"},
		{"crlf input", "a\r\nb", "\n", "a\nb"},
		{"bare cr", "a\rb", "\n", "a=0Db"},
		{"signature dashes stay", "-- \nJane", "\n", "--=20\nJane"},
		{"delimiter-like line", "--frontier\nx", "\n", "=2D-frontier\nx"},
		{"long line", strings.Repeat("x", 100), "\n", strings.Repeat("x", 75) + "=\n" + strings.Repeat("x", 25)},
		{"escape not split", strings.Repeat("x", 74) + "é", "\n", strings.Repeat("x", 74) + "=\n=C3=A9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(encodeQP([]byte(tc.in), tc.eol, []string{"frontier"})); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestQPRoundTrip encodes random bytes and decodes them with our decoder
// and with Go's, checking line lengths on the way.
func TestQPRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		in := make([]byte, rng.Intn(400))
		for j := range in {
			alphabet := "ab =\t\n-é\x00\xff"
			in[j] = alphabet[rng.Intn(len(alphabet))]
		}
		in = bytes.ReplaceAll(in, []byte("\r"), nil)
		enc := encodeQP(in, "\n", []string{"b"})
		for _, l := range strings.Split(string(enc), "\n") {
			if len(l) > qpLineMax {
				t.Fatalf("line of %d: %q", len(l), l)
			}
			if strings.HasPrefix(l, "--b") {
				t.Fatalf("delimiter-like line %q", l)
			}
		}
		for _, b := range enc {
			if b >= 0x80 {
				t.Fatalf("8-bit output for %q", in)
			}
		}
		if got := decodeQP(enc); !bytes.Equal(got, in) {
			t.Fatalf("decodeQP(encodeQP(%q)) = %q", in, got)
		}
		std, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
		if err != nil || !bytes.Equal(std, in) {
			t.Fatalf("mime/quotedprintable: %q %v, want %q", std, err, in)
		}
	}
}

func TestDecodeQP(t *testing.T) {
	cases := []struct{ in, want string }{
		{"soft=\r\nbreak\r\n", "softbreak\r\n"},
		{"lower =c3=a9", "lower é"},
		{"stray = sign and =ZZ", "stray = sign and =ZZ"},
		{"trailing   \nspace", "trailing\nspace"},
		{"final soft=", "final soft"},
	}
	for _, tc := range cases {
		if got := string(decodeQP([]byte(tc.in))); got != tc.want {
			t.Errorf("decodeQP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	if got, err := decodeBase64([]byte("SGVs\r\nbG8g d29y\tbGQ=\r\n")); err != nil || string(got) != "Hello world" {
		t.Errorf("got %q %v", got, err)
	}
	if _, err := decodeBase64([]byte("SGVsbG8*")); !isMalformed(err) {
		t.Errorf("bad base64 accepted: %v", err)
	}
}

func TestEncodeBase64(t *testing.T) {
	got := string(encodeBase64(bytes.Repeat([]byte("x"), 60), "\r\n"))
	lines := strings.Split(got, "\r\n")
	if len(lines) != 2 || len(lines[0]) != 76 {
		t.Errorf("lines %q", lines)
	}
}

func TestMatchDelimiter(t *testing.T) {
	stack := []string{"outer", "in"}
	cases := []struct {
		line      string
		level     int
		close, ok bool
	}{
		{"--in\r\n", 1, false, true},
		{"--in--\r\n", 1, true, true},
		{"--in  \t\n", 1, false, true},
		{"--in--", 1, true, true},
		{"--outer\r\n", 0, false, true},
		{"--inner\r\n", -1, false, true}, // another boundary that starts the same
		{"--outer-x\r\n", 0, false, false},
		{"--in garbage\r\n", 0, false, false},
		{"-- in\r\n", -1, false, true},
		{"text\r\n", -1, false, true},
	}
	for _, tc := range cases {
		l := line{head: []byte(tc.line), eol: eolLen([]byte(tc.line))}
		got, err := matchDelimiter(l, stack)
		if tc.ok != (err == nil) || tc.ok && (got.level != tc.level || got.close != tc.close) {
			t.Errorf("%q: %+v %v", tc.line, got, err)
		}
	}
}

func TestLineReaderLongLines(t *testing.T) {
	long := strings.Repeat("a", lineBufSize-1) + "\r\n" // CRLF split across buffer fills
	in := "short\n" + long + strings.Repeat("b", 3*lineBufSize) + "\nlast"
	want := []struct {
		n, eol int
		long   bool
	}{{6, 1, false}, {len(long), 2, true}, {3*lineBufSize + 1, 1, true}, {4, 0, false}}
	readers := map[string]*lineReader{
		"buffered":  newLineReader(strings.NewReader(in)),
		"in memory": newMemLineReader([]byte(in)),
	}
	for name, lr := range readers {
		for i, w := range want {
			l, err := lr.next()
			if err != nil || int(l.n) != w.n || l.eol != w.eol || l.long != w.long {
				t.Fatalf("%s line %d: n=%d eol=%d long=%v err=%v, want %+v", name, i, l.n, l.eol, l.long, err, w)
			}
		}
		if _, err := lr.next(); err != io.EOF {
			t.Fatalf("%s: want EOF, got %v", name, err)
		}
	}
}

func TestQuoteLine(t *testing.T) {
	cases := []struct {
		name, text string
		want       int // line index, -1 for none
	}{
		{"outlook separator", "Ok.\n\n-----Original Message-----\nFrom: a\n", 2},
		{"outlook rule and header", "Ok.\n________________________________\nFrom: Bob\nSent: Monday\nTo: Jane\n", 1},
		{"outlook mac header", "Ok.\n\nFrom: Bob <b@x>\nDate: Monday, 13 May 2024\nTo: Jane\n", 2},
		{"gmail wrapped attribution", "Yes.\n\nOn Mon, May 13, 2024 at 9:02 AM Bob <\nbob@x.example> wrote:\n\n> hi\n", 2},
		{"thunderbird", "Yes.\n\nOn 13.05.24 09:02, Bob wrote:\n> hi\n", 2},
		{"german", "Ja.\n\nAm 13.05.2024 um 09:02 schrieb Bob:\n> hallo\n", 2},
		{"quoted lines only", "Yes.\n> hi\n", 1},
		{"foxmail original", "OK\n------------------ Original ------------------\nFrom: x\n", 1},
		{"chinese separator", "好的\n\n------------------ 原始邮件 ------------------\n发件人: x\n", 2},
		{"chinese bare", "好的\n原始邮件\n", 1},
		{"chinese header block", "好的\n发件人: 王经理\n发送时间: 2024年5月13日\n", 1},
		{"gmail chinese attribution", "好\n\nBob <bob@x.example> 于2024年5月13日周一 09:02写道：\n\n> hi\n", 2},
		{"forwarded", "FYI\n\n---------- Forwarded message ---------\nFrom: x\n", 2},
		{"apple forward", "FYI\n\nBegin forwarded message:\n\nFrom: x\n", 2},
		{"signature is no quote", "Hi\n-- \nJane\nFrom: the team\n", -1},
		{"user text mentioning wrote", "As Bob wrote: fine.\n", -1},
		{"no quote", "Hello\nworld\n", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := quoteLine(splitLines(tc.text), true); got != tc.want {
				t.Errorf("got line %d, want %d", got, tc.want)
			}
		})
	}
}

func TestHTMLQuoteStart(t *testing.T) {
	cases := []struct {
		name, doc string
		before    string // the insertion goes right before this; "" = no quote
	}{
		{"gmail", `<div dir="ltr">Yes</div><br><div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div></div>`, `<br><div class="gmail_quote">`},
		{"gmail container", `<div>Yes</div><div class="gmail_quote gmail_quote_container">x</div>`, `<div class="gmail_quote gmail_quote_container">`},
		{"outlook web", `<body><div>Yes</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">`, `<div id="appendonsend">`},
		{"outlook hr", `<body><p>Yes</p><hr style="x" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">`, `<hr style="x"`},
		{"hotmail stopSpelling", `<body>Yes<hr id="stopSpelling">Date: x`, `<hr id="stopSpelling">`},
		{"outlook desktop", `<body><p class=MsoNormal>Yes</p><div><div style='border-top:solid'><p class=MsoNormal><b>From:</b> Bob<br><b>Sent:</b> Monday<br>`, `<div><div style='border-top`},
		{"thunderbird", `<body><p>Yes</p><div class="moz-cite-prefix">On 1/1/24, Bob wrote:<br></div><blockquote type="cite">x</blockquote>`, `<div class="moz-cite-prefix">`},
		{"apple", `<body>Yes<div><br><blockquote type="cite"><div>On 1 May 2024, at 9:00, Bob wrote:</div></blockquote></div>`, `<div><br><blockquote`},
		{"apple older", `<body>Yes<div><br><div>On May 1, 2024, at 9:00, Bob &lt;b@x&gt; wrote:</div><br class="Apple-interchange-newline"><blockquote type="cite">`, `<div><br><div>On May`},
		{"foxmail", `<div>OK</div><div style="font-size:12px">------------------&nbsp;Original&nbsp;------------------</div><div><b>From:</b>&nbsp;x</div>`, `<div style="font-size:12px">`},
		{"qq includetail", `<div>OK</div><div><includetail><div>quoted</div></includetail></div>`, `<div><includetail>`},
		{"not in head", `<html><head><title>On Monday Bob wrote:</title></head><body><p>Hi</p></body></html>`, ""},
		{"user blockquote without cite", `<body><p>Hi</p><blockquote>a poem</blockquote></body>`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := htmlQuoteStart(tc.doc)
			want := -1
			if tc.before != "" {
				want = strings.Index(tc.doc, tc.before)
			}
			if got != want {
				t.Errorf("got %d, want %d (%q)", got, want, tc.doc[max(got, 0):])
			}
		})
	}
}

func TestHTMLBottom(t *testing.T) {
	cases := []struct{ doc, before string }{
		{"<html><body><p>x</p></BODY>\n</html>\n", "</BODY>"},
		{"<html><p>x</p></html>\n", "</html>"},
		{"<p>fragment</p>\n", ""},
		{"<style>/* </body> */</style><p>x</p></body></html>", "</body></html>"},
		{"<html><body>x</html></body>", "</html>"},
		{`<p>x</p><div title="</body>">y`, ""},
		{`<p>x</p><meta charset=big5`, "<meta"},
		{`<p>x</p><!-- open comment`, "<!--"},
		{`<p>x</p><script>var a = "<b>";`, "<script>"},
		{`<p>x</p><style>`, "<style>"},
	}
	for _, tc := range cases {
		want := len(tc.doc)
		if tc.before != "" {
			want = strings.LastIndex(tc.doc, tc.before)
		}
		if got := htmlBottom(tc.doc); got != want {
			t.Errorf("%q: got %d, want %d", tc.doc, got, want)
		}
	}
}

func TestCharsetFits(t *testing.T) {
	cases := []struct {
		label, text string
		fits        bool
	}{
		{"gbk", "ASCII only", true},
		{"gbk", "机密", true},
		{"gbk", "🙂", false},
		{"gb2312", "机密", true},
		{"gb2312", "€", false}, // in GBK, not in GB2312
		{"iso-8859-1", "Grüße", true},
		{"iso-8859-1", "€", false},
		{"windows-1252", "€", true},
		{"big5", "機密", true},
		{"big5", "这们", false}, // simplified forms
		{"us-ascii", "é", false},
		{"", "plain", true},
		{"utf-8", "🙂", true},
		{"gb18030", "🙂", true},
	}
	for _, tc := range cases {
		cs, err := lookupCharset(tc.label)
		if err != nil {
			t.Fatalf("%s: %v", tc.label, err)
		}
		if got := cs.fits(tc.text); got != tc.fits {
			t.Errorf("%s fits %q = %v", tc.label, tc.text, got)
		}
	}
	if _, err := lookupCharset("x-klingon"); !isMalformed(err) {
		t.Errorf("unknown charset accepted")
	}
}

func TestCharsetDecode(t *testing.T) {
	cs, _ := lookupCharset("windows-1252")
	if _, _, err := cs.decode([]byte("undefined \x81 byte")); !isMalformed(err) {
		t.Errorf("lossy decode accepted: %v", err)
	}
	cs, _ = lookupCharset("iso-8859-1")
	if text, exact, err := cs.decode([]byte("caf\xe9 \x80")); err != nil || !exact || text != "café \u0080" {
		t.Errorf("latin-1: %q %v %v", text, exact, err)
	}
}

func TestMetaCharset(t *testing.T) {
	doc := `<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"><meta charset='big5'></head><body><meta charset="x"></body></html>`
	if got := metaCharset(doc); got != "gb2312" {
		t.Errorf("metaCharset = %q", got)
	}
	want := `<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><meta charset='utf-8'></head><body><meta charset="x"></body></html>`
	if got := setMetaCharset(doc, "utf-8"); got != want {
		t.Errorf("setMetaCharset:\n%s\nwant\n%s", got, want)
	}
}

func TestRenderHeader(t *testing.T) {
	raw := "Content-Type: text/plain;\r\n\tcharset=\"gbk\"\r\nX-Keep:  odd   spacing \r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	p := &part{rawHeader: []byte(raw)}
	got := string(p.renderHeader("text/plain; charset=utf-8", "quoted-printable", "\r\n"))
	want := "Content-Type: text/plain; charset=utf-8\r\nX-Keep:  odd   spacing \r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	if got != want {
		t.Errorf("got %q", got)
	}
	p = &part{rawHeader: []byte("Content-Type: text/html\n\n")}
	if got := string(p.renderHeader("", "quoted-printable", "\n")); got != "Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n" {
		t.Errorf("added CTE: %q", got)
	}
	long := foldField("Content-Type", "text/plain; charset=utf-8; format=flowed; delsp=yes; x-long-parameter=aaaaaaaaaaaaaa", "\n")
	for _, l := range strings.Split(long, "\n") {
		if len(l) > 78 {
			t.Errorf("folded line %q", l)
		}
	}
}

func TestInsertText(t *testing.T) {
	got, _ := insertText("Hi\n\nJane\n", "-- \nsig", Bottom, "\n", false)
	if got != "Hi\n\nJane\n\n-- \nsig\n" {
		t.Errorf("bottom: %q", got)
	}
	got, _ = insertText("Hi\nJane", "sig", Bottom, "\r\n", false)
	if got != "Hi\nJane\r\n\r\nsig" {
		t.Errorf("bottom without final newline: %q", got)
	}
	got, _ = insertText("Ok\n> quoted\n", "sig", AboveQuote, "\n", false)
	if got != "Ok\n\nsig\n\n> quoted\n" {
		t.Errorf("above: %q", got)
	}
	got, _ = insertText("> only a quote\n", "sig", AboveQuote, "\n", false)
	if got != "sig\n\n> only a quote\n" {
		t.Errorf("above, empty reply: %q", got)
	}
	got, _ = insertText("x\n", " indented\nFrom here\nsig  ", Bottom, "\n", true)
	if got != "x\n\n  indented\n From here\nsig\n" {
		t.Errorf("flowed stuffing: %q", got)
	}
}
