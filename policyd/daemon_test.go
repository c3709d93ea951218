package policyd

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
)

func tcpDaemon(t *testing.T) *testDaemon {
	t.Helper()
	d := newTestDaemon(t, basePolicyd)
	d.listen = config.Listen{Network: "tcp", Address: "127.0.0.1:0"}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestServeTCPManyConnections(t *testing.T) {
	d := tcpDaemon(t)
	defer d.Shutdown(context.Background())
	a, b := dialPolicy(t, "tcp", d.Addr()), dialPolicy(t, "tcp", d.Addr())
	for i := range 3 {
		for _, c := range []*policyClient{a, b} {
			got, err := c.ask(rcpt("carol", "carol@corp.example.test", "x@external.example"))
			if err != nil || got != rejectIntern {
				t.Fatalf("request %d: %q, %v", i, got, err)
			}
		}
	}
	if n := counter(t, d.metrics.decisions, ruleInternalOnly, "rcpt", "REJECT"); n != 6 {
		t.Errorf("decisions{internal_only,rcpt,REJECT} = %v, want 6", n)
	}
	if n := d.logs.FilterMessage("policy verdict").Len(); n != 6 {
		t.Errorf("%d verdict log lines, want one per REJECT (6)", n)
	}
}

func TestMalformedClosesOnlyThatConnection(t *testing.T) {
	d := tcpDaemon(t)
	defer d.Shutdown(context.Background())
	good, bad := dialPolicy(t, "tcp", d.Addr()), dialPolicy(t, "tcp", d.Addr())
	io.WriteString(bad.conn, "request=smtpd_access_policy\nnonsense\n\n")
	if _, err := bad.br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("malformed request: read %v, want the connection closed", err)
	}
	if got, err := good.ask(rcpt("bob", "bob@corp.example.test", "x@external.example")); err != nil || got != "DUNNO" {
		t.Fatalf("the other connection: %q, %v", got, err)
	}
	if n := counter0(d.metrics.malformed); n != 1 {
		t.Errorf("malformed requests: %v, want 1", n)
	}
}

func TestShutdownDrains(t *testing.T) {
	d := tcpDaemon(t)
	idle := dialPolicy(t, "tcp", d.Addr())
	if _, err := idle.ask(rcpt("bob", "bob@corp.example.test", "x@external.example")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an idle connection: %v", err)
	}
	if _, err := idle.br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection after shutdown: %v, want closed", err)
	}
	if c, err := net.DialTimeout("tcp", d.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}

func TestPanicIsATemporaryFailure(t *testing.T) {
	d := tcpDaemon(t)
	defer d.Shutdown(context.Background())
	broken := NewPolicy(d.cfg, nil, d.store, d.failures) // no resolver: the first lookup panics
	d.policy.Store(broken)
	c := dialPolicy(t, "tcp", d.Addr())
	for range 2 { // and the connection stays usable
		got, err := c.ask(rcpt("carol", "carol@corp.example.test", "x@external.example"))
		if err != nil || got != "451 4.3.0 internal error, try again later" {
			t.Fatalf("%q, %v", got, err)
		}
	}
}
