package milter

import (
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/postern-mail/postern/milter/stamp"
)

// insertion is one piece of text to add to a message, in both versions.
type insertion struct {
	text, html string
	aboveQuote bool     // before a quoted reply instead of at the bottom
	markers    []string // text showing the message already has it
}

// insertOptions bound the work on one message.
type insertOptions struct {
	maxSize int64
	spill   int64
	tempDir string
}

// insertOutcome is what an insertion did.
type insertOutcome struct {
	changed     bool
	skipped     string // why the message was left alone
	contentType string // new top-level Content-Type, "" = unchanged
	cte         string // new top-level Content-Transfer-Encoding, "" = unchanged
	mimeVersion string // "1.0" when a MIME-Version field must be added
	body        io.ReadCloser
}

// insertFunc inserts into one message; the milter/stamp package does the MIME work.
type insertFunc func(hdr []header, body io.Reader, ins insertion, opt insertOptions) (insertOutcome, error)

// The stamp package's reasons that mean something to the metrics.
const (
	skipAlreadyStamped = stamp.SkipAlreadyStamped
	skipTooLarge       = stamp.SkipTooLarge
)

// stampInsert hands one insertion to the stamp package. Header values arrive from
// Postfix folded as they were written; stamp reads them unfolded.
func stampInsert(hdr []header, body io.Reader, ins insertion, opt insertOptions) (insertOutcome, error) {
	var h textproto.Header
	for i := len(hdr) - 1; i >= 0; i-- { // Add puts a field first; keep the message's order
		h.Add(hdr[i].name, unfold(hdr[i].value))
	}
	placement := stamp.Bottom
	if ins.aboveQuote {
		placement = stamp.AboveQuote
	}
	res, err := stamp.Apply(h, body, stamp.Insertion{Text: ins.text, HTML: ins.html, Placement: placement, Markers: ins.markers},
		stamp.Options{MaxSize: opt.maxSize, TempDir: opt.tempDir, SpillSize: opt.spill})
	if err != nil {
		return insertOutcome{}, err
	}
	return insertOutcome{changed: res.Changed, skipped: res.Skipped, contentType: res.ContentType,
		cte: res.ContentTransferEncoding, mimeVersion: res.MIMEVersion, body: res.Body}, nil
}

// unfold joins a folded header value (RFC 5322 2.2.3): the line breaks go, the white
// space that follows them stays.
func unfold(v string) string {
	return strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
}
