package stamp

import (
	"bytes"
	"encoding/base64"
)

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 §6).
func decodeTransfer(cte string, raw []byte) ([]byte, error) {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return raw, nil
	case "quoted-printable":
		return decodeQP(raw), nil
	case "base64":
		return decodeBase64(raw)
	}
	return nil, malformed("unknown transfer encoding %q", cte)
}

// decodeBase64 decodes RFC 2045 §6.8 base64, ignoring line breaks and other
// white space; anything else wrong with it is refused.
func decodeBase64(raw []byte) ([]byte, error) {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			clean = append(clean, c)
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, malformed("base64: %v", err)
	}
	return out[:n], nil
}

// decodeQP decodes RFC 2045 §6.7 quoted-printable the way mail readers do:
// trailing white space is dropped, "=" ends a soft line break, and an "="
// not followed by two hex digits is kept as it is. Hard line breaks stay as
// they were (CRLF or LF).
func decodeQP(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		l := raw
		if n := bytes.IndexByte(raw, '\n'); n >= 0 {
			l = raw[:n+1]
		}
		raw = raw[len(l):]
		body, eol := l, []byte(nil)
		if n := eolLen(l); n > 0 {
			body, eol = l[:len(l)-n], l[len(l)-n:]
		}
		body = bytes.TrimRight(body, " \t")
		if soft := len(body) > 0 && body[len(body)-1] == '='; soft {
			body, eol = body[:len(body)-1], nil
		}
		for i := 0; i < len(body); i++ {
			if body[i] == '=' && i+2 < len(body) && isHex(body[i+1]) && isHex(body[i+2]) {
				out = append(out, unhex(body[i+1])<<4|unhex(body[i+2]))
				i += 2
				continue
			}
			out = append(out, body[i])
		}
		out = append(out, eol...)
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

const hexDigits = "0123456789ABCDEF"

// qpLineMax is the longest encoded line, soft break included (RFC 2045 §6.7 rule 5).
const qpLineMax = 76

// encodeQP encodes b as quoted-printable with eol line ends. Line breaks in
// b (LF or CRLF) become hard breaks; long lines get soft breaks. A line
// that would start with "--" and one of the enclosing boundaries has its
// first dash encoded, so it cannot end the part early (RFC 2046 §5.1.1).
func encodeQP(b []byte, eol string, boundaries []string) []byte {
	out := make([]byte, 0, len(b)+len(b)/8+16)
	n := 0 // length of the current output line
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\n' || c == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			if c == '\r' {
				i++
			}
			out = append(out, eol...)
			n = 0
			continue
		}
		size := 3
		if qpPlain[c] && c != '-' || qpLiteral(b, i, n == 0, boundaries) {
			size = 1
		}
		if n+size > qpLineMax-1 {
			out = append(out, '=')
			out = append(out, eol...)
			n = 0
			if size == 1 && !qpLiteral(b, i, true, boundaries) {
				size = 3
			}
		}
		if size == 1 {
			out = append(out, c)
		} else {
			out = append(out, '=', hexDigits[c>>4], hexDigits[c&15])
		}
		n += size
	}
	return out
}

// qpPlain marks the bytes that always stand for themselves (RFC 2045 §6.7 rule 2).
var qpPlain = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '='
	}
	return t
}()

// qpLiteral reports whether b[i] may be written as itself; lineStart says
// it begins an output line.
func qpLiteral(b []byte, i int, lineStart bool, boundaries []string) bool {
	c := b[i]
	switch {
	case c == ' ' || c == '\t':
		// White space is literal unless it would end a line (rule 3).
		return i+1 < len(b) && b[i+1] != '\n' && b[i+1] != '\r'
	case c == '-' && lineStart:
		return !bytes.HasPrefix(b[i:], []byte("--")) || !hasBoundaryPrefix(b[i+2:], boundaries)
	}
	return qpPlain[c]
}

// hasBoundaryPrefix reports whether b starts with one of boundaries.
func hasBoundaryPrefix(b []byte, boundaries []string) bool {
	for _, bd := range boundaries {
		if bytes.HasPrefix(b, []byte(bd)) {
			return true
		}
	}
	return false
}

// hasDelimiterLine reports a line of b that starts with "--" and one of
// boundaries: a last check that a rewritten part cannot cut its multipart.
func hasDelimiterLine(b []byte, boundaries []string) bool {
	for len(b) > 0 {
		if bytes.HasPrefix(b, []byte("--")) && hasBoundaryPrefix(b[2:], boundaries) {
			return true
		}
		n := bytes.IndexByte(b, '\n')
		if n < 0 {
			break
		}
		b = b[n+1:]
	}
	return false
}

// encodeBase64 encodes b in lines of 76 characters (RFC 2045 §6.8).
func encodeBase64(b []byte, eol string) []byte {
	enc := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(enc, b)
	out := make([]byte, 0, len(enc)+len(enc)/76*len(eol)+len(eol))
	for len(enc) > 76 {
		out = append(out, enc[:76]...)
		out = append(out, eol...)
		enc = enc[76:]
	}
	return append(out, enc...)
}
