package stamp

import (
	"fmt"
	"html"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// stamper carries one message through planning, stamping and rendering.
type stamper struct {
	msg     *tree
	ins     Insertion
	targets []*part
	decoded map[*part]decodedText
	edits   []edit
	res     Result
}

// decodedText is a target's text and how to write it back.
type decodedText struct {
	text  string
	cs    textCharset
	exact bool // text encodes back to the original bytes
}

// edit replaces the bytes [start, end) of the body with data.
type edit struct {
	start, end int64
	data       []byte
}

// plan decides whether the message is stamped and where: it returns the
// reason to skip it, or chooses st.targets.
func (st *stamper) plan() (string, error) {
	if reason := structureSkip(st.msg); reason != "" {
		return reason, nil
	}
	st.targets = bodyTargets(st.msg.root)
	st.decoded = make(map[*part]decodedText, len(st.targets))
	stamped := false
	for _, p := range textParts(st.msg) {
		text, err := st.readText(p)
		if err != nil {
			return "", err
		}
		// Inline PGP signs or encrypts the text itself.
		if strings.Contains(text, "-----BEGIN PGP SIGNED MESSAGE-----") {
			return SkipSigned, nil
		}
		if strings.Contains(text, "-----BEGIN PGP MESSAGE-----") {
			return SkipEncrypted, nil
		}
		stamped = stamped || hasMarker(text, st.ins.Markers)
	}
	if stamped {
		return SkipAlreadyStamped, nil
	}
	if len(st.targets) == 0 {
		return SkipNoTextPart, nil
	}
	return "", nil
}

// readText decodes a text part: strictly for a target, which is kept for
// stamping, as far as it goes for any other part, which is only searched.
func (st *stamper) readText(p *part) (string, error) {
	if slices.Contains(st.targets, p) {
		d, err := st.decode(p)
		st.decoded[p] = d
		return d.text, err
	}
	return st.scanText(p)
}

// scanText decodes a text part as far as it can, for searching only.
func (st *stamper) scanText(p *part) (string, error) {
	raw, err := st.msg.sp.bytes(p.body, p.end)
	if err != nil {
		return "", err
	}
	dec, err := decodeTransfer(p.cte, raw)
	if err != nil {
		dec = raw
	}
	cs, err := partCharset(p, dec)
	if err != nil {
		return string(dec), nil
	}
	text, _, err := cs.decode(dec)
	if err != nil {
		return string(dec), nil
	}
	return text, nil
}

// partCharset is the charset named by the charset parameter, or for HTML
// without one, by its <meta>. An empty parameter is refused, as readers
// such as go-message refuse it.
func partCharset(p *part, dec []byte) (textCharset, error) {
	label, ok := p.params["charset"]
	if ok && strings.Trim(label, " \t\"'") == "" {
		return textCharset{}, malformed("empty charset parameter")
	}
	if !ok && p.mediaType == "text/html" {
		label = metaCharset(string(dec[:min(len(dec), 16<<10)]))
	}
	return lookupCharset(label)
}

func hasMarker(text string, markers []string) bool {
	for _, m := range markers {
		if m != "" && (strings.Contains(text, m) || strings.Contains(text, html.EscapeString(m))) {
			return true
		}
	}
	return false
}

func (st *stamper) stampTargets() error {
	for _, p := range st.targets {
		if err := st.stampPart(p); err != nil {
			return err
		}
	}
	return nil
}

// decode reads a target: transfer encoding, then charset; anything it
// cannot undo exactly is malformed.
func (st *stamper) decode(p *part) (decodedText, error) {
	if p.badType {
		return decodedText{}, malformed("text part with an unclear header")
	}
	raw, err := st.msg.sp.bytes(p.body, p.end)
	if err != nil {
		return decodedText{}, err
	}
	dec, err := decodeTransfer(p.cte, raw)
	if err != nil {
		return decodedText{}, err
	}
	cs, err := partCharset(p, dec)
	if err != nil {
		return decodedText{}, err
	}
	text, exact, err := cs.decode(dec)
	return decodedText{text: text, cs: cs, exact: exact}, err
}

// stampPart inserts into one decoded target, re-encodes it and records the edit.
func (st *stamper) stampPart(p *part) error {
	d := st.decoded[p]
	newText, inserted := st.insert(p, d.text)
	if inserted == "" {
		return nil
	}
	out, relabel, err := chooseCharset(d.cs, d.exact, newText, inserted)
	if err != nil {
		return err
	}
	if relabel && p.mediaType == "text/html" {
		out = []byte(setMetaCharset(string(out), "utf-8"))
	}
	return st.record(p, out, relabel)
}

// insert puts the insertion into the decoded text of p.
func (st *stamper) insert(p *part, text string) (newText, inserted string) {
	if p.mediaType == "text/html" {
		inserted = strings.ToValidUTF8(st.ins.HTML, "\uFFFD")
		return insertHTML(text, inserted, st.ins.Placement), inserted
	}
	nl := contentEOL(text, p.cte, p.eol)
	flowed := strings.EqualFold(p.params["format"], "flowed")
	return insertText(text, strings.ToValidUTF8(st.ins.Text, "\uFFFD"), st.ins.Placement, nl, flowed)
}

// chooseCharset encodes the stamped text: in the part's own charset when
// it round-trips and every inserted character fits, otherwise as UTF-8
// (relabel). Bytes of unknown meaning are never relabelled.
func chooseCharset(cs textCharset, exact bool, newText, inserted string) (out []byte, relabel bool, err error) {
	if exact && cs.fits(inserted) {
		if out, err := cs.encode(newText); err == nil {
			return out, false, nil
		}
	}
	if !utf8.ValidString(newText) {
		return nil, false, malformed("8-bit text in an unknown charset")
	}
	return []byte(newText), true, nil
}

// contentEOL is the line end the text already uses.
func contentEOL(text, cte, msgEOL string) string {
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		if i > 0 && text[i-1] == '\r' {
			return "\r\n"
		}
		return "\n"
	}
	if cte == "base64" {
		return "\r\n" // RFC 2045 §6.8: canonical line ends before encoding
	}
	return msgEOL
}

// record transfer-encodes the new content of p (base64 stays base64,
// everything else becomes quoted-printable, 7-bit clean with lines of at
// most 76 characters) and queues the edit.
func (st *stamper) record(p *part, content []byte, relabel bool) error {
	eol := p.eol
	cte, body := "quoted-printable", []byte(nil)
	if p.cte == "base64" {
		cte, body = "base64", encodeBase64(content, eol)
	} else {
		body = encodeQP(content, eol, p.boundaries())
	}
	if hasDelimiterLine(body, p.boundaries()) {
		return malformed("encoded text would look like a delimiter")
	}
	var newCT, newCTE string
	if relabel {
		if newCT = p.newContentType("utf-8"); newCT == "" {
			return malformed("cannot relabel Content-Type")
		}
	}
	if cte != p.cte {
		newCTE = cte
	}
	if p == st.msg.root {
		st.topHeader(newCT, newCTE)
		if cte == "base64" {
			body = append(body, eol...)
		}
		st.edits = append(st.edits, edit{start: 0, end: st.msg.sp.size, data: body})
		return nil
	}
	data := append(p.renderHeader(newCT, newCTE, eol), body...)
	if p.bareEnd {
		data = append(data, eol...)
	}
	st.edits = append(st.edits, edit{start: p.start, end: p.end, data: data})
	return nil
}

// topHeader reports changed top-level fields to the caller, who owns the header.
func (st *stamper) topHeader(ct, cte string) {
	st.res.ContentType, st.res.ContentTransferEncoding = ct, cte
	if (ct != "" || cte != "") && !st.msg.root.header.Has("Mime-Version") {
		st.res.MIMEVersion = "1.0"
	}
}

// render writes the new body: the original bytes with the edits applied.
func (st *stamper) render(opt Options) (Result, error) {
	if len(st.edits) == 0 {
		return Result{Skipped: SkipNoTextPart}, nil
	}
	sort.Slice(st.edits, func(i, j int) bool { return st.edits[i].start < st.edits[j].start })
	out := newSpool(opt)
	if err := st.copyEdited(out); err != nil {
		out.Close()
		return Result{}, fmt.Errorf("stamp: write stamped body: %w", err)
	}
	res := st.res
	res.Changed, res.Body, res.BodySize = true, out.body(), out.size
	return res, nil
}

func (st *stamper) copyEdited(out *spool) error {
	var pos, grow int64
	for _, e := range st.edits {
		grow += int64(len(e.data)) - (e.end - e.start)
	}
	out.reserve(st.msg.sp.size + grow)
	var buf []byte
	if st.msg.sp.file != nil {
		buf = make([]byte, 32<<10)
	}
	for _, e := range st.edits {
		if err := st.msg.sp.copyTo(out, pos, e.start, buf); err != nil {
			return err
		}
		if _, err := out.Write(e.data); err != nil {
			return err
		}
		pos = e.end
	}
	if err := st.msg.sp.copyTo(out, pos, st.msg.sp.size, buf); err != nil {
		return err
	}
	return out.finish()
}
