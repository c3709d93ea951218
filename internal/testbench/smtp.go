package testbench

import (
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// Mail is one message for SendMail (SMTP) or DeliverLMTP (LMTP).
type Mail struct {
	From       string   // envelope sender; "" sends the null sender <>
	FromParams string   // extra MAIL FROM parameters, e.g. "AUTH=postman" (RFC 4954), which Cyrus uses as the identity for +Folder delivery
	To         []string // envelope recipients
	// XClientLogin, when set, sends Postfix's XCLIENT LOGIN= before MAIL FROM (SMTP only), so
	// smtpd, policy servers and milters see that sasl_username without any SASL set up.
	XClientLogin string
	// XClientAddr, when set, sends XCLIENT ADDR= so the message seems to come from that
	// client address (a trusted relay such as PMG, an internal network).
	XClientAddr string
	Data        []byte // the message; lone LF becomes CRLF and leading dots are doubled on the wire
}

// Reply is one SMTP or LMTP reply.
type Reply struct {
	Code int
	Text string // the text after the code, enhanced status code first; lines of a multi-line reply joined by "\n"
}

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// ioTimeout bounds a whole SMTP or LMTP session, so a hung server fails the test instead of
// hanging it.
const ioTimeout = 60 * time.Second

// SendMail submits m over SMTP to addr and returns the first reply that is not a success (not
// 2xx, or not 354 after DATA), so a test can tell a 4xx from a 5xx at RCPT or at end of data.
// If every step succeeds it returns the reply to the message ("250 2.0.0 Ok: queued as ...").
// err is only for network and protocol failures.
func SendMail(addr string, m Mail) (code int, text string, err error) {
	s, err := dialSession(addr)
	if err != nil {
		return 0, "", err
	}
	defer s.close()
	r, err := s.smtpHello(m.XClientLogin, m.XClientAddr)
	if err != nil || r.Code/100 != 2 {
		return r.Code, r.Text, err
	}
	if r, err = s.cmd("MAIL FROM:<%s>%s", m.From, mailParams(m.FromParams)); err != nil || r.Code/100 != 2 {
		return r.Code, r.Text, err
	}
	for _, rcpt := range m.To {
		if r, err = s.cmd("RCPT TO:<%s>", rcpt); err != nil || r.Code/100 != 2 {
			return r.Code, r.Text, err
		}
	}
	if r, err = s.cmd("DATA"); err != nil || r.Code != 354 {
		return r.Code, r.Text, err
	}
	r, err = s.data(m.Data)
	return r.Code, r.Text, err
}

// DeliverLMTP delivers m over LMTP (RFC 2033) to addr and returns one reply per recipient, in
// the order of m.To: the RCPT reply for a refused recipient, otherwise that recipient's own
// reply to the message. err is only for network and protocol failures.
func DeliverLMTP(addr string, m Mail) ([]Reply, error) {
	s, err := dialSession(addr)
	if err != nil {
		return nil, err
	}
	defer s.close()
	replies := make([]Reply, len(m.To))
	all := func(r Reply) []Reply {
		for i := range replies {
			replies[i] = r
		}
		return replies
	}
	if r, err := s.reply(); err != nil || r.Code != 220 {
		return all(r), err
	}
	if r, err := s.cmd("LHLO client.test"); err != nil || r.Code/100 != 2 {
		return all(r), err
	}
	if r, err := s.cmd("MAIL FROM:<%s>%s", m.From, mailParams(m.FromParams)); err != nil || r.Code/100 != 2 {
		return all(r), err
	}
	var accepted []int
	for i, rcpt := range m.To {
		r, err := s.cmd("RCPT TO:<%s>", rcpt)
		if err != nil {
			return replies, err
		}
		replies[i] = r
		if r.Code/100 == 2 {
			accepted = append(accepted, i)
		}
	}
	if len(accepted) == 0 {
		return replies, nil
	}
	r, err := s.cmd("DATA")
	if err != nil || r.Code != 354 {
		for _, i := range accepted {
			replies[i] = r
		}
		return replies, err
	}
	for n, i := range accepted {
		if n == 0 {
			replies[i], err = s.data(m.Data)
		} else {
			replies[i], err = s.reply()
		}
		if err != nil {
			return replies, err
		}
	}
	return replies, nil
}

// session is a bare SMTP/LMTP client over net/textproto: it never pipelines and hands every
// reply back unchanged, which is what protocol tests need.
type session struct {
	addr string
	conn net.Conn
	text *textproto.Conn
}

func dialSession(addr string) (*session, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("testbench: connect to %s: %w (is the server running?)", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return &session{addr: addr, conn: c, text: textproto.NewConn(c)}, nil
}

// close ends the session politely; a server that has already hung up is fine.
func (s *session) close() {
	_ = s.conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = s.cmd("QUIT")
	s.text.Close()
}

// smtpHello reads the greeting and says EHLO, and with a login or an address sends XCLIENT
// and EHLO again (Postfix XCLIENT_README: XCLIENT resets the session to the greeting).
func (s *session) smtpHello(login, addr string) (Reply, error) {
	r, err := s.reply()
	if err != nil || r.Code != 220 {
		return r, err
	}
	if r, err = s.cmd("EHLO client.test"); err != nil || r.Code/100 != 2 || (login == "" && addr == "") {
		return r, err
	}
	var attrs []string
	if login != "" {
		attrs = append(attrs, "LOGIN="+xtext(login))
	}
	if addr != "" {
		attrs = append(attrs, "ADDR="+xtext(addr), "NAME=[UNAVAILABLE]")
	}
	if r, err = s.cmd("XCLIENT %s", strings.Join(attrs, " ")); err != nil || r.Code/100 != 2 {
		return r, err
	}
	return s.cmd("EHLO client.test")
}

func (s *session) cmd(format string, args ...any) (Reply, error) {
	if err := s.text.PrintfLine(format, args...); err != nil {
		return Reply{}, fmt.Errorf("testbench: send to %s: %w", s.addr, err)
	}
	return s.reply()
}

func (s *session) reply() (Reply, error) {
	code, msg, err := s.text.ReadResponse(0)
	if err != nil {
		return Reply{Code: code, Text: msg}, fmt.Errorf("testbench: read reply from %s: %w", s.addr, err)
	}
	return Reply{Code: code, Text: msg}, nil
}

// data sends the message after a 354 and reads the first reply to it.
func (s *session) data(msg []byte) (Reply, error) {
	w := s.text.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return Reply{}, fmt.Errorf("testbench: send message to %s: %w", s.addr, err)
	}
	if err := w.Close(); err != nil {
		return Reply{}, fmt.Errorf("testbench: send message to %s: %w", s.addr, err)
	}
	return s.reply()
}

func mailParams(p string) string {
	if p == "" {
		return ""
	}
	return " " + p
}

// xtext encodes an XCLIENT attribute value (RFC 3461 xtext, as XCLIENT_README requires).
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
