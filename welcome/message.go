package welcome

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// buildMessage writes the letter as a MIME message (RFC 2045-2049):
//
//	multipart/alternative
//	├── text/plain; charset=utf-8              (quoted-printable)
//	└── multipart/related; type="text/html"    (RFC 2387; only when the HTML has cid: images)
//	    ├── text/html; charset=utf-8           (quoted-printable)
//	    └── image/png; Content-ID: <…>         (base64), one per image
//
// Every byte is 7-bit, headers with non-ASCII text are RFC 2047 encoded words, and the
// boundaries derive from the Message-ID, so a dry run writes the same bytes as the run
// that sends (the Date aside).
func buildMessage(l *Letter, from *mail.Address) ([]byte, error) {
	var h mail.Header
	// go-message writes header fields last-set first, so they are set in reverse.
	h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary("alt", l.MessageID)})
	h.Set("MIME-Version", "1.0")
	h.Set("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies to it
	h.SetMessageID(l.MessageID)
	h.Set("Subject", encodeText(l.Subject))
	h.SetAddressList("To", []*mail.Address{{Name: l.Recipient.DisplayName, Address: l.To}})
	h.SetAddressList("From", []*mail.Address{from})
	h.SetDate(l.Date)

	var b bytes.Buffer
	w, err := message.CreateWriter(&b, h.Header)
	if err != nil {
		return nil, err
	}
	if err := writePart(w, textHeader("text/plain"), []byte(l.Text)); err != nil {
		return nil, err
	}
	if err := writeHTML(w, l); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeHTML writes the HTML alternative, wrapped with its images in multipart/related
// when it has any.
func writeHTML(w *message.Writer, l *Letter) error {
	if len(l.Images) == 0 {
		return writePart(w, textHeader("text/html"), []byte(l.HTML))
	}
	var rh message.Header
	rh.SetContentType("multipart/related", map[string]string{"type": "text/html", "boundary": boundary("rel", l.MessageID)})
	rw, err := w.CreatePart(rh)
	if err != nil {
		return err
	}
	if err := writePart(rw, textHeader("text/html"), []byte(l.HTML)); err != nil {
		return err
	}
	for _, img := range l.Images {
		var ih message.Header
		ih.Set("Content-Transfer-Encoding", "base64")
		ih.Set("Content-ID", "<"+img.CID+">")
		ih.SetContentDisposition("inline", map[string]string{"filename": img.File})
		ih.SetContentType(img.ContentType, map[string]string{"name": img.File})
		if err := writePart(rw, ih, img.Data); err != nil {
			return err
		}
	}
	return rw.Close()
}

func textHeader(mediaType string) message.Header {
	var h message.Header
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	h.SetContentType(mediaType, map[string]string{"charset": "utf-8"})
	return h
}

func writePart(w *message.Writer, h message.Header, body []byte) error {
	pw, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(body); err != nil {
		return err
	}
	return pw.Close()
}

// encodeText writes a header's text (RFC 2047): words of printable ASCII stay as they
// are, each run of other words becomes encoded words (Q or base64, whichever is shorter,
// so CJK text is not tripled), and the result folds at spaces within 78 columns.
func encodeText(s string) string {
	words := strings.Fields(s)
	var out []string
	for i := 0; i < len(words); {
		if plainWord(words[i]) {
			out = append(out, words[i])
			i++
			continue
		}
		j := i + 1
		for j < len(words) && !plainWord(words[j]) {
			j++
		}
		run := strings.Join(words[i:j], " ")
		out = append(out, encodeWords(run))
		i = j
	}
	return strings.Join(out, " ")
}

// encodeWords encodes a run as encoded words, even one of ASCII that only looks like an
// encoded word (which mime's encoders would leave as it is).
func encodeWords(run string) string {
	q, b := mime.QEncoding.Encode("utf-8", run), mime.BEncoding.Encode("utf-8", run)
	if len(b) < len(q) {
		q = b
	}
	if q != run {
		return q
	}
	var words []string
	for len(run) > 0 { // ASCII here, so any byte is a character boundary
		n := min(len(run), 45) // 60 base64 characters: 72 with the markers
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(run[:n]))+"?=")
		run = run[n:]
	}
	return strings.Join(words, " ")
}

// plainWord reports whether a word can stand in a header as it is: printable ASCII that
// a reader will not take for an encoded word.
func plainWord(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < 0x21 || w[i] > 0x7e {
			return false
		}
	}
	return !strings.Contains(w, "=?")
}

// boundary is a multipart boundary that cannot occur in the parts: "=_" is never
// produced by quoted-printable or base64 (RFC 2045 section 6.7 and 6.8).
func boundary(level, messageID string) string {
	sum := sha256.Sum256([]byte(level + "\x00" + messageID))
	return "=_postern_" + level + "_" + hex.EncodeToString(sum[:12])
}

// messageID is the letter's Message-ID: the same for the same user and send count, so
// a letter sent again after a crash in the ledger window can be recognised as a
// duplicate. The ledger key is hashed so the header does not show a GUID or login.
func messageID(key string, seq int, from string) string {
	sum := sha256.Sum256([]byte("postern-welcome\x00" + key))
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	return fmt.Sprintf("welcome.%s.%d@%s", hex.EncodeToString(sum[:10]), seq, domain)
}
