package milter

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	gm "github.com/emersion/go-milter"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/journal"
)

// stampOutcome is the message after every insertion: the new body and the new
// top-level Content-Type and Content-Transfer-Encoding ("" = unchanged).
type stampOutcome struct {
	changed     bool
	contentType string
	cte         string
	mimeVersion string // "1.0" when the message needs a MIME-Version field it lacks
	body        *spool
}

// endOfMessage stamps, journals and replies. Every change goes out in this one reply, as
// the milter protocol requires; a store failure defers the message before anything is
// changed.
func (s *session) endOfMessage(m *gm.Modifier) (gm.Response, error) {
	msg := s.msg
	if s.broken != nil {
		return s.finish(tempfail("4.3.0", "Temporary local problem, try again later", s.broken.Error())), nil
	}
	if msg == nil {
		return gm.RespContinue, nil // end of message without MAIL FROM: nothing to do
	}
	if msg.dir == "" {
		s.classify() // Postfix skipped end of headers: a message without any header
	}
	out := s.applyStamps()
	defer func() {
		if out.body != nil {
			out.body.Close()
		}
	}()
	if msg.rules.journal {
		id, err := s.d.record(s, msg)
		if err != nil && !msg.rules.acceptOnStore {
			return s.finish(tempfail("4.3.0", "Temporary local problem, try again later",
				"journal store unavailable (milter.journal.on_store_error: tempfail): "+err.Error())), nil
		}
		if err != nil {
			s.d.log.Warn("milter: journal store unavailable; accepting without a journal entry (on_store_error: accept)",
				zap.String("queue_id", msg.queueID), zap.Error(err))
		}
		msg.journalID = id
	}
	if err := s.modify(m, out); err != nil {
		s.d.log.Error("milter: cannot send the changes to Postfix; it applies milter_default_action",
			zap.String("queue_id", msg.queueID), zap.Error(err))
		s.finish(tempfail("4.3.0", "", err.Error()))
		return nil, err
	}
	action := actionAccept
	if out.changed {
		action = actionStamp
	}
	return s.finish(accepted(action)), nil
}

// applyStamps runs the planned insertions one after the other on the spooled body. A
// step that fails or declines leaves the message as the previous step made it: postern
// never sends a body it is not sure of.
func (s *session) applyStamps() stampOutcome {
	msg := s.msg
	p := msg.plan
	if p == nil {
		return stampOutcome{}
	}
	if msg.tooBig || p.failed != nil || msg.body == nil {
		result := resultTooBig
		if !msg.tooBig {
			result = resultError
		}
		s.noteAll(p, result, fmt.Sprintf("body over milter.max_body_size (%d bytes) or not spooled", msg.rules.maxBody))
		return stampOutcome{}
	}
	hdr := append([]header(nil), msg.headers...)
	cur := msg.body
	var out stampOutcome
	opt := insertOptions{maxSize: msg.rules.maxBody, tempDir: msg.rules.tempDir, spill: msg.rules.spill}
	for _, st := range p.steps() {
		res, err := s.d.insert(hdr, cur.Reader(), st.ins, opt)
		if err != nil {
			s.note(st.kind, resultError)
			s.d.log.Warn("milter: cannot insert; this part of the stamp is left out",
				zap.String("queue_id", msg.queueID), zap.String("kind", st.kind), zap.Error(err))
			continue
		}
		if !res.changed {
			closeBody(res.body)
			s.note(st.kind, skipResult(res.skipped))
			msg.reason = res.skipped
			continue
		}
		next, err := s.copyBody(res.body)
		if err != nil {
			s.note(st.kind, resultError)
			s.d.log.Warn("milter: cannot spool the stamped body; this part of the stamp is left out",
				zap.String("queue_id", msg.queueID), zap.String("kind", st.kind), zap.Error(err))
			continue
		}
		if cur != msg.body {
			cur.Close()
		}
		cur = next
		hdr = setHeader(hdr, "Content-Type", res.contentType)
		hdr = setHeader(hdr, "Content-Transfer-Encoding", res.cte)
		if res.contentType != "" {
			out.contentType = res.contentType
		}
		if res.cte != "" {
			out.cte = res.cte
		}
		if res.mimeVersion != "" {
			out.mimeVersion = res.mimeVersion
		}
		out.changed = true
		s.note(st.kind, resultAdded)
	}
	if out.changed {
		out.body = cur
	}
	return out
}

// skipResult maps the stamp package's reason for leaving a message alone to a label.
func skipResult(reason string) string {
	switch reason {
	case skipAlreadyStamped:
		return resultPresent
	case skipTooLarge:
		return resultTooBig
	}
	return resultSkipped
}

func (s *session) copyBody(rc io.ReadCloser) (*spool, error) {
	defer closeBody(rc)
	sp := newSpool(s.msg.rules.spill, s.msg.rules.tempDir)
	if _, err := io.Copy(sp, rc); err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

func closeBody(rc io.ReadCloser) {
	if rc != nil {
		rc.Close()
	}
}

// setHeader replaces the first field called name (or adds one); "" changes nothing.
func setHeader(hdr []header, name, value string) []header {
	if value == "" {
		return hdr
	}
	for i, h := range hdr {
		if strings.EqualFold(h.name, name) {
			hdr[i].value = value
			return hdr
		}
	}
	return append(hdr, header{name, value})
}

// modify sends the changes: the journal header (after removing any that came with the
// message: only postern's own may reach lmtp-shadow), and for a stamped message its new
// MIME headers, the marker and the new body.
func (s *session) modify(m *gm.Modifier, out stampOutcome) error {
	msg := s.msg
	if err := deleteHeaders(m, msg.headers, journal.Header); err != nil {
		return err
	}
	if out.changed {
		if err := s.modifyMIME(m, out); err != nil {
			return err
		}
	}
	if msg.journalID != "" {
		if err := m.AddHeader(journal.Header, msg.journalID); err != nil {
			return err
		}
	}
	if out.changed {
		return replaceBody(m, out.body.Reader())
	}
	return nil
}

func (s *session) modifyMIME(m *gm.Modifier, out stampOutcome) error {
	msg := s.msg
	changes := []header{{"Content-Type", out.contentType}, {"Content-Transfer-Encoding", out.cte}}
	for _, c := range changes {
		if c.value == "" {
			continue
		}
		var err error
		if _, n := msg.headerValue(c.name); n > 0 {
			err = m.ChangeHeader(1, c.name, c.value)
		} else {
			err = m.AddHeader(c.name, c.value)
		}
		if err != nil {
			return err
		}
	}
	if _, n := msg.headerValue("MIME-Version"); n == 0 && (out.mimeVersion != "" || out.contentType != "") {
		if err := m.AddHeader("MIME-Version", "1.0"); err != nil {
			return err
		}
	}
	if err := deleteHeaders(m, msg.headers, markerHeader); err != nil {
		return err
	}
	mid, _ := msg.headerValue("Message-ID")
	return m.AddHeader(markerHeader, markerValue(msg.rules.markerKey, mid, msg.queueID))
}

// deleteHeaders removes every field called name, last first, so the per-name indexes
// (SMFIR_CHGHEADER counts from 1 among fields of that name) never shift under us.
func deleteHeaders(m *gm.Modifier, hdr []header, name string) error {
	n := 0
	for _, h := range hdr {
		if strings.EqualFold(h.name, name) {
			n++
		}
	}
	for i := n; i >= 1; i-- {
		if err := m.ChangeHeader(i, name, ""); err != nil {
			return err
		}
	}
	return nil
}

// bodyReplacer is the part of go-milter's Modifier that sends SMFIR_REPLBODY.
type bodyReplacer interface{ ReplaceBody(body []byte) error }

// replaceBody sends the new body in SMFIR_REPLBODY packets of at most 64 KiB, contiguous,
// each cut after a line end where there is one. go-milter turns CRLF into LF inside each
// packet, so a cut never falls between CR and LF; a line longer than a packet is cut
// anywhere else, and Postfix joins the pieces.
func replaceBody(m bodyReplacer, r io.Reader) error {
	const max = gm.MaxBodyChunk
	buf := make([]byte, 0, 2*max)
	chunk := make([]byte, max)
	eof := false
	for !eof || len(buf) > 0 {
		for !eof && len(buf) < max {
			n, err := r.Read(chunk[:max-len(buf)])
			buf = append(buf, chunk[:n]...)
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("read the stamped body: %w", err)
			}
		}
		cut := len(buf)
		if cut > max {
			cut = max
		}
		if cut == max || !eof {
			if i := bytes.LastIndexByte(buf[:cut], '\n'); i >= 0 {
				cut = i + 1
			} else if buf[cut-1] == '\r' {
				cut--
			}
		}
		if cut == 0 {
			break
		}
		if err := m.ReplaceBody(buf[:cut]); err != nil {
			return err
		}
		buf = append(buf[:0], buf[cut:]...)
	}
	return nil
}
