package tcptable

import (
	"bufio"
	"bytes"
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
	"go.uber.org/zap/zaptest/observer"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/service"
)

// testDaemon is the daemon on loopback ports chosen by the kernel, over a static
// directory, with its log lines and metrics at hand.
type testDaemon struct {
	*Daemon
	dir  *directory.Directory
	logs *observer.ObservedLogs
	reg  *prometheus.Registry
}

// startDaemon starts tcptable with socketmap and every map over tcp. sync false leaves
// the directory without a snapshot, as before the first sync.
func startDaemon(t *testing.T, dirFile string, sync bool, edit func(*config.Tcptable)) *testDaemon {
	t.Helper()
	c := config.Defaults()
	c.Tcptable.Socketmap = config.Listen{Network: "tcp", Address: "127.0.0.1:0"}
	c.Tcptable.TCP = map[string]config.Listen{}
	for _, m := range config.TcptableMaps {
		c.Tcptable.TCP[m] = config.Listen{Network: "tcp", Address: "127.0.0.1:0"}
	}
	if edit != nil {
		edit(&c.Tcptable)
	}
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: dirFile}, Refresh: time.Minute, MaxStale: time.Hour})
	if sync {
		if err := d.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	daemon := New(service.Deps{Config: &c, Log: zap.New(core), Registry: reg, Directory: d, Resolver: directory.NewResolver(d, testPolicy())})
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		daemon.Shutdown(ctx)
	})
	return &testDaemon{Daemon: daemon, dir: d, logs: logs, reg: reg}
}

// addr is where a protocol listens: "socketmap", or a map name for its tcp listener.
func (d *testDaemon) addr(t *testing.T, which string) string {
	t.Helper()
	a := d.addrs[which]
	if a == nil {
		t.Fatalf("no listener for %s", which)
	}
	return a.String()
}

// dialog writes requests in one go (as a pipelining client would) and reads n replies.
func dialog(t *testing.T, addr string, requests string, read func(*bufio.Reader) (string, error), n int) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, requests); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var replies []string
	for range n {
		s, err := read(r)
		if err != nil {
			t.Fatalf("after %q: %v", replies, err)
		}
		replies = append(replies, s)
	}
	return replies
}

func readNS(r *bufio.Reader) (string, error) {
	p, err := readNetstring(r, socketmapMaxReply)
	return string(p), err
}

func readTCP(r *bufio.Reader) (string, error) { return r.ReadString('\n') }

func ns(s ...string) string {
	var b []byte
	for _, x := range s {
		b = appendNetstring(b, x)
	}
	return string(b)
}

func TestSocketmapDialog(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	got := dialog(t, d.addr(t, "socketmap"), ns(
		"mailboxes Alice+News@CORP.EXAMPLE.TEST",
		"aliases all@corp.example.test",
		"aliases alice@corp.example.test",
		"aliases corp.example.test",
		"domains bücher.example.test",
		"senders a.anderson@corp.example.test",
		"shadow carol@alias.example.test",
		"virtual alice@corp.example.test",
		"mailboxes",
		"mailboxes x%evil.example@corp.example.test",
		"aliases shared@corp.example.test",
	), readNS, 11)
	want := []string{
		"OK alice@corp.example.test",
		"OK alice@corp.example.test,bob@corp.example.test,carol@corp.example.test,erin@corp.example.test",
		"NOTFOUND ",
		"NOTFOUND ",
		"OK xn--bcher-kva.example.test",
		"OK alice",
		"OK shadow@corp.example.test",
		"PERM unknown map",
		"NOTFOUND ",
		"NOTFOUND ",
		"TEMP ambiguous address in the directory",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies, in order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTCPDialog(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	got := dialog(t, d.addr(t, "aliases"), "get Alice+News@CORP.EXAMPLE.TEST\n"+
		"get anna@b%C3%BCcher.example.test\n"+
		"get partners@corp.example.test\n"+
		"get nobody@corp.example.test\n"+
		"get corp.example.test\n"+
		"get bad%zz\n"+
		"put k v\r\n"+
		"get shared@corp.example.test\n", readTCP, 8)
	want := []string{
		"200 alice+News@corp.example.test\n",
		"200 alice@corp.example.test\n",
		"200 bob@partner.example,erin@corp.example.test\n",
		"500 not%20found\n",
		"500 not%20found\n",
		"500 not%20found\n",
		"400 unsupported%20request\n",
		"400 ambiguous%20address%20in%20the%20directory\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("replies, in order:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
	if got := dialog(t, d.addr(t, "domains"), "get Corp.Example.Test.\n", readTCP, 1); got[0] != "200 corp.example.test\n" {
		t.Fatalf("the domains listener answered %q", got[0])
	}
}

func TestMalformedRequestClosesOnlyItsConnection(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	for _, tt := range []struct{ which, garbage string }{
		{"socketmap", "05:hello,"},
		{"socketmap", "5:hello;"},
		{"socketmap", "99999999:"},
		{"aliases", "get " + strings.Repeat("x", maxRequest) + "\n"},
	} {
		good, err := net.Dial("tcp", d.addr(t, "socketmap"))
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		bad, err := net.Dial("tcp", d.addr(t, tt.which))
		if err != nil {
			t.Fatal(err)
		}
		bad.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(bad, tt.garbage)
		if _, err := io.ReadAll(bad); err != nil {
			t.Fatalf("%q: %v, want the connection closed", tt.garbage, err)
		}
		bad.Close()
		good.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(good, ns("mailboxes bob@corp.example.test"))
		if got, err := readNS(bufio.NewReader(good)); err != nil || got != "OK bob@corp.example.test" {
			t.Fatalf("after %q on another connection: %q %v", tt.garbage, got, err)
		}
	}
	if n := testutil.ToFloat64(d.srv.metrics.badRequests.WithLabelValues("socketmap")); n != 3 {
		t.Errorf("bad socketmap requests counted: %v, want 3", n)
	}
	if n := d.logs.FilterMessage("malformed request; connection closed").Len(); n != 4 {
		t.Errorf("%d log lines for malformed requests, want 4", n)
	}
}

// bigDirectory writes a static directory with one list of n members.
func bigDirectory(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	var members []string
	for i := range n {
		fmt.Fprintf(&b, "  - {login: user%04d, mail: user%04d@corp.example.test}\n", i, i)
		members = append(members, fmt.Sprintf("user%04d", i))
	}
	fmt.Fprintf(&b, "groups:\n  - {name: Everyone, mail: everyone@corp.example.test, members: [%s]}\n", strings.Join(members, ", "))
	path := filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOversizedAnswerIsTemporaryWithALogLine(t *testing.T) {
	// 200 members: 5,400 bytes, over tcp_table's 4,096 but within socketmap's 100,000.
	d := startDaemon(t, bigDirectory(t, 200), true, nil)
	got := dialog(t, d.addr(t, "aliases"), "get everyone@corp.example.test\n", readTCP, 1)
	if got[0] != "400 answer%20too%20large\n" {
		t.Fatalf("tcp: %q, want a temporary failure, never a truncated list", got[0])
	}
	logs := d.logs.FilterMessage("lookup failed; Postfix defers the mail and retries").All()
	if len(logs) != 1 {
		t.Fatalf("%d log lines, want 1", len(logs))
	}
	reason := logs[0].ContextMap()["reason"].(string)
	for _, want := range []string{"everyone@corp.example.test", "4096", "never truncated"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the log line does not say %q: %s", want, reason)
		}
	}
	sm := dialog(t, d.addr(t, "socketmap"), ns("aliases everyone@corp.example.test"), readNS, 1)[0]
	if !strings.HasPrefix(sm, "OK user0000@corp.example.test,") || strings.Count(sm, "@") != 200 {
		t.Fatalf("socketmap: %.80q… with %d addresses, want all 200", sm, strings.Count(sm, "@"))
	}
}

func TestSocketmapLimitIsTemporary(t *testing.T) {
	// 4,000 members of 27 bytes each: 108,000 bytes, over socketmap's 100,000.
	d := startDaemon(t, bigDirectory(t, 4000), true, nil)
	if got := dialog(t, d.addr(t, "socketmap"), ns("aliases everyone@corp.example.test"), readNS, 1)[0]; got != "TEMP answer too large" {
		t.Fatalf("socketmap: %.80q, want TEMP", got)
	}
}

func TestDirectoryUnavailableIsTemporaryWithALogLine(t *testing.T) {
	d := startDaemon(t, testDirectory, false, nil)
	if got := dialog(t, d.addr(t, "socketmap"), ns("mailboxes alice@corp.example.test", "domains corp.example.test"), readNS, 2); got[0] != "TEMP directory unavailable" || got[1] != "OK corp.example.test" {
		t.Fatalf("socketmap before the first sync: %q", got)
	}
	if got := dialog(t, d.addr(t, "aliases"), "get alice@corp.example.test\n", readTCP, 1); got[0] != "400 directory%20unavailable\n" {
		t.Fatalf("tcp before the first sync: %q", got)
	}
	logs := d.logs.FilterMessage("lookup failed; Postfix defers the mail and retries").All()
	if len(logs) != 2 {
		t.Fatalf("%d log lines, want one per temporary failure (2)", len(logs))
	}
	if f := logs[1].ContextMap(); f["map"] != "aliases" || f["protocol"] != "tcp" || f["key"] != "alice@corp.example.test" ||
		!strings.Contains(f["reason"].(string), "no snapshot yet") {
		t.Errorf("log line fields: %v", f)
	}
}

func TestMetricsCountLookups(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	dialog(t, d.addr(t, "socketmap"), ns("mailboxes alice@corp.example.test", "mailboxes nobody@corp.example.test", "nosuch x"), readNS, 3)
	dialog(t, d.addr(t, "senders"), "get alice@corp.example.test\n", readTCP, 1)
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"mailboxes", "socketmap", "found"}, 1},
		{[]string{"mailboxes", "socketmap", "notfound"}, 1},
		{[]string{"unknown", "socketmap", "perm"}, 1},
		{[]string{"senders", "tcp", "found"}, 1},
		{[]string{"senders", "socketmap", "found"}, 0},
	} {
		if got := testutil.ToFloat64(d.srv.metrics.lookups.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("lookups%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if n, err := testutil.GatherAndCount(d.reg, "postern_tcptable_lookup_duration_seconds"); err != nil || n != 2 {
		t.Errorf("latency histograms: %d %v, want one per protocol", n, err)
	}
}

func TestIdleConnectionIsClosed(t *testing.T) {
	d := startDaemon(t, testDirectory, true, func(c *config.Tcptable) { c.IdleTimeout = config.Duration(100 * time.Millisecond) })
	c, err := net.Dial("tcp", d.addr(t, "socketmap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(c); err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("idle connection: %v after %s, want closed after 100ms", err, time.Since(start))
	}
}

func TestShutdownDrains(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	addr := d.addr(t, "socketmap")
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(idle, ns("mailboxes alice@corp.example.test"))
	readNS(bufio.NewReader(idle))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("shutdown waited %s for an idle connection", time.Since(start))
	}
	if _, err := io.ReadAll(idle); err != nil {
		t.Errorf("idle connection after shutdown: %v, want closed", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tables.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // what a crash leaves behind
	startDaemon(t, testDirectory, true, func(c *config.Tcptable) {
		c.Socketmap = config.Listen{Network: "unix", Address: path}
		c.TCP = nil
	})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v %v, want mode 0660", path, fi.Mode(), err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, ns("recipients sales@corp.example.test"))
	if got, err := readNS(bufio.NewReader(c)); got != "OK sales@corp.example.test" {
		t.Fatalf("over the unix socket: %q %v", got, err)
	}
}

func TestReload(t *testing.T) {
	d := startDaemon(t, testDirectory, true, nil)
	addr := d.addr(t, "socketmap")
	ask := func() string {
		return dialog(t, addr, ns("senders interns@corp.example.test", "shadow bob@corp.example.test"), readNS, 2)[0]
	}
	if got := ask(); got != "NOTFOUND " {
		t.Fatalf("group_send_as off: %q", got)
	}
	next := config.Defaults()
	next.Tcptable = d.cfg
	next.Tcptable.Senders.GroupSendAs = true
	next.Tcptable.Shadow.Address = "archive@other.example.test"
	if err := d.Reload(&next); err != nil {
		t.Fatal(err)
	}
	got := dialog(t, addr, ns("senders interns@corp.example.test", "shadow bob@corp.example.test"), readNS, 2)
	if got[0] != "OK carol" || got[1] != "OK archive@other.example.test" {
		t.Fatalf("after reload: %q", got)
	}
	next.Tcptable.Socketmap = config.Listen{Network: "tcp", Address: "127.0.0.1:1"}
	if err := d.Reload(&next); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("a changed listener: %v, want a request to restart", err)
	}
}

func TestStartFailsOnABusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := config.Defaults()
	c.Tcptable.Socketmap = config.Listen{Network: "tcp", Address: "127.0.0.1:0"}
	c.Tcptable.TCP = map[string]config.Listen{"aliases": {Network: "tcp", Address: busy.Addr().String()}}
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: testDirectory}, Refresh: time.Minute, MaxStale: time.Hour})
	daemon := New(service.Deps{Config: &c, Log: zap.NewNop(), Directory: d, Resolver: directory.NewResolver(d, testPolicy())})
	if err := daemon.Start(); err == nil || !strings.Contains(err.Error(), "aliases") {
		t.Fatalf("start with the aliases port taken: %v", err)
	}
	if len(daemon.srv.listeners) != 0 {
		t.Fatal("a failed start left listeners serving")
	}
}

// FuzzSocketmapRequests feeds arbitrary bytes through the socketmap server loop: it never
// panics, and every request it reads gets a reply Postfix can parse.
func FuzzSocketmapRequests(f *testing.F) {
	for _, s := range []string{ns("mailboxes alice@corp.example.test"), ns("aliases all@corp.example.test", "x"), "05:x,", ns("senders \x00@\xff")} {
		f.Add([]byte(s))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			req, err := socketmap{}.read(r)
			if err != nil {
				return
			}
			reply, err := readNS(bufio.NewReader(bytes.NewReader(s.answer(socketmap{}, req))))
			if err != nil || !(strings.HasPrefix(reply, "OK ") || reply == "NOTFOUND " || strings.HasPrefix(reply, "TEMP ") || strings.HasPrefix(reply, "PERM ")) {
				t.Fatalf("request %+v: reply %q %v", req, reply, err)
			}
		}
	})
}

// FuzzTCPRequests does the same for tcp_table: every reply is one line, 200/400/500.
func FuzzTCPRequests(f *testing.F) {
	for _, s := range []string{"get alice@corp.example.test\n", "get b%C3%BCcher\nget %zz\n", "put x\n", "get \x00\n"} {
		f.Add([]byte(s))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			req, err := tcpTable{table: "aliases"}.read(r)
			if err != nil {
				return
			}
			reply := string(s.answer(tcpTable{table: "aliases"}, req))
			if len(reply) > tcpMaxReply || strings.Count(reply, "\n") != 1 || !strings.HasSuffix(reply, "\n") ||
				!(strings.HasPrefix(reply, "200 ") || strings.HasPrefix(reply, "400 ") || strings.HasPrefix(reply, "500 ")) {
				t.Fatalf("request %+v: reply %q", req, reply)
			}
		}
	})
}

func fuzzServer(f *testing.F) *server {
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: testDirectory}, Refresh: time.Minute, MaxStale: time.Hour})
	if err := d.Sync(context.Background()); err != nil {
		f.Fatal(err)
	}
	return newServer(newTables(directory.NewResolver(d, testPolicy()), defaultTcptable()), newMetrics(nil), zap.NewNop(), time.Minute)
}
