package milter

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// leaf is one non-multipart part of a message, with the bytes it has in the message.
type leaf struct {
	path        string
	mediaType   string
	params      map[string]string
	attachment  bool
	header      textproto.Header
	raw         []byte // the part's header and body as written
	encodedBody []byte
}

// splitMessage cuts a message (LF line ends) into header and body.
func splitMessage(raw []byte) (hdr, body []byte) {
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i+1], raw[i+2:]
	}
	return raw, nil
}

// leaves walks a message's MIME tree by its boundaries, keeping every part's raw bytes,
// so a test can tell a part left byte-identical from one that was rewritten.
func leaves(raw []byte) ([]leaf, error) {
	return walk(raw, "1")
}

func walk(raw []byte, path string) ([]leaf, error) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("part %s: header: %w", path, err)
	}
	_, body := splitMessage(raw)
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, fmt.Errorf("part %s: Content-Type %q: %w", path, ct, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
		return []leaf{{path: path, mediaType: mt, params: params, attachment: disp == "attachment",
			header: h, raw: raw, encodedBody: body}}, nil
	}
	parts, err := splitMultipart(body, params["boundary"])
	if err != nil {
		return nil, fmt.Errorf("part %s: %w", path, err)
	}
	var out []leaf
	for i, p := range parts {
		ls, err := walk(p, fmt.Sprintf("%s.%d", path, i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

// splitMultipart returns the raw body parts between boundary delimiter lines (RFC 2046
// 5.1.1: the line break before a delimiter belongs to the delimiter).
func splitMultipart(body []byte, boundary string) ([][]byte, error) {
	if boundary == "" {
		return nil, fmt.Errorf("multipart without a boundary")
	}
	delim := []byte("--" + boundary)
	lines := bytes.SplitAfter(body, []byte("\n"))
	var parts [][]byte
	var cur []byte
	in, closed := false, false
	for _, line := range lines {
		trimmed := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(trimmed, delim) || bytes.Equal(trimmed, append(append([]byte{}, delim...), '-', '-')) {
			if in {
				parts = append(parts, bytes.TrimSuffix(cur, []byte("\n")))
			}
			cur, in = nil, true
			if bytes.HasSuffix(trimmed, []byte("--")) && !bytes.Equal(trimmed, delim) {
				in, closed = false, true
				break
			}
			continue
		}
		if in {
			cur = append(cur, line...)
		}
	}
	if !closed {
		return nil, fmt.Errorf("multipart %q has no closing delimiter", boundary)
	}
	return parts, nil
}

// decoded returns a leaf's content: transfer encoding undone, charset turned into UTF-8.
func (l leaf) decoded() (string, error) {
	var r io.Reader = bytes.NewReader(l.encodedBody)
	switch strings.ToLower(strings.TrimSpace(l.header.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineSkipper{r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	if cs := l.params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		cr, err := charset.Reader(cs, r)
		if err != nil {
			return "", err
		}
		r = cr
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}

// textBody reports whether a leaf is message text (where a disclaimer may go).
func (l leaf) textBody() bool {
	return !l.attachment && (l.mediaType == "text/plain" || l.mediaType == "text/html")
}

type newlineSkipper struct{ r io.Reader }

func (s newlineSkipper) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\n' && c != '\r' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// parseable reads the whole message with go-message, every part and every body.
func parseable(raw []byte) error {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil && !gomessage.IsUnknownCharset(err) {
		return err
	}
	return walkEntity(e)
}

func walkEntity(e *gomessage.Entity) error {
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !gomessage.IsUnknownCharset(err) {
				return err
			}
			if err := walkEntity(p); err != nil {
				return err
			}
		}
	}
	_, err := io.Copy(io.Discard, e.Body)
	return err
}

// headerFields returns a header's fields unfolded, "Name: value", in order.
func headerFields(hdr []byte) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(hdr), "\n"), "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	return out
}

func fieldName(f string) string {
	name, _, _ := strings.Cut(f, ":")
	return strings.ToLower(strings.TrimSpace(name))
}
