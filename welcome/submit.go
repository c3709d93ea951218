package welcome

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern-mail/postern/internal/config"
)

// submission is one SMTP session with the submission server, reused for every letter
// of a run.
type submission struct {
	c      *smtp.Client
	server string
}

// dialSubmission connects, secures and authenticates: implicit TLS (tls: true, port
// 465) or STARTTLS (starttls: true, port 587), the server's certificate verified against
// ca_file (or the system's roots) and server_name; then AUTH PLAIN (RFC 4616) when a
// username is set. A refused AUTH is a configuration error; anything else is temporary.
func dialSubmission(ctx context.Context, c config.WelcomeSMTP) (*submission, error) {
	tlsConf, err := submissionTLS(c)
	if err != nil {
		return nil, classify(ErrConfig, "welcome: smtp: %w", err)
	}
	d := net.Dialer{Timeout: c.Timeout.D()}
	conn, err := d.DialContext(ctx, "tcp", c.Server)
	if err != nil {
		return nil, classify(ErrTemporary, "welcome: smtp: connect to %s: %w", c.Server, err)
	}
	var cl *smtp.Client
	switch {
	case c.TLS:
		tc := tls.Client(conn, tlsConf)
		hctx, cancel := context.WithTimeout(ctx, c.Timeout.D())
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, classify(ErrTemporary, "welcome: smtp: TLS with %s: %w%s", c.Server, err, tlsHint(err))
		}
		cl = smtp.NewClient(tc)
	case c.StartTLS:
		// go-smtp says EHLO localhost before STARTTLS; helo_name follows on the secured
		// connection, which is the one Postfix's restrictions see.
		cl, err = smtp.NewClientStartTLS(conn, tlsConf)
		if err != nil {
			return nil, classify(ErrTemporary, "welcome: smtp: STARTTLS with %s: %w%s", c.Server, err, tlsHint(err))
		}
	default:
		cl = smtp.NewClient(conn)
	}
	cl.CommandTimeout = c.Timeout.D()
	cl.SubmissionTimeout = 2 * c.Timeout.D()
	s := &submission{c: cl, server: c.Server}
	if err := cl.Hello(heloName(c)); err != nil {
		s.close()
		// After STARTTLS the handshake happens here, so certificate errors show here too.
		return nil, classify(ErrTemporary, "welcome: smtp: EHLO to %s: %w%s", c.Server, err, tlsHint(err))
	}
	if c.Username != "" {
		if err := s.auth(c); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *submission) auth(c config.WelcomeSMTP) error {
	if !s.c.SupportsAuth(sasl.Plain) {
		return classify(ErrConfig, "welcome: smtp: %s offers no AUTH PLAIN (enable SASL on that service, or leave welcome.smtp.username empty)", c.Server)
	}
	err := s.c.Auth(sasl.NewPlainClient("", c.Username, c.Password.Reveal()))
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code >= 500:
		return classify(ErrConfig, "welcome: smtp: AUTH as %s at %s: %w (check welcome.smtp.username and password_file)", c.Username, c.Server, err)
	default:
		return classify(ErrTemporary, "welcome: smtp: AUTH as %s at %s: %w", c.Username, c.Server, err)
	}
}

func submissionTLS(c config.WelcomeSMTP) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(c.Server)
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w (check welcome.smtp.ca_file)", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate (check welcome.smtp.ca_file)", c.CAFile)
		}
	}
	return conf, nil
}

func tlsHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return " (the server's certificate is not signed by welcome.smtp.ca_file)"
	case errors.As(err, &badName):
		return " (set welcome.smtp.server_name to the name in the server's certificate)"
	}
	return ""
}

func heloName(c config.WelcomeSMTP) string {
	if c.HeloName != "" {
		return c.HeloName
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// send submits one letter. After any error the session is closed and the next letter
// gets a new one: no state of a failed transaction (a reset, a new EHLO that a server
// may take as the end of AUTH) carries over to the next user.
func (s *submission) send(l *Letter) (reply string, err error) {
	if err := s.c.Mail(l.EnvelopeFrom, nil); err != nil {
		return "", fmt.Errorf("MAIL FROM:<%s>: %w", l.EnvelopeFrom, err)
	}
	if err := s.c.Rcpt(l.To, nil); err != nil {
		return "", fmt.Errorf("RCPT TO:<%s>: %w", l.To, err)
	}
	w, err := s.c.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(l.Raw); err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", fmt.Errorf("end of DATA: %w", err)
	}
	return resp.StatusText, nil
}

func (s *submission) close() {
	if s.c.Quit() != nil {
		s.c.Close()
	}
}

// permanent reports whether err is the server's 5xx: retrying unchanged will not help
// (the letter is still retried at the next run; the operator must look).
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500
}
