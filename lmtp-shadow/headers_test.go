package lmtpshadow

import (
	"bufio"
	"mime"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/journal"
)

// Every journalled value comes out of headerBlock as printable ASCII lines of at most 78
// characters, and decodes back to itself.
func TestHeaderValuesAreASCIIAndDecodeBack(t *testing.T) {
	values := []string{
		"laptop",
		"a\tb",
		"laptop\x7f",
		"laptop\x00\x01\r\nX-Injected: yes",
		"=?utf-8?q?admin?=",
		"odd=?x?q?y?=@corp.example.test " + strings.Repeat("=?x?q?y?= ", 12),
		"Jörg Müller",
		"jörg@bücher.example",
		"ærlig@例え.jp",
		"übermäßig.lange.adresse.mit.umlauten.äöü@sehr-lange-domäne-mit-umlauten.example",
		strings.Repeat("ü", 200),
	}
	for _, v := range values {
		e := &journal.Entry{ID: "id", Sender: "s@x", Direction: "outbound", Helo: v}
		block := headerBlock(e, "id", "s@x", nil, time.Unix(0, 0))
		for _, line := range strings.Split(strings.TrimSuffix(block, "\r\n"), "\r\n") {
			if len(line) > 78 {
				t.Errorf("%q: line of %d characters: %q", v, len(line), line)
			}
			for _, c := range []byte(line) {
				if (c < 0x20 && c != '\t') || c >= 0x7f {
					t.Errorf("%q: byte %#02x in %q", v, c, line)
					break
				}
			}
		}
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(block + "\r\n"))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%q: %v\n%s", v, err, block)
		}
		if len(h) != 5 { // Archive, Envelope-From, Direction, Helo, Archived-At
			t.Errorf("%q: %d header fields, want 5:\n%s", v, len(h), block)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(h.Get(hdrHelo))
		if err != nil || got != v {
			t.Errorf("%q: stored as %q, decodes to %q (%v)", v, h.Get(hdrHelo), got, err)
		}
	}
}
