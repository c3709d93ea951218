package stamp

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
)

// textCharset turns a text part's bytes into Unicode and back (RFC 2046
// §4.1.2). US-ASCII and UTF-8 parts are handled as bytes, so even a
// mislabelled 8-bit part keeps every byte it had.
type textCharset struct {
	enc    encoding.Encoding // nil for the ASCII/UTF-8 family
	utf8   bool              // labelled UTF-8
	gb2312 bool              // labelled GB2312: decoded as its superset GBK, checked against GB2312 when encoding
}

var asciiLabels = map[string]bool{
	"": true, "us-ascii": true, "ascii": true, "us": true, "ansi_x3.4-1968": true, "ansi_x3.4-1986": true,
	"iso646-us": true, "iso-ir-6": true, "cp367": true, "ibm367": true, "csascii": true, "iso_646.irv:1991": true,
}

var gb2312Labels = map[string]bool{
	"gb2312": true, "csgb2312": true, "euc-cn": true, "x-euc-cn": true, "gb_2312-80": true,
	"chinese": true, "csiso58gb231280": true, "iso-ir-58": true,
}

// lookupCharset finds the charset of a label: the IANA registry first (so
// ISO-8859-1 stays ISO-8859-1), then the WHATWG names mail clients also use
// (x-gbk, ks_c_5601-1987, cp1252).
func lookupCharset(label string) (textCharset, error) {
	l := strings.ToLower(strings.TrimSpace(label)) // a quote is a token character in MIME: "gbk'" is no charset
	switch {
	case asciiLabels[l]:
		return textCharset{}, nil
	case gb2312Labels[l]:
		return textCharset{enc: simplifiedchinese.GBK, gb2312: true}, nil
	}
	enc, _ := ianaindex.MIME.Encoding(l)
	if enc == nil {
		enc, _ = htmlindex.Get(l)
	}
	switch {
	case enc == nil:
		return textCharset{}, malformed("unknown charset %q", label)
	case enc == unicode.UTF8:
		return textCharset{utf8: true}, nil
	}
	return textCharset{enc: enc}, nil
}

// decode returns the text of b. exact reports that encoding the text again
// gives back b byte for byte, so the part may keep its charset; content
// that decodes only with replacement characters is refused.
func (c textCharset) decode(b []byte) (text string, exact bool, err error) {
	if c.enc == nil {
		return string(b), true, nil
	}
	dec, err := c.enc.NewDecoder().Bytes(b)
	if err != nil {
		return "", false, malformed("charset: %v", err)
	}
	back, err := c.enc.NewEncoder().Bytes(dec)
	if err == nil && bytes.Equal(back, b) {
		return string(dec), true, nil
	}
	if bytes.ContainsRune(dec, utf8.RuneError) {
		return "", false, malformed("text does not decode cleanly")
	}
	return string(dec), false, nil
}

// fits reports whether every character of s can be written in the charset.
func (c textCharset) fits(s string) bool {
	switch {
	case c.utf8:
		return true
	case c.enc == nil:
		return isASCII(s)
	}
	b, err := c.enc.NewEncoder().String(s)
	if err != nil {
		return false
	}
	return !c.gb2312 || isGB2312([]byte(b))
}

// encode writes text in the charset.
func (c textCharset) encode(text string) ([]byte, error) {
	if c.enc == nil {
		return []byte(text), nil
	}
	return c.enc.NewEncoder().Bytes([]byte(text))
}

// isGB2312 reports GBK bytes that stay inside GB2312's rows (EUC-CN: both
// bytes 0xA1–0xFE, first byte at most 0xF7).
func isGB2312(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] < 0x80 {
			continue
		}
		if i+1 >= len(b) || b[i] < 0xA1 || b[i] > 0xF7 || b[i+1] < 0xA1 || b[i+1] > 0xFE {
			return false
		}
		i++
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// metaCharset returns the charset an HTML document declares in <meta>,
// which mail clients use when the MIME header names none.
func metaCharset(s string) string {
	var found string
	eachMeta(s, func(vs, ve int) {
		if found == "" {
			found = s[vs:ve]
		}
	})
	return found
}

// setMetaCharset rewrites every charset a <meta> declares to cs, so the
// document agrees with its new MIME label.
func setMetaCharset(s, cs string) string {
	var b strings.Builder
	last := 0
	eachMeta(s, func(vs, ve int) {
		b.WriteString(s[last:vs])
		b.WriteString(cs)
		last = ve
	})
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// eachMeta calls fn with the span of the charset value of each <meta
// charset> and <meta http-equiv="Content-Type" content="…; charset=…">
// before <body>.
func eachMeta(s string, fn func(vs, ve int)) {
	z := &htmlScanner{s: s}
	for {
		tok, ok := z.next()
		if !ok || tok.kind == tokTag && tok.name == "body" {
			return
		}
		if tok.kind != tokTag || tok.closing || tok.name != "meta" {
			continue
		}
		if vs, ve, ok := attrSpan(s, tok, "charset"); ok && ve > vs {
			fn(vs, ve)
			continue
		}
		if !strings.EqualFold(attr(s, tok, "http-equiv"), "content-type") {
			continue
		}
		if vs, ve, ok := attrSpan(s, tok, "content"); ok {
			if cs, ce := charsetInContent(s[vs:ve]); cs >= 0 {
				fn(vs+cs, vs+ce)
			}
		}
	}
}

// charsetInContent finds the charset value inside a meta content attribute
// ("text/html; charset=gbk").
func charsetInContent(v string) (start, end int) {
	i := indexFold(v, "charset=")
	if i < 0 {
		return -1, -1
	}
	start = i + len("charset=")
	for start < len(v) && (v[start] == '"' || v[start] == '\'' || v[start] == ' ') {
		start++
	}
	end = start
	for end < len(v) && v[end] != ';' && v[end] != '"' && v[end] != '\'' && !isHTMLSpace(v[end]) {
		end++
	}
	if end == start {
		return -1, -1
	}
	return start, end
}
