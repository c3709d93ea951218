package policyd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
)

// testConfig is the configuration of the unit tests and golden dialogs: the static
// company of testdata/directory.yaml and policyd on a unix socket; the rest of the
// policyd section is appended.
const testConfig = `domains: [corp.example.test, other.example.test]
domain_aliases: {alias.example.test: corp.example.test}
recipient_delimiter: "+"
internal_networks: [127.0.0.0/8]
trusted_relays: [192.0.2.25]
directory:
  backend: static
  static: {file: %s}
policyd:
  listen: unix:%s
%s`

// basePolicyd is the policyd section most tests start from.
const basePolicyd = `  internal_only: {groups: [Interns], reject_text: "interns may only send to internal addresses"}
  exempt: {networks: [192.0.2.10/32], logins: [scanner]}
`

// testDaemon is a policyd over the static test directory, with its metrics and logs.
type testDaemon struct {
	*Daemon
	cfg  *config.Config
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

type testOptions struct {
	unsynced bool        // the directory never had a snapshot: every lookup is temporary
	log      *zap.Logger // instead of recording every entry (benchmarks: production's)
}

func newTestDaemon(t testing.TB, policydYAML string, opts ...testOptions) *testDaemon {
	t.Helper()
	var o testOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dirFile, err := filepath.Abs("testdata/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortTempDir(t), "policy.sock")
	c, err := config.Parse("test.yaml", fmt.Appendf(nil, testConfig, dirFile, sock, policydYAML))
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(directory.Options{Source: directory.StaticSource{Path: dirFile}, Refresh: time.Minute, MaxStale: time.Hour})
	if !o.unsynced {
		if err := dir.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	log := zap.New(core)
	if o.log != nil {
		log = o.log
	}
	d, err := New(service.Deps{Config: c, Log: log, Registry: reg, Directory: dir,
		Resolver: directory.NewResolver(dir, directory.PolicyFrom(c))})
	if err != nil {
		t.Fatal(err)
	}
	return &testDaemon{Daemon: d, cfg: c, reg: reg, logs: logs}
}

// shortTempDir is a temporary directory with a short path: a unix socket path is
// limited to 108 bytes, and t.TempDir() under a long test name exceeds it.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "policyd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// start serves on the unix socket until the test ends.
func (d *testDaemon) start(t testing.TB) {
	t.Helper()
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
}

func (d *testDaemon) decide(r *Request) Verdict {
	return d.policy.Load().Decide(context.Background(), r)
}

// counter reads one series of a counter vector.
func counter(t testing.TB, c *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

// outside is a client address no network in the test configuration contains.
const outside = "198.51.100.7"

// at builds a request at a protocol stage from a client with a SASL login ("" for
// none), an envelope sender and a recipient.
func at(stage, client, login, sender, recipient string) *Request {
	return &Request{Request: "smtpd_access_policy", ProtocolState: stage, ProtocolName: "ESMTP",
		ClientAddress: client, SASLUsername: login, Sender: sender, Recipient: recipient, Instance: "test.instance"}
}

func rcpt(login, sender, recipient string) *Request {
	return at("RCPT", outside, login, sender, recipient)
}

// eom is an END-OF-MESSAGE request of a message identified by instance.
func eom(login, instance string, recipients, size int64) *Request {
	r := at("END-OF-MESSAGE", outside, login, login+"@corp.example.test", "")
	r.Instance, r.RecipientCount, r.Size = instance, recipients, size
	return r
}

// policyClient speaks the policy protocol over one connection, as Postfix does.
type policyClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialPolicy(t testing.TB, network, addr string) *policyClient {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &policyClient{conn: c, br: bufio.NewReader(c)}
}

// ask sends one request and returns the action of its reply ("DUNNO", "REJECT 5.7.1 …").
func (c *policyClient) ask(r *Request) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, encode(r)); err != nil {
		return "", err
	}
	line, err := c.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if blank, err := c.br.ReadString('\n'); err != nil || blank != "\n" {
		return "", fmt.Errorf("reply %q not followed by an empty line (%q, %v)", line, blank, err)
	}
	action, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "action=")
	if !ok {
		return "", fmt.Errorf("reply %q does not start with action=", line)
	}
	return action, nil
}

// counter0 reads a counter without labels.
func counter0(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
