package stamp

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode every charset in checks
	"github.com/emersion/go-message/textproto"
)

const testMarker = "[postern-disclaimer]"

// stdIns is an ASCII insertion: it fits every charset.
var stdIns = Insertion{
	Text:    "-- \nJane Doe | Postern Example Ltd\n" + testMarker + " This e-mail is confidential.",
	HTML:    `<div class="postern-disclaimer"><p>Jane Doe | Postern Example Ltd</p><p>` + testMarker + ` This e-mail is confidential.</p></div>`,
	Markers: []string{testMarker},
}

// wideIns has characters outside GBK, Big5 and Latin-1.
var wideIns = Insertion{
	Text:    "-- \nJürgen Weiß 🙂 Postern\n" + testMarker + " Vertraulich.",
	HTML:    `<p>Jürgen Weiß 🙂 Postern</p><p>` + testMarker + ` Vertraulich.</p>`,
	Markers: []string{testMarker},
}

// splitMessage cuts a whole message into its header and body.
func splitMessage(t testing.TB, raw []byte) (textproto.Header, []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("read header: %v", err)
	}
	body, _ := io.ReadAll(br)
	return h, body
}

// loadEML reads testdata/name, with CRLF line ends when crlf is set (as
// the milter receives a body from Postfix).
func loadEML(t testing.TB, name string, crlf bool) (textproto.Header, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if crlf {
		raw = toCRLF(raw)
	}
	return splitMessage(t, raw)
}

func toCRLF(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// runApply calls apply (without the panic guard) and reads the new body.
func runApply(t testing.TB, h textproto.Header, body []byte, ins Insertion, opt Options) (Result, []byte) {
	t.Helper()
	res, err := apply(h, bytes.NewReader(body), ins, opt)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !res.Changed {
		if res.Body != nil {
			t.Fatalf("unchanged result with a body")
		}
		return res, nil
	}
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != res.BodySize {
		t.Fatalf("BodySize %d, read %d", res.BodySize, len(out))
	}
	return res, out
}

// newHeader is h with the top-level fields res changed.
func newHeader(h textproto.Header, res Result) textproto.Header {
	h = h.Copy()
	if res.ContentType != "" {
		h.Set("Content-Type", res.ContentType)
	}
	if res.ContentTransferEncoding != "" {
		h.Set("Content-Transfer-Encoding", res.ContentTransferEncoding)
	}
	if res.MIMEVersion != "" {
		h.Set("MIME-Version", res.MIMEVersion)
	}
	return h
}

// chunk is a piece of a body as the test splitter sees it: a leaf part
// (header and body) or the structure between parts (preamble, delimiter
// lines, multipart headers, epilogue). Concatenated, chunks give the body.
type chunk struct {
	leaf   bool
	raw    []byte
	header textproto.Header // leaves
	body   []byte           // leaves: the body without the header
}

// chunks splits body independently of the package's parser: a regexp per
// boundary, nothing shared with parse.go.
func chunks(t testing.TB, h textproto.Header, body []byte) []chunk {
	t.Helper()
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		return []chunk{{leaf: true, raw: body, header: h, body: body}}
	}
	re := regexp.MustCompile(`(\r?\n|\A)--` + regexp.QuoteMeta(params["boundary"]) + `(--)?[ \t]*(\r?\n|\z)`)
	locs := re.FindAllSubmatchIndex(body, -1)
	var out []chunk
	pos := 0
	for i, loc := range locs {
		if loc[4] >= 0 { // close delimiter: it and the epilogue are one chunk
			return append(out, chunk{raw: body[pos:]})
		}
		out = append(out, chunk{raw: body[pos:loc[1]]})
		pos = loc[1]
		if i+1 == len(locs) {
			break
		}
		end := locs[i+1][0]
		out = append(out, partChunks(t, body[pos:end])...)
		pos = end
	}
	t.Fatalf("splitter: no close delimiter for %q", params["boundary"])
	return nil
}

// partChunks splits one body part into its chunks.
func partChunks(t testing.TB, raw []byte) []chunk {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("part header: %v", err)
	}
	n := headerLen(raw)
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		return []chunk{{leaf: true, raw: raw, header: h, body: raw[n:]}}
	}
	return append([]chunk{{raw: raw[:n]}}, chunks(t, h, raw[n:])...)
}

// headerLen is the length of the header of raw, blank line included.
func headerLen(raw []byte) int {
	if bytes.HasPrefix(raw, []byte("\n")) {
		return 1
	}
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return 2
	}
	i := bytes.Index(raw, []byte("\n\n"))
	j := bytes.Index(raw, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return len(raw)
	case j < 0 || i >= 0 && i < j:
		return i + 2
	}
	return j + 3
}

func leaves(cs []chunk) []chunk {
	var out []chunk
	for _, c := range cs {
		if c.leaf {
			out = append(out, c)
		}
	}
	return out
}

// decodeLeaf decodes a leaf with go-message (transfer encoding and charset).
func decodeLeaf(t testing.TB, c chunk) string {
	t.Helper()
	e, err := message.New(message.Header{Header: c.header}, bytes.NewReader(c.body))
	if err != nil {
		t.Fatalf("go-message: %v", err)
	}
	b, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatalf("go-message read: %v", err)
	}
	return string(b)
}

// walkGoMessage parses a whole message with go-message and walks every
// part, as a mail reader would. Leaf bodies are not decoded here: an
// attachment that was broken before stays broken, and only the structure
// is in question.
func walkGoMessage(h textproto.Header, body []byte) error {
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, h); err != nil {
		return err
	}
	buf.Write(body)
	e, err := message.Read(&buf)
	if err != nil && !message.IsUnknownCharset(err) {
		return err
	}
	return e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		return nil
	})
}
