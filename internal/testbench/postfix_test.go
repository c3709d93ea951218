package testbench

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestPostfix(t *testing.T) {
	p := StartPostfix(t, PostfixOptions{})

	t.Run("external mail reaches smtp-sink", func(t *testing.T) {
		code, text, err := SendMail(p.SMTPAddr, Mail{
			From: "erin@corp.example.test",
			To:   []string{"x@external.example", "y@external.example"},
			Data: []byte("From: erin@corp.example.test\nSubject: to the sink\nMessage-ID: <sink-1@test>\n\nline\n.starts with a dot\n"),
		})
		if err != nil || code != 250 {
			t.Fatalf("SendMail = %d %s, %v; want 250", code, text, err)
		}
		msgs := p.WaitSinkMessages(t, 1, 10*time.Second)
		if len(msgs) != 1 {
			t.Fatalf("smtp-sink got %d messages, want 1", len(msgs))
		}
		m := msgs[0]
		if m.From != "erin@corp.example.test" || strings.Join(m.To, ",") != "x@external.example,y@external.example" {
			t.Errorf("envelope = %q -> %q", m.From, m.To)
		}
		if m.Subject != "to the sink" || m.MessageID != "<sink-1@test>" {
			t.Errorf("Subject %q, Message-ID %q", m.Subject, m.MessageID)
		}
		if strings.Contains(string(m.Raw), "smtp-sink") || !strings.HasSuffix(string(m.Raw), "\n.starts with a dot\n") {
			t.Errorf("message as dumped:\n%s", m.Raw)
		}
	})

	t.Run("XCLIENT LOGIN reaches a policy server, 4xx and 5xx kept apart", func(t *testing.T) {
		policy := startPolicyServer(t, map[string]string{
			"frank": "REJECT 5.7.1 frank may not send",
			"grace": "DEFER 4.7.1 try later, grace",
		})
		p.Postconf(t, map[string]string{
			"smtpd_recipient_restrictions": "check_policy_service inet:" + policy.addr + ", permit_mynetworks, reject",
		})
		for _, tc := range []struct {
			login    string
			wantCode int
		}{{"frank", 554}, {"grace", 450}, {"heidi", 250}, {"", 250}} {
			code, text, err := SendMail(p.SMTPAddr, Mail{
				From: "x@corp.example.test", To: []string{"z@external.example"}, XClientLogin: tc.login,
				Data: []byte("Subject: policy\n\nbody\n"),
			})
			if err != nil || code != tc.wantCode {
				t.Errorf("login %q: SendMail = %d %s, %v; want %d", tc.login, code, text, err, tc.wantCode)
			}
		}
		if got := policy.logins(); !strings.Contains(got, "frank") || !strings.Contains(got, "grace") {
			t.Errorf("policy server saw sasl_username %s", got)
		}
		p.WaitQueueEmpty(t, 10*time.Second)
	})

	t.Run("Postmap against inline", func(t *testing.T) {
		table := "inline:{ a@b=c, d@e=f }"
		if v, err := p.Postmap("a@b", table); err != nil || v != "c" {
			t.Errorf("Postmap(a@b) = %q, %v; want c", v, err)
		}
		if v, err := p.Postmap("nobody@b", table); !errors.Is(err, ErrNotFound) {
			t.Errorf("Postmap(nobody@b) = %q, %v; want ErrNotFound", v, err)
		}
		out, err := p.PostmapBatch([]string{"a@b", "nobody@b", "d@e"}, table)
		if err != nil || out != "a@b\tc\nd@e\tf\n" {
			t.Errorf("PostmapBatch = %q, %v", out, err)
		}
	})
}

// TestPostfixTableDown runs on its own because postmap retries a tcp: table for 10 s.
func TestPostfixTableDown(t *testing.T) {
	t.Parallel()
	p := StartPostfix(t, PostfixOptions{})
	table := fmt.Sprintf("tcp:127.0.0.1:%d", FreePort(t))
	_, err := p.Postmap("a@b", table)
	var perr *PostmapError
	if !errors.As(err, &perr) || errors.Is(err, ErrNotFound) || !strings.Contains(perr.Stderr, "fatal") {
		t.Fatalf("Postmap against %s = %v; want a failure that is not ErrNotFound", table, err)
	}
	lines := strings.Split(strings.TrimSpace(perr.Stderr), "\n")
	t.Logf("as expected, postmap exited %d: %s", perr.ExitCode, lines[len(lines)-1])
}

func TestParseSinkDump(t *testing.T) {
	dump := "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: mx.corp.example.test\n" +
		"X-Mail-Args: <erin@corp.example.test> SIZE=99\nX-Rcpt-Args: <a@x.example> ORCPT=rfc822;a@x.example\n" +
		"X-Rcpt-Args: <b@x.example>\nReceived: from mx.corp.example.test ([127.0.0.1])\n\tby sink.test (smtp-sink) with ESMTP id 1;\n" +
		"\tSun, 22 Nov 2026 06:42:09 +0000 (UTC)\nReceived: from vm\n\tby mx.corp.example.test (Postfix)\n" +
		"X-Custom: kept\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\nMessage-Id: <m@x>\n\nbody\n\n"
	m := parseSinkDump("f", []byte(dump))
	if m.From != "erin@corp.example.test" || strings.Join(m.To, " ") != "a@x.example b@x.example" {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	want := "Received: from vm\n\tby mx.corp.example.test (Postfix)\nX-Custom: kept\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\nMessage-Id: <m@x>\n\nbody\n"
	if string(m.Raw) != want {
		t.Errorf("Raw = %q\nwant %q", m.Raw, want)
	}
	if m.Subject != "grüße" || m.MessageID != "<m@x>" {
		t.Errorf("Subject %q, Message-ID %q", m.Subject, m.MessageID)
	}
}

func TestXtext(t *testing.T) {
	if got := xtext("a+b=c d\x01"); got != "a+2Bb+3Dc+20d+01" {
		t.Errorf("xtext = %q", got)
	}
}

// policyServer is a Postfix policy delegation server (SMTPD_POLICY_README) that answers by
// sasl_username and remembers the usernames it saw.
type policyServer struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startPolicyServer(t *testing.T, actions map[string]string) *policyServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &policyServer{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, actions)
		}
	}()
	return s
}

func (s *policyServer) serve(c net.Conn, actions map[string]string) {
	defer c.Close()
	r := bufio.NewScanner(c)
	attrs := map[string]string{}
	for r.Scan() {
		if k, v, ok := strings.Cut(r.Text(), "="); ok {
			attrs[k] = v
			continue
		}
		s.mu.Lock()
		s.seen = append(s.seen, attrs["sasl_username"])
		s.mu.Unlock()
		action, ok := actions[attrs["sasl_username"]]
		if !ok {
			action = "DUNNO"
		}
		fmt.Fprintf(c, "action=%s\n\n", action)
		attrs = map[string]string{}
	}
}

func (s *policyServer) logins() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.seen, ",")
}

// TestPostfixSubmission checks the submission services as a mail client of a real site meets
// them: STARTTLS with a certificate verified against the bench CA, AUTH only after it and only
// with the right password, relaying only once logged in, and implicit TLS on the smtps port.
func TestPostfixSubmission(t *testing.T) {
	t.Parallel()
	const user, password = "welcome@corp.example.test", "Subm1t-Passw0rd"
	p := StartPostfix(t, PostfixOptions{Submission: &PostfixSubmission{User: user, Password: password}})
	tlsConf := p.TLSConfig(t)
	msg := func(id string) *strings.Reader {
		return strings.NewReader("From: welcome@corp.example.test\r\nSubject: submitted\r\nMessage-ID: <" + id + "@test>\r\n\r\nbody\r\n")
	}
	// startTLS connects to the submission port and secures the session with STARTTLS.
	startTLS := func(t *testing.T) *smtp.Client {
		t.Helper()
		c, err := smtp.DialStartTLS(p.SubmissionAddr, tlsConf)
		if err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("client.test"); err != nil {
			t.Fatalf("EHLO after STARTTLS (the handshake): %v", err)
		}
		if st, ok := c.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
			t.Fatalf("TLS state %+v, %v: the certificate was not verified", st, ok)
		}
		return c
	}
	wantCode := func(t *testing.T, what string, err error, code int) {
		t.Helper()
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != code {
			t.Errorf("%s: %v; want %d", what, err, code)
		}
	}

	t.Run("STARTTLS, AUTH PLAIN, relayed to the sink", func(t *testing.T) {
		c := startTLS(t)
		if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
			t.Errorf("after STARTTLS: AUTH %v %q; want PLAIN and LOGIN", ok, mechs)
		}
		if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
			t.Fatalf("AUTH PLAIN with the right password: %v", err)
		}
		if err := c.SendMail(user, []string{"new.hire@corp.example.test"}, msg("submission-1")); err != nil {
			t.Fatalf("send after AUTH: %v", err)
		}
		msgs := p.WaitSinkMessages(t, 1, 10*time.Second)
		if m := msgs[len(msgs)-1]; m.MessageID != "<submission-1@test>" || m.From != user {
			t.Errorf("smtp-sink got %s from %s", m.MessageID, m.From)
		}
	})

	t.Run("a wrong password is 535", func(t *testing.T) {
		c := startTLS(t)
		wantCode(t, "AUTH PLAIN with a wrong password", c.Auth(sasl.NewPlainClient("", user, "wrong")), 535)
	})

	t.Run("no relaying without AUTH", func(t *testing.T) {
		c := startTLS(t)
		if err := c.Mail(user, nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "RCPT without AUTH", c.Rcpt("new.hire@corp.example.test", nil), 554)
	})

	t.Run("AUTH and MAIL refused before STARTTLS", func(t *testing.T) {
		c, err := smtp.Dial(p.SubmissionAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Error("the submission port offers no STARTTLS")
		}
		if ok, mechs := c.Extension("AUTH"); ok {
			t.Errorf("AUTH %s offered before STARTTLS", mechs)
		}
		wantCode(t, "MAIL in the clear", c.Mail(user, nil), 530)
		// go-smtp answers a refused AUTH with "*", which Postfix takes as the end: last.
		err = c.Auth(sasl.NewPlainClient("", user, password))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			t.Errorf("AUTH PLAIN in the clear: %v; want a 5xx", err)
		}
		t.Logf("as expected, AUTH PLAIN in the clear: %v", err)
	})

	t.Run("a client that trusts other CAs refuses the certificate", func(t *testing.T) {
		c, err := smtp.DialStartTLS(p.SubmissionAddr, &tls.Config{ServerName: p.ServerName}) // the system's roots
		if err == nil {
			defer c.Close()
			err = c.Hello("client.test")
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("STARTTLS verified against the system's roots: %v; want an unknown authority", err)
		}
	})

	t.Run("implicit TLS, AUTH LOGIN", func(t *testing.T) {
		c, err := smtp.DialTLS(p.SMTPSAddr, tlsConf)
		if err != nil {
			t.Fatalf("TLS to the smtps port: %v", err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if st, ok := c.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
			t.Fatalf("TLS state %+v, %v: the certificate was not verified", st, ok)
		}
		if err := c.Auth(sasl.NewLoginClient(user, password)); err != nil {
			t.Fatalf("AUTH LOGIN: %v", err)
		}
		if err := c.SendMail(user, []string{"new.hire@corp.example.test"}, msg("smtps-1")); err != nil {
			t.Fatalf("send after AUTH: %v", err)
		}
		msgs := p.WaitSinkMessages(t, 2, 10*time.Second)
		if m := msgs[len(msgs)-1]; m.MessageID != "<smtps-1@test>" {
			t.Errorf("smtp-sink got %s last", m.MessageID)
		}
	})
}
