package milter

import (
	gm "github.com/emersion/go-milter"
)

// Actions of a verdict; they are also metric label values.
const (
	actionAccept   = "accept"   // passed unchanged (apart from the journal header)
	actionStamp    = "stamp"    // disclaimer or signature inserted
	actionTempfail = "tempfail" // 4xx: the client retries
)

var allActions = []string{actionAccept, actionStamp, actionTempfail}

// verdict is the end of one message: what Postfix is told, what the client reads, and the
// reason that goes to the log, kept together so they cannot drift apart.
type verdict struct {
	action   string
	code     string // SMTP reply code for a tempfail: "451"
	enhanced string // RFC 3463 code: "4.3.0"
	text     string // what the SMTP client sees: short and generic
	reason   string // what the operator reads in the log
}

func accepted(action string) verdict { return verdict{action: action} }

// tempfail asks the client to retry later; detail goes to the log only.
func tempfail(enhanced, text, reason string) verdict {
	return verdict{action: actionTempfail, code: "451", enhanced: enhanced, text: text, reason: reason}
}

// response is the milter reply. An accepted message is answered "continue", which
// Postfix takes as accept at end of message; a tempfail carries its own SMTP reply
// (SMFIR_REPLYCODE). Neither ends go-milter's session object, so the connection's
// client address and HELO stay known for the next message on the same connection.
func (v verdict) response() gm.Response {
	if v.code == "" {
		return gm.RespContinue
	}
	return gm.NewResponseStr(byte(gm.ActReplyCode), v.code+" "+v.enhanced+" "+v.text)
}
