package milter

import (
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"runtime/debug"
	"strings"
	"time"

	gm "github.com/emersion/go-milter"
	"go.uber.org/zap"
)

// session is one milter connection from Postfix, which lasts one SMTP session and may
// carry several messages. go-milter keeps the same session object for the whole
// connection as long as every reply "continues" (see verdict.response), so what arrives
// once per connection (client address, HELO) is kept here.
//
// Each stage's macros replace the previous ones in go-milter, so every value is copied
// out of the macros at the stage it arrives in.
type session struct {
	d    *Daemon
	conn *trackedConn // nil if go-milter built the session outside Serve's accept loop

	clientAddr string
	clientIP   netip.Addr // invalid for a local client
	clientName string
	helo       string

	msg *message
	// broken is a panic recovered before end of message: the message fails
	// temporarily at its end, and the connection goes on.
	broken error
}

// header is one header field as Postfix passed it: name, and value without the space
// after the colon, folded lines kept.
type header struct{ name, value string }

// message is the state of the message in progress.
type message struct {
	rules   *rules
	start   time.Time
	queueID string
	login   string
	sender  string
	rcpts   []string
	headers []header
	hdrSize int64 // header bytes as received
	body    *spool
	bodyLen int64 // body bytes as received, spooled or not
	plan    *plan // what to insert; nil when nothing
	tooBig  bool
	dir     Direction
	ext     int // external recipients

	notes     []string // stamp decisions, for the log line
	reason    string   // why nothing was stamped, when there is one
	journalID string
}

func (m *message) size() int64 { return m.hdrSize + 2 + m.bodyLen }

// guard runs one stage, turning a panic into a temporary failure of the current
// message only: at end of message it answers 451 at once, earlier it marks the message
// so that its end answers 451.
func (s *session) guard(stage string, f func() gm.Response) (resp gm.Response, err error) {
	return s.guardErr(stage, func() (gm.Response, error) { return f(), nil })
}

// guardErr is guard for a stage that can fail the connection (a reply that cannot be
// written): go-milter then closes it and Postfix applies milter_default_action.
func (s *session) guardErr(stage string, f func() (gm.Response, error)) (resp gm.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.d.metrics.panics.Inc()
			s.d.log.Error("milter: recovered panic; the message fails temporarily",
				zap.String("stage", stage), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			if stage == "eom" {
				resp = s.finish(tempfail("4.3.0", "Temporary local problem, try again later", fmt.Sprintf("panic: %v", v)))
				return
			}
			s.broken = fmt.Errorf("panic at %s: %v", stage, v)
			resp = gm.RespContinue
		}
	}()
	return f()
}

// takeMacros copies what this stage's macros carry.
func (s *session) takeMacros(m *gm.Modifier) {
	mac := m.Macros
	if v := mac["{client_addr}"]; v != "" && s.clientAddr == "" {
		s.setClient(v)
	}
	if v := mac["{client_name}"]; v != "" && s.clientName == "" {
		s.clientName = v
	}
	if s.msg == nil {
		return
	}
	if v := mac["i"]; v != "" {
		s.msg.queueID = v
	}
	if v := mac["{auth_authen}"]; v != "" {
		s.msg.login = v
	}
}

func (s *session) setClient(addr string) {
	s.clientAddr = addr
	if a, err := netip.ParseAddr(addr); err == nil {
		s.clientIP = a.Unmap()
	}
}

// Connect records the client; a unix-socket or unknown client counts as local.
func (s *session) Connect(host, family string, port uint16, addr net.IP, m *gm.Modifier) (gm.Response, error) {
	return s.guard("connect", func() gm.Response {
		s.clientName = host
		if addr != nil && (family == "tcp4" || family == "tcp6") {
			s.setClient(addr.String())
		}
		s.takeMacros(m)
		return gm.RespContinue
	})
}

// Helo records the HELO/EHLO name.
func (s *session) Helo(name string, m *gm.Modifier) (gm.Response, error) {
	return s.guard("helo", func() gm.Response {
		s.helo = name
		s.takeMacros(m)
		return gm.RespContinue
	})
}

// MailFrom starts a message. While the daemon shuts down, new messages are deferred.
func (s *session) MailFrom(from string, m *gm.Modifier) (gm.Response, error) {
	return s.guard("mail", func() gm.Response {
		s.reset()
		if s.d.shutting.Load() {
			return tempfail("4.3.2", "Service shutting down, try again later", "shutting down").response()
		}
		s.msg = &message{rules: s.d.rules.Load(), start: s.d.now(), sender: from}
		s.d.metrics.inFlight.Inc()
		s.d.busy.Add(1)
		s.takeMacros(m)
		return gm.RespContinue
	})
}

// RcptTo records an accepted recipient. Postfix passes only recipients it accepted.
func (s *session) RcptTo(rcpt string, m *gm.Modifier) (gm.Response, error) {
	return s.guard("rcpt", func() gm.Response {
		s.takeMacros(m)
		if s.msg != nil {
			s.msg.rcpts = append(s.msg.rcpts, rcpt)
		}
		return gm.RespContinue
	})
}

// Header keeps every header field in order.
func (s *session) Header(name, value string, m *gm.Modifier) (gm.Response, error) {
	return s.guard("header", func() gm.Response {
		if s.msg != nil {
			s.msg.headers = append(s.msg.headers, header{name, value})
			s.msg.hdrSize += int64(len(name) + 2 + len(value) + 2)
		}
		return gm.RespContinue
	})
}

// Headers decides the direction and whether the body is needed at all: only a message
// that may be stamped is spooled.
func (s *session) Headers(_ textproto.MIMEHeader, m *gm.Modifier) (gm.Response, error) {
	return s.guard("eoh", func() gm.Response {
		s.takeMacros(m)
		if s.msg == nil {
			return gm.RespContinue
		}
		s.classify()
		s.msg.plan = s.planStamps()
		if s.msg.plan != nil {
			s.msg.body = newSpool(s.msg.rules.spill, s.msg.rules.tempDir)
		}
		return gm.RespContinue
	})
}

// BodyChunk spools the body of a message that may be stamped, until it passes
// max_body_size; beyond that the message passes unchanged.
func (s *session) BodyChunk(chunk []byte, m *gm.Modifier) (gm.Response, error) {
	return s.guard("body", func() gm.Response {
		msg := s.msg
		if msg == nil {
			return gm.RespContinue
		}
		msg.bodyLen += int64(len(chunk))
		if msg.body == nil {
			return gm.RespContinue
		}
		if msg.bodyLen > msg.rules.maxBody {
			msg.tooBig = true
			msg.body.Close()
			msg.body = nil
			return gm.RespContinue
		}
		if _, err := msg.body.Write(chunk); err != nil {
			s.d.log.Warn("milter: cannot spool the body; the message passes unchanged", zap.Error(err))
			msg.plan.failed = err
			msg.body.Close()
			msg.body = nil
		}
		return gm.RespContinue
	})
}

// Body is the end of message: stamp, journal, reply.
func (s *session) Body(m *gm.Modifier) (gm.Response, error) {
	return s.guardErr("eom", func() (gm.Response, error) {
		s.takeMacros(m)
		return s.endOfMessage(m)
	})
}

// Abort forgets the message in progress; the connection goes on.
func (s *session) Abort(m *gm.Modifier) error {
	s.reset()
	return nil
}

// reset releases the message in progress, if any.
func (s *session) reset() {
	if s.msg == nil {
		return
	}
	if s.msg.body != nil {
		s.msg.body.Close()
	}
	s.msg = nil
	s.d.metrics.inFlight.Dec()
	s.d.busy.Add(-1)
}

// finish logs and counts a verdict, releases the message and returns the reply.
func (s *session) finish(v verdict) gm.Response {
	if msg := s.msg; msg != nil {
		if msg.dir == "" {
			msg.dir = "unknown" // failed before its recipients were classified
		}
		s.d.metrics.count(msg.dir, v.action, len(msg.rcpts), msg.size())
		s.d.metrics.duration.Observe(s.d.now().Sub(msg.start).Seconds())
		s.logVerdict(v)
	}
	s.broken = nil
	s.reset()
	return v.response()
}

// classify works out the message's direction once every recipient is known.
func (s *session) classify() {
	msg := s.msg
	for _, r := range msg.rcpts {
		if isExternalRecipient(s.d.resolver, r) {
			msg.ext++
		}
	}
	o := origin{Authenticated: msg.login != "", Client: s.clientIP,
		SenderInternal: isInternalSender(s.d.resolver, msg.sender)}
	msg.dir = msg.rules.nets.classify(o, msg.ext)
}

// headerValue returns the first value of a header field (case-insensitive name).
func (m *message) headerValue(name string) (string, int) {
	n, first := 0, ""
	for _, h := range m.headers {
		if strings.EqualFold(h.name, name) {
			if n == 0 {
				first = h.value
			}
			n++
		}
	}
	return first, n
}

// logVerdict writes the operator's line for the message and its traffic log line.
func (s *session) logVerdict(v verdict) {
	msg := s.msg
	fields := []zap.Field{zap.String("queue_id", msg.queueID), zap.String("direction", string(msg.dir)),
		zap.String("action", v.action), zap.Int("recipients", len(msg.rcpts)), zap.Int64("size", msg.size())}
	if msg.journalID != "" {
		fields = append(fields, zap.String("journal_id", msg.journalID))
	}
	if len(msg.notes) > 0 {
		fields = append(fields, zap.Strings("stamps", msg.notes))
	}
	reason := v.reason
	if reason == "" {
		reason = msg.reason
	}
	if reason != "" {
		fields = append(fields, zap.String("reason", reason))
	}
	if v.action == actionTempfail {
		s.d.log.Warn("milter: message deferred", fields...)
	} else {
		s.d.log.Info("milter: message", fields...)
	}
	line := trafficLine{Time: s.d.now().UTC(), QueueID: msg.queueID, Direction: msg.dir, Action: v.action,
		SenderDomain: senderDomain(msg.sender), InternalRecipients: len(msg.rcpts) - msg.ext,
		ExternalRecipients: msg.ext, Size: msg.size()}
	if msg.rules.logAddresses {
		sender := msg.sender
		line.Sender, line.Recipients = &sender, msg.rcpts
	}
	if err := s.d.traffic.Load().write(line); err != nil {
		s.d.log.Warn("milter: cannot write the traffic log", zap.Error(err))
	}
}
