package stamp

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// headerSkip finds the reasons to leave a message alone that its top-level
// header already tells.
func headerSkip(h textproto.Header) string {
	if v := h.Get("Auto-Submitted"); v != "" && autoSubmitted(v) {
		return SkipAutoSubmitted
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return typeSkip(strings.ToLower(mt), params)
}

// autoSubmitted reports an Auto-Submitted value other than "no" (RFC 3834 §5),
// ignoring parameters and comments.
func autoSubmitted(v string) bool {
	v, _, _ = strings.Cut(v, ";")
	v, _, _ = strings.Cut(v, "(")
	return !strings.EqualFold(strings.TrimSpace(v), "no")
}

// typeSkip is the reason a part of this type leaves the message untouched:
// changing any byte would break a signature or an encrypted blob (RFC 1847,
// RFC 8551), or the part is for a program rather than a reader.
func typeSkip(mediaType string, params map[string]string) string {
	switch mediaType {
	case "multipart/signed":
		return SkipSigned
	case "multipart/encrypted", "application/pgp-encrypted":
		return SkipEncrypted
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		if strings.EqualFold(params["smime-type"], "signed-data") {
			return SkipSigned
		}
		return SkipEncrypted
	case "text/calendar":
		return SkipCalendar
	case "application/ms-tnef", "application/vnd.ms-tnef":
		return SkipTNEF
	case "multipart/report":
		return SkipReport
	}
	return ""
}

// structureSkip walks every part: calendar and TNEF count anywhere (an
// invitation forwarded inline is still an invitation), signatures and
// encryption only outside encapsulated messages, whose bytes never change.
func structureSkip(msg *tree) string {
	for _, p := range msg.parts {
		reason := typeSkip(p.mediaType, p.params)
		switch {
		case reason == "":
		case reason == SkipCalendar || reason == SkipTNEF:
			return reason
		case !p.inMessage:
			return reason
		}
	}
	return ""
}

// bodyTargets chooses the parts that receive the insertion: the text and
// HTML sides of multipart/alternative (RFC 2046 §5.1.4), the root of
// multipart/related (RFC 2387 §3.2), and in multipart/mixed or any other
// multipart (RFC 2046 §5.1.3, §5.1.7) only the last body part, which is
// where Apple Mail's series of HTML parts ends. Attachments and
// encapsulated messages never receive it.
func bodyTargets(p *part) []*part {
	switch {
	case p.isAttachment():
		return nil
	case p.isText():
		return []*part{p}
	case p.mediaType == "multipart/alternative":
		var out []*part
		for _, c := range p.children {
			out = append(out, bodyTargets(c)...)
		}
		return out
	case p.mediaType == "multipart/related":
		if root := relatedRoot(p); root != nil {
			return bodyTargets(root)
		}
		return nil
	case isMultipart(p.mediaType):
		for i := len(p.children) - 1; i >= 0; i-- {
			if t := bodyTargets(p.children[i]); len(t) > 0 {
				return t
			}
		}
	}
	return nil
}

// relatedRoot is the part named by the start parameter, else the first
// (RFC 2387 §3.2).
func relatedRoot(p *part) *part {
	if len(p.children) == 0 {
		return nil
	}
	if start := strings.Trim(p.params["start"], "<> "); start != "" {
		for _, c := range p.children {
			if strings.Trim(c.header.Get("Content-Id"), "<> ") == start {
				return c
			}
		}
	}
	return p.children[0]
}

// textParts are the parts read for markers and inline PGP: every text or
// HTML part of the message itself that is not an attachment.
func textParts(msg *tree) []*part {
	var out []*part
	for _, p := range msg.parts {
		if p.isText() && !p.inMessage && !p.isAttachment() {
			out = append(out, p)
		}
	}
	return out
}
