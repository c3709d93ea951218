package policyd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits bound what one request may hold, so a broken or hostile client cannot make the
// server buffer without end. Postfix 3.7 sends about 30 attributes of a few hundred
// bytes at most.
const (
	MaxLine       = 8192 // bytes in one name=value line, newline included
	MaxAttributes = 128  // lines in one request
)

// Request is one policy delegation request (SMTPD_POLICY_README, "Protocol description"):
// the attributes postern uses; the others are read and ignored.
type Request struct {
	Request        string // "smtpd_access_policy", the only kind there is
	ProtocolState  string // CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN
	ProtocolName   string
	ClientAddress  string
	ClientName     string
	HeloName       string
	Sender         string
	Recipient      string
	RecipientCount int64 // non-zero only at DATA and END-OF-MESSAGE
	QueueID        string
	Instance       string // the same for every request about one message
	Size           int64  // MAIL FROM SIZE= before DATA, the real size at END-OF-MESSAGE
	SASLMethod     string
	SASLUsername   string
	SASLSender     string
	PolicyContext  string
}

// Malformed is a request that breaks the protocol: the connection is closed without a
// reply, and Postfix retries on a new one (smtpd_policy_service_try_limit).
type Malformed struct{ Reason string }

func (e *Malformed) Error() string { return "malformed policy request: " + e.Reason }

func malformed(format string, args ...any) error {
	return &Malformed{Reason: fmt.Sprintf(format, args...)}
}

// known attributes, as bits, to find a repeated one: a repeated attribute is most
// likely two requests run together where the blank line was lost.
var known = map[string]int{
	"request": 0, "protocol_state": 1, "protocol_name": 2, "client_address": 3, "client_name": 4,
	"helo_name": 5, "sender": 6, "recipient": 7, "recipient_count": 8, "queue_id": 9,
	"instance": 10, "size": 11, "sasl_method": 12, "sasl_username": 13, "sasl_sender": 14,
	"policy_context": 15,
}

// ReadRequest reads one request: name=value lines ending with an empty line. Each line
// splits at its first '='; the value may contain more. io.EOF means the client closed
// the connection between requests; a *Malformed error means it broke the protocol.
func ReadRequest(br *bufio.Reader) (*Request, error) {
	r := &Request{}
	var seen uint32
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				return nil, malformed("connection closed in the middle of a request (no empty line after %d attributes)", n)
			}
			return nil, err
		}
		if len(line) == 0 {
			if n == 0 {
				return nil, malformed("empty request")
			}
			break
		}
		if n == MaxAttributes {
			return nil, malformed("more than %d attributes", MaxAttributes)
		}
		name, value, ok := bytes.Cut(line, []byte("="))
		if !ok || len(name) == 0 {
			return nil, malformed("line %d is not name=value: %.60q", n+1, line)
		}
		bit, isKnown := known[string(name)]
		if !isKnown {
			continue // SMTPD_POLICY_README: ignore attributes you do not know
		}
		if seen&(1<<bit) != 0 {
			return nil, malformed("attribute %s repeated (a missing empty line between two requests?)", name)
		}
		seen |= 1 << bit
		if err := r.set(string(name), string(value)); err != nil {
			return nil, err
		}
	}
	if r.Request != "smtpd_access_policy" {
		return nil, malformed("request=%.40q; want request=smtpd_access_policy", r.Request)
	}
	return r, nil
}

// readLine returns one line without its "\n" (or "\r\n"), refusing lines over MaxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxLine:
		return nil, malformed("a line longer than %d bytes", MaxLine)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, malformed("connection closed in the middle of a line")
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func (r *Request) set(name, value string) error {
	switch name {
	case "request":
		r.Request = value
	case "protocol_state":
		r.ProtocolState = value
	case "protocol_name":
		r.ProtocolName = value
	case "client_address":
		r.ClientAddress = value
	case "client_name":
		r.ClientName = value
	case "helo_name":
		r.HeloName = value
	case "sender":
		r.Sender = value
	case "recipient":
		r.Recipient = value
	case "queue_id":
		r.QueueID = value
	case "instance":
		r.Instance = value
	case "sasl_method":
		r.SASLMethod = value
	case "sasl_username":
		r.SASLUsername = value
	case "sasl_sender":
		r.SASLSender = value
	case "policy_context":
		r.PolicyContext = value
	case "recipient_count", "size":
		n, err := number(value)
		if err != nil {
			return malformed("%s=%.20q is not a number", name, value)
		}
		if name == "size" {
			r.Size = n
		} else {
			r.RecipientCount = n
		}
	}
	return nil
}

// number parses a count; Postfix sends an empty value where it has none.
func number(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil && n < 0 {
		err = errors.New("negative")
	}
	return n, err
}
