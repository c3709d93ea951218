package stamp

import (
	"bytes"
	"mime"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

type stampCase struct {
	name    string
	file    string
	ins     *Insertion // nil: stdIns
	opt     Options
	header  [][2]string // fields added to the top-level header
	skip    string      // expected Skipped; "" means the message changes
	changed []int       // leaves (in document order) that get the insertion
	charset map[int]string
	topCTE  string // expected Result.ContentTransferEncoding
	topCT   string // expected Result.ContentType
	mimeVer bool   // expect Result.MIMEVersion "1.0"
	// check looks at the decoded leaves of the output, by leaf index.
	check func(t *testing.T, got map[int]string)
}

var (
	aboveStd = Insertion{Text: stdIns.Text, HTML: stdIns.HTML, Markers: stdIns.Markers, Placement: AboveQuote}
	big5Ins  = Insertion{Text: "機密資訊 " + testMarker, HTML: "<p>機密資訊 " + testMarker + "</p>", Markers: stdIns.Markers}
)

var stampCases = []stampCase{
	{name: "plain text, 7bit becomes quoted-printable", file: "plain.eml", changed: []int{0},
		charset: map[int]string{0: "utf-8"}, topCTE: "quoted-printable",
		check: func(t *testing.T, got map[int]string) { inOrder(t, got[0], "Jane", testMarker) }},
	{name: "html only, before </body>", file: "html-only.eml", changed: []int{0},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "<p>Jane</p>", stdIns.HTML, "</body>", "</html>")
		}},
	{name: "alternative: both sides", file: "alternative.eml", changed: []int{0, 1}},
	{name: "related: text and the html root, not the image", file: "related.eml", changed: []int{0, 1}},
	{name: "mixed with pdf and txt attachments", file: "mixed-attachments.eml", changed: []int{0, 1},
		charset: map[int]string{0: "iso-8859-1", 1: "iso-8859-1"}},
	{name: "latin-1 converted to utf-8 for characters it lacks", file: "mixed-attachments.eml", ins: &wideIns,
		changed: []int{0, 1}, charset: map[int]string{0: "utf-8", 1: "utf-8"}},
	{name: "base64 text stays base64", file: "base64-text.eml", changed: []int{0}},
	{name: "quoted-printable text", file: "qp-text.eml", changed: []int{0}},
	{name: "gbk keeps gbk for ascii text", file: "gbk.eml", changed: []int{0},
		charset: map[int]string{0: "gbk"}, topCTE: "quoted-printable",
		check: func(t *testing.T, got map[int]string) { inOrder(t, got[0], "李明", testMarker) }},
	{name: "gbk becomes utf-8 for characters outside gbk", file: "gbk.eml", ins: &wideIns, changed: []int{0},
		charset: map[int]string{0: "utf-8"}, topCTE: "quoted-printable", topCT: "text/plain; charset=utf-8"},
	{name: "big5 html keeps big5", file: "big5.eml", changed: []int{0}, charset: map[int]string{0: "big5"}},
	{name: "big5 keeps big5 for traditional chinese", file: "big5.eml", ins: &big5Ins, changed: []int{0},
		charset: map[int]string{0: "big5"}},
	{name: "big5 html to utf-8 relabels its meta", file: "big5.eml", ins: &wideIns, changed: []int{0},
		charset: map[int]string{0: "utf-8"}, topCT: "text/html; charset=utf-8",
		check: func(t *testing.T, got map[int]string) {
			if !strings.Contains(got[0], `charset=utf-8"`) || strings.Contains(got[0], "big5") {
				t.Errorf("meta not relabelled: %q", got[0][:120])
			}
		}},
	{name: "windows-1252 html keeps its charset", file: "cp1252.eml", changed: []int{0},
		charset: map[int]string{0: "windows-1252"}},
	{name: "long 8bit line becomes short qp lines", file: "long-line.eml", changed: []int{0}, topCTE: "quoted-printable"},
	{name: "apple mail: once, in the last html part", file: "apple-mixed.eml", changed: []int{0, 3}},
	{name: "forwarded message stays untouched", file: "forwarded.eml", changed: []int{0}},
	{name: "no MIME header at all", file: "no-mime.eml", changed: []int{0}, topCTE: "quoted-printable", mimeVer: true},
	{name: "auto-submitted: no is stamped", file: "plain.eml", header: [][2]string{{"Auto-Submitted", "no"}},
		changed: []int{0}, topCTE: "quoted-printable"},

	{name: "s/mime signed", file: "smime-signed.eml", skip: SkipSigned},
	{name: "s/mime encrypted", file: "smime-encrypted.eml", skip: SkipEncrypted},
	{name: "inline pgp", file: "pgp-inline.eml", skip: SkipSigned},
	{name: "calendar invitation", file: "calendar.eml", skip: SkipCalendar},
	{name: "winmail.dat", file: "tnef.eml", skip: SkipTNEF},
	{name: "delivery report", file: "report.eml", skip: SkipReport},
	{name: "auto-replied", file: "plain.eml", header: [][2]string{{"Auto-Submitted", "auto-replied (vacation)"}}, skip: SkipAutoSubmitted},
	{name: "too large", file: "plain.eml", opt: Options{MaxSize: 50}, skip: SkipTooLarge},
	{name: "already stamped", file: "already-stamped.eml", skip: SkipAlreadyStamped},
	{name: "only a named text file", file: "named-text-only.eml", skip: SkipNoTextPart},
	{name: "missing close delimiter", file: "broken-no-close.eml", skip: SkipUnparseable},
	{name: "bad base64", file: "broken-base64.eml", skip: SkipUnparseable},
	{name: "unknown charset", file: "unknown-charset.eml", skip: SkipUnparseable},

	{name: "outlook web reply, above the quote", file: "outlook-reply.eml", ins: &aboveStd, changed: []int{0, 1},
		charset: map[int]string{0: "iso-8859-1", 1: "iso-8859-1"},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "Thursday works", testMarker, "________________________________\nFrom: Bob")
			inOrder(t, got[1], "Thursday works", stdIns.HTML, `<div id="appendonsend">`, `<hr`, "divRplyFwdMsg")
		}},
	{name: "outlook desktop reply, above the quote", file: "outlook-desktop-reply.eml", ins: &aboveStd, changed: []int{0, 1},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "Jane", testMarker, "-----Original Message-----")
			inOrder(t, got[1], "Jane<o:p>", stdIns.HTML, "<div><div style='border:none;border-top", "<b>From:</b>")
		}},
	{name: "gmail reply, above the quote", file: "gmail-reply.eml", ins: &aboveStd, changed: []int{0, 1},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "see you then", testMarker, "On Mon, May 13", "> Hi Jane")
			inOrder(t, got[1], "see you then.</div>", stdIns.HTML, `<br><div class="gmail_quote">`)
		}},
	{name: "gmail reply, bottom", file: "gmail-reply.eml", changed: []int{0, 1},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "> Bob", testMarker)
			inOrder(t, got[1], "</blockquote></div>", stdIns.HTML)
		}},
	{name: "thunderbird reply, above the quote", file: "thunderbird-reply.eml", ins: &aboveStd, changed: []int{0, 1},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "Jane", testMarker, "On 13.05.24 09:02, Bob Smith wrote:", "> Could you")
			inOrder(t, got[1], "Jane<br>", stdIns.HTML, `<div class="moz-cite-prefix">`)
		}},
	{name: "foxmail reply, above the quote, gb18030 holds any text", file: "foxmail-reply.eml", ins: &Insertion{
		Text: wideIns.Text, HTML: wideIns.HTML, Markers: wideIns.Markers, Placement: AboveQuote}, changed: []int{0, 1},
		charset: map[int]string{0: "gb18030", 1: "gb18030"},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "李明", testMarker, "------------------ 原始邮件 ------------------", "请确认报价")
			inOrder(t, got[1], "<div>李明</div>", wideIns.HTML, "原始邮件", "请确认报价")
		}},
	{name: "apple mail reply, above the quote", file: "apple-reply.eml", ins: &aboveStd, changed: []int{0, 1},
		check: func(t *testing.T, got map[int]string) {
			inOrder(t, got[0], "Jane", testMarker, "> On 13. May 2024")
			inOrder(t, got[1], "<div>Jane</div>", stdIns.HTML, `<div><br><blockquote type="cite">`)
		}},
}

func TestApply(t *testing.T) {
	for _, tc := range stampCases {
		for _, crlf := range []bool{true, false} {
			name := tc.name + map[bool]string{true: " (crlf)", false: " (lf)"}[crlf]
			t.Run(name, func(t *testing.T) { runCase(t, tc, crlf) })
		}
	}
}

func runCase(t *testing.T, tc stampCase, crlf bool) {
	h, body := loadEML(t, tc.file, crlf)
	for _, f := range tc.header {
		h.Add(f[0], f[1])
	}
	ins := stdIns
	if tc.ins != nil {
		ins = *tc.ins
	}
	res, out := runApply(t, h, body, ins, tc.opt)
	if res.Skipped != tc.skip || res.Changed != (tc.skip == "") {
		t.Fatalf("Changed=%v Skipped=%q, want skip %q", res.Changed, res.Skipped, tc.skip)
	}
	if !res.Changed {
		return
	}
	if res.ContentTransferEncoding != tc.topCTE || res.ContentType != tc.topCT {
		t.Errorf("top-level CT %q CTE %q, want %q %q", res.ContentType, res.ContentTransferEncoding, tc.topCT, tc.topCTE)
	}
	if (res.MIMEVersion == "1.0") != tc.mimeVer {
		t.Errorf("MIMEVersion %q", res.MIMEVersion)
	}
	nh := newHeader(h, res)
	if err := walkGoMessage(nh, out); err != nil {
		t.Fatalf("output does not parse with go-message: %v", err)
	}
	leafs := compareChunks(t, h, body, nh, out, tc.changed)
	got := map[int]string{}
	for i, l := range leafs {
		got[i] = l.got
	}
	for i, cs := range tc.charset {
		_, params, _ := mime.ParseMediaType(leaves(chunks(t, nh, out))[i].header.Get("Content-Type"))
		if !strings.EqualFold(params["charset"], cs) {
			t.Errorf("leaf %d charset %q, want %q", i, params["charset"], cs)
		}
	}
	checkInserted(t, leafs, ins)
	if tc.check != nil {
		tc.check(t, got)
	}
	again, _ := runApply(t, nh, out, ins, tc.opt)
	if again.Skipped != SkipAlreadyStamped {
		t.Errorf("second pass: Changed=%v Skipped=%q, want already stamped", again.Changed, again.Skipped)
	}
}

// changedLeaf is a rewritten leaf, decoded before and after.
type changedLeaf struct {
	orig, got string
	html      bool
}

// compareChunks checks that the output has the input's structure, byte
// for byte, except for the changed leaves, and returns those decoded.
func compareChunks(t *testing.T, h textproto.Header, body []byte, nh textproto.Header, out []byte, changed []int) map[int]changedLeaf {
	t.Helper()
	in, got := chunks(t, h, body), chunks(t, nh, out)
	if !bytes.Equal(concat(in), body) || !bytes.Equal(concat(got), out) {
		t.Fatal("test splitter lost bytes")
	}
	if len(in) != len(got) {
		t.Fatalf("output has %d chunks, input %d", len(got), len(in))
	}
	want := map[int]bool{}
	for _, i := range changed {
		want[i] = true
	}
	decoded := map[int]changedLeaf{}
	leaf := -1
	for i := range in {
		if in[i].leaf != got[i].leaf {
			t.Fatalf("chunk %d changed kind", i)
		}
		if in[i].leaf {
			leaf++
		}
		same := bytes.Equal(in[i].raw, got[i].raw)
		switch {
		case !in[i].leaf && !same:
			t.Errorf("structure chunk %d changed:\n%q\n%q", i, in[i].raw, got[i].raw)
		case in[i].leaf && same == want[leaf]:
			t.Errorf("leaf %d: changed=%v, want %v", leaf, !same, want[leaf])
		case in[i].leaf && !same:
			checkEncodedLeaf(t, leaf, got[i])
			mt, _, _ := mime.ParseMediaType(in[i].header.Get("Content-Type"))
			decoded[leaf] = changedLeaf{orig: decodeLeaf(t, in[i]), got: decodeLeaf(t, got[i]), html: mt == "text/html"}
		}
	}
	return decoded
}

func concat(cs []chunk) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, c.raw...)
	}
	return b
}

// checkEncodedLeaf checks a rewritten part is 7-bit with short lines.
func checkEncodedLeaf(t *testing.T, i int, c chunk) {
	t.Helper()
	for n, l := range strings.Split(string(c.raw), "\n") {
		if len(l) > 78 {
			t.Errorf("leaf %d line %d has %d characters", i, n, len(l))
		}
	}
	for _, b := range c.raw {
		if b >= 0x80 {
			t.Errorf("leaf %d is not 7-bit clean", i)
			return
		}
	}
}

var metaCS = regexp.MustCompile(`(?i)charset=["']?[\w-]+`)

// checkInserted checks each changed leaf holds the insertion and, without
// it, the original text.
func checkInserted(t *testing.T, leafs map[int]changedLeaf, ins Insertion) {
	t.Helper()
	for i, l := range leafs {
		text := strings.ReplaceAll(l.got, "\r\n", "\n")
		orig := strings.ReplaceAll(l.orig, "\r\n", "\n")
		block := strings.TrimRight(strings.ReplaceAll(ins.Text, "\r\n", "\n"), "\n")
		if l.html {
			block = ins.HTML
		}
		at := strings.Index(text, block)
		if at < 0 {
			t.Errorf("leaf %d lacks the insertion:\n%s", i, text)
			continue
		}
		rest := text[:at] + text[at+len(block):]
		if l.html {
			rest, orig = metaCS.ReplaceAllString(rest, "charset=X"), metaCS.ReplaceAllString(orig, "charset=X")
		} else {
			rest, orig = squeeze(rest), squeeze(orig)
		}
		if rest != orig {
			t.Errorf("leaf %d: original text changed:\n got %q\nwant %q", i, rest, orig)
		}
	}
}

// squeeze drops blank lines, which insertion adds around the text.
func squeeze(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// inOrder checks that each of parts occurs in s, in this order.
func inOrder(t *testing.T, s string, parts ...string) {
	t.Helper()
	s = strings.ReplaceAll(s, "\r\n", "\n")
	pos := 0
	for _, p := range parts {
		i := strings.Index(s[pos:], p)
		if i < 0 {
			t.Errorf("%q not found after offset %d in:\n%s", p, pos, s)
			return
		}
		pos += i + len(p)
	}
}
