package stamp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// part is one MIME entity located in the spooled body. Offsets let the
// renderer copy every part it does not change byte for byte.
type part struct {
	start int64 // first byte of the part's header (the body, for the top level)
	body  int64 // first byte of the body
	end   int64 // end of the body; the line break before the next delimiter is not part of it
	// bareEnd: a delimiter line starts right at end, with no line break of
	// its own before it (the part's body is empty).
	bareEnd bool
	eol     string // line end to write in this part: the enclosing multipart's, or the body's

	rawHeader []byte // the header as found, blank line included (nil at the top level)
	header    textproto.Header
	mediaType string            // lower case; text/plain when absent (RFC 2045 §5.2)
	params    map[string]string // Content-Type parameters, keys lower case
	badType   bool              // Content-Type or Content-Transfer-Encoding not fully understood
	cte       string            // Content-Transfer-Encoding, lower case

	parent    *part
	children  []*part
	inMessage bool // inside an encapsulated message/rfc822
}

// tree is the parsed body and its parts.
type tree struct {
	sp    *spool
	root  *part
	parts []*part // every part, in order
}

// Limits that keep a hostile message from costing more than a normal one.
const (
	maxDepth    = 40
	maxParts    = 5000
	maxHeader   = 256 << 10
	maxBoundary = 200 // RFC 2046 §5.1.1 allows 70; be generous
	// maxStructLine bounds preamble and delimiter lines: Go's multipart
	// readers (go-message, mime/multipart) fail on longer ones.
	maxStructLine = 4096
)

// malformedError marks content the parser refuses; Apply turns it into
// Skipped "unparseable" instead of an error.
type malformedError struct{ why string }

func (e *malformedError) Error() string { return "malformed MIME: " + e.why }

func malformed(format string, args ...any) error {
	return &malformedError{why: fmt.Sprintf(format, args...)}
}

func isMalformed(err error) bool {
	var m *malformedError
	return errors.As(err, &m)
}

// parser splits the body into parts in one pass over its lines.
type parser struct {
	msg *tree
	lr  *lineReader
}

// term is the line that ended a body: a delimiter of stack[level] (a close
// delimiter when close is set), or the end of the body when level < 0.
type term struct {
	level   int
	close   bool
	eol     int  // the delimiter line's terminator
	prevEOL int  // the terminator of the line before it
	bare    bool // the delimiter directly follows a body part's header
}

var endOfBody = term{level: -1}

// parse splits sp, the body of a message whose header is h.
func parse(sp *spool, h textproto.Header) (*tree, error) {
	msg := &tree{sp: sp}
	eol, err := detectEOL(sp)
	if err != nil {
		return nil, err
	}
	root := &part{header: h, eol: eol}
	classify(root, nil)
	msg.root = root
	ps := &parser{msg: msg, lr: sp.lineReader()}
	if _, err := ps.entity(root, nil, 0); err != nil {
		return nil, err
	}
	return msg, nil
}

// detectEOL returns the line end of the body's first line (CRLF when none).
func detectEOL(sp *spool) (string, error) {
	head, err := sp.bytes(0, min(sp.size, 8<<10))
	if err != nil {
		return "", err
	}
	if i := bytes.IndexByte(head, '\n'); i == 0 || i > 0 && head[i-1] != '\r' {
		return "\n", nil
	}
	return "\r\n", nil
}

// entity parses the body of p, which starts at the reader's position; stack
// holds the boundaries of the enclosing multiparts, innermost last.
func (ps *parser) entity(p *part, stack []string, depth int) (term, error) {
	ps.msg.parts = append(ps.msg.parts, p)
	if depth > maxDepth || len(ps.msg.parts) > maxParts {
		return term{}, malformed("nested too deep or too many parts")
	}
	switch {
	case isMultipart(p.mediaType):
		return ps.multipart(p, stack, depth)
	case p.mediaType == "message/rfc822" && identityCTE(p.cte):
		return ps.encapsulated(p, stack, depth)
	}
	return ps.leaf(p, stack)
}

// leaf skips a body that has no inner structure.
func (ps *parser) leaf(p *part, stack []string) (term, error) {
	if len(stack) == 0 {
		p.end = ps.msg.sp.size
		return endOfBody, nil
	}
	return ps.until(p, stack, isMultipart(p.parent.mediaType))
}

// until reads lines up to the next delimiter of any level of stack and sets
// p.end before it (RFC 2046 §5.1.1: the CRLF before "--" belongs to the
// delimiter). bareOK says p is a body part, whose empty body may be
// followed by a delimiter at once.
func (ps *parser) until(p *part, stack []string, bareOK bool) (term, error) {
	prevEOL, first := ps.lr.lastEOL, true
	for {
		l, err := ps.lr.next()
		if err == io.EOF {
			p.end = ps.msg.sp.size
			return endOfBody, nil
		}
		if err != nil {
			return term{}, err
		}
		t, err := matchDelimiter(l, stack)
		if err != nil {
			return term{}, err
		}
		if t.level >= 0 {
			p.end = max(p.body, l.start-int64(prevEOL))
			p.bareEnd = first
			t.eol, t.prevEOL, t.bare = l.eol, prevEOL, bareOK && first
			return t, nil
		}
		prevEOL, first = l.eol, false
	}
}

// multipart parses preamble, body parts and epilogue (RFC 2046 §5.1.1).
func (ps *parser) multipart(p *part, stack []string, depth int) (term, error) {
	b := p.params["boundary"]
	if p.badType || b == "" || len(b) > maxBoundary || !identityCTE(p.cte) {
		return term{}, malformed("multipart without a usable boundary")
	}
	inner := append(stack[:len(stack):len(stack)], b)
	own := len(inner) - 1
	mode, err := ps.preamble(inner, own)
	if err != nil {
		return term{}, err
	}
	for {
		child := &part{start: ps.lr.off, parent: p, inMessage: p.inMessage, eol: eolString(mode)}
		if err := ps.header(child, inner); err != nil {
			return term{}, err
		}
		classify(child, p)
		p.children = append(p.children, child)
		t, err := ps.entity(child, inner, depth+1)
		if err != nil {
			return term{}, err
		}
		if t.level != own {
			return term{}, malformed("multipart %q has no close delimiter", b)
		}
		if err := checkLineEnds(t, mode, isMultipart(child.mediaType)); err != nil {
			return term{}, err
		}
		if t.close {
			break
		}
	}
	if len(stack) == 0 {
		p.end = ps.msg.sp.size
		return endOfBody, nil
	}
	return ps.until(p, stack, false) // the epilogue
}

func eolString(n int) string {
	if n == 1 {
		return "\n"
	}
	return "\r\n"
}

// checkLineEnds refuses delimiters whose line ends differ from the first
// delimiter's: readers (go-message, Go's mime/multipart) take the first
// delimiter's line end as the rule for the whole multipart, and would not
// see the same parts as we do. After a nested multipart, an LF-only rule
// would leave the CR of its close delimiter behind, breaking it for them.
func checkLineEnds(t term, mode int, afterMultipart bool) error {
	if t.eol != mode && !(t.close && t.eol == 0) {
		return malformed("delimiter line ends vary")
	}
	if mode == 2 && !t.bare && t.prevEOL != 2 {
		return malformed("delimiter after a bare line feed")
	}
	if mode == 1 && afterMultipart && t.prevEOL == 2 {
		return malformed("CRLF multipart inside an LF multipart")
	}
	return nil
}

// preamble skips to the first delimiter, which must be inner[own]'s, and
// returns its line end.
func (ps *parser) preamble(inner []string, own int) (int, error) {
	for {
		l, err := ps.lr.next()
		if err == io.EOF {
			return 0, malformed("multipart without a first delimiter")
		}
		if err != nil {
			return 0, err
		}
		if l.n > maxStructLine {
			return 0, malformed("preamble line too long")
		}
		t, err := matchDelimiter(l, inner)
		if err != nil {
			return 0, err
		}
		if t.level < 0 {
			continue
		}
		if t.level != own || t.close || l.eol == 0 {
			return 0, malformed("multipart without body parts")
		}
		return l.eol, nil
	}
}

// encapsulated parses a message/rfc822 body: a header, then an entity (RFC 2046 §5.2.1).
func (ps *parser) encapsulated(p *part, stack []string, depth int) (term, error) {
	inner := &part{start: ps.lr.off, parent: p, inMessage: true}
	if err := ps.header(inner, stack); err != nil {
		return term{}, err
	}
	classify(inner, nil)
	p.children = []*part{inner}
	t, err := ps.entity(inner, stack, depth+1)
	p.end, p.bareEnd = inner.end, inner.bareEnd
	return t, err
}

// header reads a part's header up to and including its blank line.
func (ps *parser) header(p *part, stack []string) error {
	var raw []byte
	for {
		l, err := ps.lr.next()
		if err == io.EOF {
			return malformed("header without an end")
		}
		if err != nil {
			return err
		}
		if l.long {
			return malformed("header line too long")
		}
		if t, err := matchDelimiter(l, stack); err != nil || t.level >= 0 {
			return malformed("header without an end")
		}
		raw = append(raw, l.head...)
		if len(raw) > maxHeader {
			return malformed("header too large")
		}
		if l.blank() {
			break
		}
	}
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(raw), 1024))
	if err != nil {
		return malformed("header: %v", err)
	}
	p.rawHeader, p.header, p.body = raw, h, ps.lr.off
	return nil
}

// matchDelimiter reports whether l is a delimiter or close delimiter of one
// of the boundaries in stack (innermost first). A line that starts like a
// delimiter but is not quite one is refused rather than guessed at.
func matchDelimiter(l line, stack []string) (term, error) {
	c := l.content()
	if len(c) < 2 || c[0] != '-' || c[1] != '-' {
		return endOfBody, nil
	}
	for i := len(stack) - 1; i >= 0; i-- {
		b := stack[i]
		if len(c) < 2+len(b) || string(c[2:2+len(b)]) != b {
			continue
		}
		rest := c[2+len(b):]
		if len(rest) > 0 && !bytes.ContainsRune([]byte(" \t-\r"), rune(rest[0])) {
			continue // "--foobar" is not a delimiter of "foo"
		}
		if l.long || l.n > maxStructLine {
			return term{}, malformed("delimiter line too long")
		}
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose {
			rest = rest[2:]
		}
		if len(bytes.TrimLeft(rest, " \t")) != 0 {
			return term{}, malformed("garbage after delimiter %q", b)
		}
		return term{level: i, close: isClose}, nil
	}
	return endOfBody, nil
}

// boundaries lists the boundaries of the multiparts that enclose p.
func (p *part) boundaries() []string {
	var out []string
	for a := p.parent; a != nil; a = a.parent {
		if b := a.params["boundary"]; isMultipart(a.mediaType) && b != "" {
			out = append(out, b)
		}
	}
	return out
}
