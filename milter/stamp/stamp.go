// Package stamp inserts a disclaimer or signature into the text of a MIME
// message without disturbing anything else in it.
//
// It splits the body on its multipart boundaries (RFC 2046 §5.1) while
// keeping every byte offset, decides which text parts are "the body"
// (both sides of multipart/alternative, the root of multipart/related, the
// last body part of multipart/mixed), decodes just those parts (RFC 2045
// transfer encodings, then their charset), inserts the text, re-encodes them
// 7-bit clean and copies every other byte of the message unchanged. Whatever
// it does not fully understand — signed, encrypted, calendar or malformed
// content — it leaves alone and says why.
package stamp

import (
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// Placement says where an Insertion goes.
type Placement int

const (
	// Bottom appends the insertion at the end of the text (before </body>).
	Bottom Placement = iota
	// AboveQuote puts it under the latest reply, above the quoted thread;
	// a part with no recognisable quote gets it at the bottom.
	AboveQuote
)

// Insertion is what to add: the rendered signature and disclaimer, in both forms.
type Insertion struct {
	Text      string    // plain-text block (already rendered; UTF-8)
	HTML      string    // HTML fragment (already rendered and escaped; UTF-8)
	Placement Placement // Bottom (default) or AboveQuote
	// Markers are texts whose presence in a decoded text part means
	// "already stamped", so a message is never stamped twice. Plain words
	// work best: HTML parts are searched as source text.
	Markers []string
}

// DefaultSpillSize is the Options.SpillSize used when it is zero.
const DefaultSpillSize = 1 << 20

// Options bound the work Apply does.
type Options struct {
	MaxSize   int64  // messages above this are left untouched (0 = no cap)
	TempDir   string // bodies larger than SpillSize spill to a temp file here ("" = os.TempDir)
	SpillSize int64  // 0 = DefaultSpillSize; negative = never spill
}

// Reasons for leaving a message untouched, as found in Result.Skipped.
const (
	SkipSigned         = "signed"
	SkipEncrypted      = "encrypted"
	SkipCalendar       = "calendar"
	SkipTNEF           = "tnef"
	SkipReport         = "report"
	SkipAutoSubmitted  = "auto-submitted"
	SkipTooLarge       = "too large"
	SkipAlreadyStamped = "already stamped"
	SkipNoTextPart     = "no text part"
	SkipUnparseable    = "unparseable"
)

// Result says what happened; Body is the new body when Changed.
type Result struct {
	Changed bool
	Skipped string // why untouched: one of the Skip* reasons

	// New values for the top-level header fields, when they changed
	// ("" = unchanged). The caller replaces the field, or adds it when the
	// message had none.
	ContentType, ContentTransferEncoding string
	// MIMEVersion is "1.0" when the top-level header fields changed and the
	// message had no MIME-Version field, which RFC 2045 §4 then requires.
	MIMEVersion string

	Body     io.ReadCloser // the whole new body (after the header), when Changed; caller closes (removes a temp file)
	BodySize int64
}

// Apply reads the top-level header h and the raw body (as the milter
// received them: the body's line ends may be CRLF or LF, and the output
// keeps the style it finds) and returns the stamped body.
//
// h is a go-message textproto.Header; only Content-Type,
// Content-Transfer-Encoding, MIME-Version and Auto-Submitted are read, so a
// caller holding key/value pairs builds it with h.Add(key, value).
//
// Apply returns an error only when reading the body or writing a temp file
// fails; anything it cannot handle safely is a Result with Skipped set, and
// the message passes unchanged. When the message is too large, Apply stops
// reading body early.
func Apply(h textproto.Header, body io.Reader, ins Insertion, opt Options) (res Result, err error) {
	defer func() {
		// A bug must never cost a message: the caller passes it unchanged.
		if r := recover(); r != nil {
			if res.Body != nil {
				res.Body.Close()
			}
			res, err = Result{Skipped: SkipUnparseable}, nil
		}
	}()
	return apply(h, body, ins, opt)
}

// apply is Apply without the panic guard, so tests and fuzzing see panics.
func apply(h textproto.Header, body io.Reader, ins Insertion, opt Options) (Result, error) {
	if reason := headerSkip(h); reason != "" {
		return Result{Skipped: reason}, nil
	}
	in, tooLarge, err := readSpool(body, opt)
	if err != nil {
		return Result{}, fmt.Errorf("stamp: spool body: %w", err)
	}
	defer in.Close()
	if tooLarge {
		return Result{Skipped: SkipTooLarge}, nil
	}
	msg, err := parse(in, h)
	if err != nil {
		return skipOrError(err)
	}
	st := &stamper{msg: msg, ins: ins}
	if reason, err := st.plan(); err != nil || reason != "" {
		if err != nil {
			return skipOrError(err)
		}
		return Result{Skipped: reason}, nil
	}
	if err := st.stampTargets(); err != nil {
		return skipOrError(err)
	}
	return st.render(opt)
}

// skipOrError turns a malformed-content error into an "unparseable" skip and
// passes I/O errors up.
func skipOrError(err error) (Result, error) {
	if isMalformed(err) {
		return Result{Skipped: SkipUnparseable}, nil
	}
	return Result{}, fmt.Errorf("stamp: %w", err)
}
