package stamp

import (
	"bytes"
	"errors"
	"mime"
	"strings"
)

// classify reads p's Content-Type and Content-Transfer-Encoding. A missing
// type is text/plain (RFC 2045 §5.2), or message/rfc822 inside
// multipart/digest (RFC 2046 §5.1.5).
func classify(p *part, parent *part) {
	cts := p.header.Values("Content-Type")
	ctes := p.header.Values("Content-Transfer-Encoding")
	p.badType = len(cts) > 1 || len(ctes) > 1
	if len(ctes) > 0 {
		p.cte = strings.ToLower(strings.Trim(ctes[0], " \t"))
		p.badType = p.badType || strings.Trim(p.cte, "abcdefghijklmnopqrstuvwxyz0123456789-") != ""
	}
	if len(cts) == 0 || strings.TrimSpace(cts[0]) == "" {
		p.mediaType = "text/plain"
		if parent != nil && parent.mediaType == "multipart/digest" {
			p.mediaType = "message/rfc822"
		}
		return
	}
	mt, params, err := mime.ParseMediaType(cts[0])
	switch {
	case err == nil:
	case errors.Is(err, mime.ErrInvalidMediaParameter):
		p.badType = true
	default:
		p.badType = true
		mt, _, _ = strings.Cut(cts[0], ";")
		mt = strings.TrimSpace(mt)
	}
	p.mediaType, p.params = strings.ToLower(mt), params
}

func isMultipart(mediaType string) bool { return strings.HasPrefix(mediaType, "multipart/") }

// identityCTE reports the encodings that leave a body as it is (RFC 2045 §6.2).
func identityCTE(cte string) bool {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// isText reports the two kinds of part that receive an insertion.
func (p *part) isText() bool {
	return p.mediaType == "text/plain" || p.mediaType == "text/html"
}

// isAttachment reports a part meant as a file: Content-Disposition
// attachment, or any name (RFC 2183 filename, or the older Content-Type
// name). Named text parts count too: a .txt file must never be stamped.
func (p *part) isAttachment() bool {
	d := p.header.Get("Content-Disposition")
	if d != "" {
		disp, params, err := mime.ParseMediaType(d)
		if err != nil {
			disp, _, _ = strings.Cut(d, ";")
			if strings.Contains(strings.ToLower(d), "name") {
				return true
			}
		}
		if strings.EqualFold(strings.TrimSpace(disp), "attachment") || params["filename"] != "" {
			return true
		}
	}
	if p.badType {
		return strings.Contains(strings.ToLower(p.header.Get("Content-Type")), "name")
	}
	return p.params["name"] != ""
}

// newContentType is p's Content-Type with charset set to cs.
func (p *part) newContentType(cs string) string {
	params := make(map[string]string, len(p.params)+1)
	for k, v := range p.params {
		params[k] = v
	}
	params["charset"] = cs
	return mime.FormatMediaType(p.mediaType, params)
}

// renderHeader is p's raw header with Content-Type and
// Content-Transfer-Encoding replaced when ct or cte is set (the latter added
// when absent); every other field keeps its bytes and place.
func (p *part) renderHeader(ct, cte, eol string) []byte {
	var out bytes.Buffer
	fields, blank := splitFields(p.rawHeader)
	for _, f := range fields {
		switch fieldName(f) {
		case "content-type":
			if ct != "" {
				out.WriteString(foldField("Content-Type", ct, eol))
				continue
			}
		case "content-transfer-encoding":
			if cte != "" {
				out.WriteString("Content-Transfer-Encoding: " + cte + eol)
				cte = ""
				continue
			}
		}
		out.Write(f)
	}
	if cte != "" {
		out.WriteString("Content-Transfer-Encoding: " + cte + eol)
	}
	out.Write(blank)
	return out.Bytes()
}

// splitFields cuts a raw header into fields (each with its continuation
// lines, RFC 5322 §2.2.3) and the final blank line.
func splitFields(raw []byte) (fields [][]byte, blank []byte) {
	for len(raw) > 0 {
		n := bytes.IndexByte(raw, '\n') + 1
		if n == 0 {
			n = len(raw)
		}
		l := raw[:n]
		switch {
		case len(bytes.TrimRight(l, "\r\n")) == 0:
			return fields, raw
		case (l[0] == ' ' || l[0] == '\t') && len(fields) > 0:
			last := fields[len(fields)-1]
			fields[len(fields)-1] = last[:len(last)+n]
		default:
			fields = append(fields, l)
		}
		raw = raw[n:]
	}
	return fields, nil
}

func fieldName(f []byte) string {
	name, _, _ := bytes.Cut(f, []byte(":"))
	return strings.ToLower(string(bytes.TrimSpace(name)))
}

// foldField writes "Name: value", folding after semicolons so lines stay
// under 78 characters where the value allows (RFC 5322 §2.1.1).
func foldField(name, value, eol string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	n := b.Len()
	for i, piece := range strings.Split(value, "; ") {
		if i > 0 {
			b.WriteString(";")
			n++
		}
		if i > 0 && n+1+len(piece) > 76 {
			b.WriteString(eol + "\t")
			n = 1
		} else {
			b.WriteString(" ")
			n++
		}
		b.WriteString(piece)
		n += len(piece)
	}
	return b.String() + eol
}
