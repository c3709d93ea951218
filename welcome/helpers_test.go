package welcome

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/testbench"
)

// t0 is when the test company's newest account before each test was created.
var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// fakeDir is a directory source the tests change between runs, and can take down.
type fakeDir struct {
	mu   sync.Mutex
	objs []*directory.Object
	down bool
}

func (f *fakeDir) Name() string { return "fake" }

func (f *fakeDir) Fetch(context.Context) ([]*directory.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("ldap: connect to ldaps://dc1:636: connection refused")
	}
	out := make([]*directory.Object, len(f.objs))
	for i, o := range f.objs { // NewSnapshot normalises addresses in place
		c := *o
		c.Addresses = append([]string(nil), o.Addresses...)
		out[i] = &c
	}
	return out, nil
}

func (f *fakeDir) add(objs ...*directory.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs = append(f.objs, objs...)
}

func (f *fakeDir) update(login string, change func(*directory.Object)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.objs {
		if o.Login == login {
			change(o)
		}
	}
}

func (f *fakeDir) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// person is an enabled user with a mailbox at corp.example.test; kv are attribute pairs.
func person(login, display string, created time.Time, kv ...string) *directory.Object {
	o := &directory.Object{DN: "CN=" + display + ",OU=Staff,DC=corp,DC=example,DC=test", Kind: directory.User,
		GUID: "guid-" + login, Login: login, Primary: login + "@corp.example.test", Created: created,
		Attrs: map[string]string{"displayName": display}}
	for i := 0; i+1 < len(kv); i += 2 {
		o.Attrs[kv[i]] = kv[i+1]
	}
	return o
}

func group(name string, members ...*directory.Object) *directory.Object {
	g := &directory.Object{DN: "CN=" + name + ",OU=Groups,DC=corp,DC=example,DC=test", Kind: directory.Group, Name: name}
	for _, m := range members {
		g.Members = append(g.Members, m.DN)
	}
	return g
}

// company is the directory every scenario starts from: three existing users.
func company() *fakeDir {
	return &fakeDir{objs: []*directory.Object{
		person("alice", "Alice Anderson", t0.Add(-30*24*time.Hour)),
		person("bob", "Bob Brown", t0.Add(-2*24*time.Hour)),
		person("carol", "Carol Clark", t0),
	}}
}

// clock is a settable time for the job.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// examples is the shipped template folder, which the tests use as it is.
func examples(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs("../examples/welcome")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// welcomeConfig loads a configuration with a welcome section through config.Parse, so
// defaults and validation apply as in production. smtp is the YAML of welcome.smtp.
func welcomeConfig(t testing.TB, smtp, extra string) config.Welcome {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "directory.yaml"), []byte("users: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "smtp.secret"), []byte("Welcome-Passw0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := examples(t)
	yml := fmt.Sprintf(`domains: [corp.example.test]
state_dir: %s
directory:
  backend: static
  static: {file: directory.yaml}
welcome:
  from: "IT Service Desk <it@corp.example.test>"
  subject: "Welcome to Corp, {{.DisplayName}} · 欢迎加入"
  html_template_file: %s/welcome.html
  text_template_file: %s/welcome.txt
  smtp: %s
%s`, filepath.Join(dir, "state"), ex, ex, smtp, extra)
	c, err := config.Parse(filepath.Join(dir, "postern.yaml"), []byte(yml))
	if err != nil {
		t.Fatalf("configuration:\n%v\n%s", err, yml)
	}
	return c.Welcome
}

// plainSMTP is the welcome.smtp of a test server without TLS or AUTH.
func plainSMTP(addr string) string {
	return fmt.Sprintf("{server: %q, allow_plaintext: true, timeout: 5s}", addr)
}

type harness struct {
	t     testing.TB
	dir   *fakeDir
	sink  *sink
	clock *clock
	cfg   config.Welcome
	job   *Job
	out   bytes.Buffer
}

// newHarness builds a job over dir that submits to a fresh in-process SMTP server.
func newHarness(t testing.TB, dir *fakeDir, extra string) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, sink: startSink(t, sinkOptions{}), clock: &clock{t: t0.Add(time.Hour)}}
	h.cfg = welcomeConfig(t, plainSMTP(h.sink.addr), extra)
	h.job = h.newJob()
	return h
}

func (h *harness) newJob() *Job {
	h.t.Helper()
	d := directory.New(directory.Options{Source: h.dir, Refresh: time.Minute, MaxStale: time.Hour, Now: h.clock.now})
	j, err := New(Options{Config: h.cfg, Directory: d, Out: &h.out, Now: h.clock.now, LockWait: 5 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) run(req Request) (Report, error) {
	h.t.Helper()
	return h.job.Run(context.Background(), req)
}

// mustRun runs and fails the test on an error.
func (h *harness) mustRun(req Request) Report {
	h.t.Helper()
	rep, err := h.run(req)
	if err != nil {
		h.t.Fatalf("run %+v: %v", req, err)
	}
	return rep
}

// ledger reads the ledger as the next run would.
func (h *harness) ledger() *ledger {
	h.t.Helper()
	l, err := loadLedger(h.cfg.LedgerFile())
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// sink is an in-process SMTP submission server that keeps every message it accepts.
type sink struct {
	mu       sync.Mutex
	addr     string
	opts     sinkOptions
	srv      *smtp.Server
	messages []received
	sessions int
}

type sinkOptions struct {
	tls      *tls.Config // with starttls: offered by STARTTLS; with implicit: on connect
	implicit bool
	user     string // AUTH PLAIN required when set
	password string
	reject   map[string]*smtp.SMTPError // by recipient
}

type received struct {
	From string
	To   []string
	Data []byte
}

func startSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	s := &sink{opts: o}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *sink) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = s.opts.tls == nil
	if s.opts.tls != nil && !s.opts.implicit {
		srv.TLSConfig = s.opts.tls
	}
	if s.opts.implicit {
		ln = tls.NewListener(ln, s.opts.tls)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// stop takes the server down: connections are refused until start.
func (s *sink) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// start brings the server back on the same address.
func (s *sink) start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

// reject makes the server refuse a recipient with err; nil accepts it again.
func (s *sink) reject(rcpt string, err *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.reject == nil {
		s.opts.reject = map[string]*smtp.SMTPError{}
	}
	if err == nil {
		delete(s.opts.reject, rcpt)
		return
	}
	s.opts.reject[rcpt] = err
}

func (s *sink) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.messages...)
}

type sinkSession struct {
	sink   *sink
	authed bool
	from   string
	to     []string
}

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.sink.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != ss.sink.opts.user || pass != ss.sink.opts.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.opts.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	e := ss.sink.opts.reject[to]
	ss.sink.mu.Unlock()
	if e != nil {
		return e
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	ss.sink.messages = append(ss.sink.messages, received{From: ss.from, To: ss.to, Data: b})
	ss.sink.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

// testCA makes a CA and a certificate for name signed by it: the server's TLS settings
// and the CA file a client verifies with.
func testCA(t testing.TB, name string) (*tls.Config, string) {
	t.Helper()
	f, err := testbench.WriteTLS(t.TempDir(), "welcome test CA", name)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, f.CAFile
}

// parsed is a welcome letter read back with go-message, the way a mail reader would.
type parsed struct {
	Header    mail.Header
	Subject   string
	To        []*mail.Address
	Text      string
	HTML      string
	Images    map[string][]byte // by Content-ID without brackets
	Types     []string          // every part's media type, depth first
	MessageID string
}

// parseLetter parses raw and fails the test unless it has the structure buildMessage
// promises: multipart/alternative of text/plain and (multipart/related of) text/html.
func parseLetter(t testing.TB, raw []byte) parsed {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a MIME message: %v", err)
	}
	p := parsed{Header: mail.Header{Header: e.Header}, Images: map[string][]byte{}}
	if p.Subject, err = p.Header.Subject(); err != nil {
		t.Fatalf("Subject: %v", err)
	}
	if p.To, err = p.Header.AddressList("To"); err != nil {
		t.Fatalf("To: %v", err)
	}
	if p.MessageID, err = p.Header.MessageID(); err != nil || p.MessageID == "" {
		t.Fatalf("Message-ID %q: %v", p.MessageID, err)
	}
	if d, err := p.Header.Date(); err != nil || d.IsZero() {
		t.Fatalf("Date %q: %v", p.Header.Get("Date"), err)
	}
	err = e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		mt, params, _ := part.Header.ContentType()
		p.Types = append(p.Types, mt)
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		body, err := io.ReadAll(part.Body) // go-message decodes the transfer encoding
		if err != nil {
			return err
		}
		switch {
		case mt == "text/plain":
			if params["charset"] != "utf-8" {
				t.Errorf("text/plain charset %q", params["charset"])
			}
			p.Text = string(body)
		case mt == "text/html":
			p.HTML = string(body)
		case strings.HasPrefix(mt, "image/"):
			p.Images[strings.Trim(part.Header.Get("Content-Id"), "<>")] = body
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk the MIME tree: %v", err)
	}
	return p
}
