package stamp

import (
	"strings"
)

// A loose HTML tokenizer: enough to find tags, their attributes and the text
// between them in mail HTML without building a tree, and never to fail.

type tokKind int

const (
	tokText  tokKind = iota
	tokTag           // start or end tag
	tokOther         // comment, doctype, processing instruction
	tokRaw           // content of script, style, title, textarea
)

type htmlTok struct {
	kind       tokKind
	start, end int    // byte range in the source
	name       string // lower-case tag name
	closing    bool
}

type htmlScanner struct {
	s   string
	pos int
	raw string // set after a start tag whose content is raw text
}

// rawTextElements hold text that is not markup (HTML §13.1.2).
var rawTextElements = map[string]bool{"script": true, "style": true, "title": true, "textarea": true, "xmp": true}

func (z *htmlScanner) next() (htmlTok, bool) {
	s, i := z.s, z.pos
	if i >= len(s) {
		return htmlTok{}, false
	}
	if z.raw != "" {
		n := indexFold(s[i:], "</"+z.raw)
		z.raw = ""
		if n < 0 {
			n = len(s) - i
		}
		if n > 0 {
			z.pos = i + n
			return htmlTok{kind: tokRaw, start: i, end: i + n}, true
		}
	}
	tok := scanToken(s, i)
	if tok.kind == tokTag && !tok.closing && rawTextElements[tok.name] {
		z.raw = tok.name
	}
	z.pos = tok.end
	return tok, true
}

// scanToken reads the token that starts at s[i].
func scanToken(s string, i int) htmlTok {
	rest := s[i:]
	switch {
	case rest[0] != '<':
		return htmlTok{kind: tokText, start: i, end: textEnd(s, i+1)}
	case strings.HasPrefix(rest, "<!--"):
		end := len(s)
		if j := strings.Index(s[i+4:], "-->"); j >= 0 {
			end = i + 4 + j + 3
		}
		return htmlTok{kind: tokOther, start: i, end: end}
	case len(rest) > 1 && (rest[1] == '!' || rest[1] == '?'):
		return htmlTok{kind: tokOther, start: i, end: byteEnd(s, i, '>')}
	case len(rest) > 2 && rest[1] == '/' && isLetter(rest[2]):
		name := tagName(rest[2:])
		return htmlTok{kind: tokTag, start: i, end: byteEnd(s, i, '>'), name: name, closing: true}
	case len(rest) > 1 && isLetter(rest[1]):
		name := tagName(rest[1:])
		end, _, _ := scanAttrs(s, i+1+len(name), "")
		return htmlTok{kind: tokTag, start: i, end: end, name: name}
	}
	return htmlTok{kind: tokText, start: i, end: textEnd(s, i+1)}
}

func textEnd(s string, from int) int {
	if j := strings.IndexByte(s[from:], '<'); j >= 0 {
		return from + j
	}
	return len(s)
}

// byteEnd is the index after the first c at or after i, or len(s).
func byteEnd(s string, i int, c byte) int {
	if j := strings.IndexByte(s[i:], c); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func tagName(s string) string {
	n := 0
	for n < len(s) && (isLetter(s[n]) || s[n] >= '0' && s[n] <= '9' || s[n] == '-' || s[n] == ':' || s[n] == '_') {
		n++
	}
	return strings.ToLower(s[:n])
}

func isHTMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }

// scanAttrs walks the attributes from s[i] to the end of the tag. When want
// is set it also returns the span of that attribute's value.
func scanAttrs(s string, i int, want string) (end, vStart, vEnd int) {
	vStart, vEnd = -1, -1
	for i < len(s) {
		for i < len(s) && (isHTMLSpace(s[i]) || s[i] == '/') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] == '>' {
			return i + 1, vStart, vEnd
		}
		n := i
		for i < len(s) && !isHTMLSpace(s[i]) && s[i] != '=' && s[i] != '>' && s[i] != '/' {
			i++
		}
		if i == n { // a lone '=': skip it
			i++
			continue
		}
		name := s[n:i]
		for i < len(s) && isHTMLSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			continue
		}
		i++
		for i < len(s) && isHTMLSpace(s[i]) {
			i++
		}
		vs, ve := i, i
		switch {
		case i < len(s) && (s[i] == '"' || s[i] == '\''):
			vs = i + 1
			if j := strings.IndexByte(s[vs:], s[i]); j >= 0 {
				ve, i = vs+j, vs+j+1
			} else {
				ve, i = len(s), len(s)
			}
		default:
			for i < len(s) && !isHTMLSpace(s[i]) && s[i] != '>' {
				i++
			}
			ve = i
		}
		if want != "" && vStart < 0 && strings.EqualFold(name, want) {
			vStart, vEnd = vs, ve
		}
	}
	return len(s), vStart, vEnd
}

// attrSpan returns the byte span in s of attribute name's value in the
// start tag tok.
func attrSpan(s string, tok htmlTok, name string) (start, end int, ok bool) {
	_, vs, ve := scanAttrs(s[:tok.end], tok.start+1+len(tok.name), name)
	return vs, ve, vs >= 0
}

func attr(s string, tok htmlTok, name string) string {
	if vs, ve, ok := attrSpan(s, tok, name); ok {
		return s[vs:ve]
	}
	return ""
}

// hasClass reports whether the class attribute of tok lists any of names.
func hasClass(s string, tok htmlTok, names ...string) bool {
	for _, c := range strings.Fields(attr(s, tok, "class")) {
		for _, n := range names {
			if strings.EqualFold(c, n) {
				return true
			}
		}
	}
	return false
}

// indexFold is strings.Index ignoring ASCII case; sub must be ASCII.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && (x|0x20 != y|0x20 || !isLetter(x)) {
			return false
		}
	}
	return true
}
