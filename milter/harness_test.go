package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gm "github.com/emersion/go-milter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/journal"
	"github.com/postern-mail/postern/internal/service"
)

// harness is one milter daemon on a loopback port, with the unit tests' company
// (testdata/directory.yaml), a file journal and a fake inserter that records what it was
// asked to insert.
type harness struct {
	t       *testing.T
	d       *Daemon
	cfg     *config.Config
	reg     *prometheus.Registry
	dir     string
	mu      sync.Mutex
	inserts []insertion
}

// testConfig is the configuration of the unit tests; extra is appended YAML.
func testConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "marker.key"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`
domains: [corp.example.test, other.example.test]
internal_networks: [10.0.0.0/8]
trusted_relays: [10.9.9.9]
state_dir: %[1]s/state
directory: {backend: static, static: {file: %[2]s/directory.yaml}}
journal: {store: file, path: %[1]s/journal}
milter:
  listen: inet:127.0.0.1:0
  marker_key_file: %[1]s/marker.key
  disclaimer:
    html_file: %[2]s/disclaimer.html
    text_file: %[2]s/disclaimer.txt
    domains:
      other.example.test: {html_file: %[2]s/other-disclaimer.html, text_file: %[2]s/other-disclaimer.txt}
  signature:
    html_template_file: %[2]s/signature.html.tmpl
    text_template_file: %[2]s/signature.txt.tmpl
  journal: {enabled: true}
  traffic_log: {file: %[1]s/traffic.jsonl}
%[3]s`, dir, td, extra)
	c, err := config.Parse(filepath.Join(dir, "postern.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newHarness starts a milter; available false leaves the directory without a snapshot.
func newHarness(t *testing.T, c *config.Config, dir string, available bool) *harness {
	t.Helper()
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var resolver *directory.Resolver
	if available {
		var d *directory.Directory
		var err error
		d, resolver, err = directory.FromConfig(c, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	} else {
		resolver = directory.NewResolver(directory.New(directory.Options{Source: downSource{}}), directory.PolicyFrom(c))
	}
	d, err := newDaemon(service.Deps{Config: c, Log: zaptest.NewLogger(t), Registry: reg, Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, d: d, cfg: c, reg: reg, dir: dir}
	d.insert = h.fakeInsert
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

// fakeInsert appends the insertion's text to the body and, for a message without a
// Content-Type, declares it text/plain UTF-8 quoted-printable, like the real thing would.
func (h *harness) fakeInsert(hdr []header, body io.Reader, ins insertion, opt insertOptions) (insertOutcome, error) {
	h.mu.Lock()
	h.inserts = append(h.inserts, ins)
	h.mu.Unlock()
	b, err := io.ReadAll(body)
	if err != nil {
		return insertOutcome{}, err
	}
	for _, m := range ins.markers {
		if bytes.Contains(b, []byte(m)) {
			return insertOutcome{skipped: skipAlreadyStamped}, nil
		}
	}
	out := append(b, []byte("\r\n"+strings.ReplaceAll(ins.text, "\n", "\r\n"))...)
	res := insertOutcome{changed: true, body: io.NopCloser(bytes.NewReader(out))}
	for _, f := range hdr {
		if strings.EqualFold(f.name, "Content-Type") {
			return res, nil
		}
	}
	res.contentType, res.cte, res.mimeVersion = `text/plain; charset="utf-8"`, "quoted-printable", "1.0"
	return res, nil
}

func (h *harness) insertions() []insertion {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]insertion(nil), h.inserts...)
}

// mail is one message as Postfix would pass it.
type mail struct {
	client  string // client IP; "" is a local (unix socket) client
	login   string // {auth_authen}
	from    string
	to      []string
	headers [][2]string // default: From, To, Subject, Message-ID
	body    string      // LF line ends are turned into CRLF, as Postfix sends them
	queueID string
}

// result is the milter's answer to one message.
type result struct {
	mods []gm.ModifyAction
	act  *gm.Action
}

// session opens a milter connection and sends the connection and HELO stages.
func (h *harness) session(client string) *gm.ClientSession {
	h.t.Helper()
	c := gm.NewClientWithOptions("tcp", h.d.Addr().String(), gm.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gm.OptAddHeader | gm.OptChangeHeader | gm.OptChangeBody,
	})
	s, err := c.Session()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { s.Close() })
	family, addr := gm.FamilyInet, client
	if client == "" {
		family, addr = gm.FamilyUnix, "/var/spool/postfix/public/smtpd"
	}
	if _, err := s.Conn("client.example", family, 25, addr); err != nil {
		h.t.Fatal(err)
	}
	if _, err := s.Helo("helo.example"); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// send passes one message through the session, the way Postfix does: macros before
// each stage, the queue id from the first recipient on.
func (h *harness) send(s *gm.ClientSession, m mail) result {
	h.t.Helper()
	if m.queueID == "" {
		m.queueID = "4ABC123DEF"
	}
	must := func(a *gm.Action, err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
		if a.Code != gm.ActContinue {
			h.t.Fatalf("milter answered %c before end of message", a.Code)
		}
	}
	check := func(err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
	}
	check(s.Macros(gm.CodeMail, "{auth_authen}", m.login, "{client_addr}", m.client))
	must(s.Mail(m.from, nil))
	for _, r := range m.to {
		check(s.Macros(gm.CodeRcpt, "i", m.queueID))
		must(s.Rcpt(r, nil))
	}
	hdr := m.headers
	if hdr == nil {
		hdr = [][2]string{{"From", m.from}, {"To", strings.Join(m.to, ", ")}, {"Subject", "test"},
			{"Message-ID", "<" + m.queueID + "@client.example>"}}
	}
	var th textproto.Header
	for i := len(hdr) - 1; i >= 0; i-- {
		th.Add(hdr[i][0], hdr[i][1])
	}
	check(s.Macros(gm.CodeEOH, "i", m.queueID))
	must(s.Header(th))
	check(s.Macros(gm.CodeEOB, "i", m.queueID, "{auth_authen}", m.login))
	body := strings.ReplaceAll(m.body, "\n", "\r\n")
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	check(err)
	return result{mods, act}
}

// accepted reports whether Postfix would accept the message (continue or accept).
func (r result) accepted() bool {
	return r.act.Code == gm.ActContinue || r.act.Code == gm.ActAccept
}

// headerAdded returns the value of the first added header with that name.
func (r result) headerAdded(name string) (string, bool) {
	for _, m := range r.mods {
		if m.Code == gm.ActAddHeader && strings.EqualFold(m.HeaderName, name) {
			return m.HeaderValue, true
		}
	}
	return "", false
}

// body joins the SMFIR_REPLBODY packets; ok is false when the body is unchanged.
func (r result) body() (string, bool) {
	var b strings.Builder
	ok := false
	for _, m := range r.mods {
		if m.Code == gm.ActReplBody {
			b.Write(m.Body)
			ok = true
		}
	}
	return b.String(), ok
}

func (h *harness) journal(t *testing.T, id string) *journal.Entry {
	t.Helper()
	st, err := journal.OpenFile(h.cfg.Journal.Path, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("journal entry %q: %v", id, err)
	}
	return e
}

func (h *harness) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// downSource is a directory that never answers.
type downSource struct{}

func (downSource) Fetch(context.Context) ([]*directory.Object, error) {
	return nil, errors.New("ldap: connection refused")
}
func (downSource) Name() string { return "down" }
