package milter

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postern-mail/postern/internal/testbench"
)

// opendkim is Debian's opendkim signing for corp.example.test on a loopback port.
type opendkim struct {
	addr   string
	txt    string // the public key record opendkim-genkey wrote
	domain string
}

func startOpenDKIM(t *testing.T) *opendkim {
	t.Helper()
	testbench.Require(t, "opendkim", "opendkim-genkey")
	dir := testbench.Dir(t)
	const selector, domain = "postern", "corp.example.test"
	if out, err := exec.Command("opendkim-genkey", "-b", "2048", "-D", dir, "-d", domain, "-s", selector).CombinedOutput(); err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	port := testbench.FreePort(t)
	conf := fmt.Sprintf(`Syslog no
Mode sv
Domain %[2]s
Selector %[3]s
KeyFile %[1]s/%[3]s.private
RequireSafeKeys no
Socket inet:%[4]d@127.0.0.1
PidFile %[1]s/opendkim.pid
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
SignatureAlgorithm rsa-sha256
LogWhy yes
`, dir, domain, selector, port)
	if err := os.WriteFile(filepath.Join(dir, "opendkim.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "opendkim.log")
	p, err := testbench.Start("opendkim", log, nil, "opendkim", "-f", "-x", filepath.Join(dir, "opendkim.conf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	testbench.KeepLogs(t, log)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := testbench.WaitTCP(addr, 15*time.Second); err != nil {
		b, _ := os.ReadFile(log)
		t.Fatalf("opendkim: %v\n%s", err, b)
	}
	txt, err := os.ReadFile(filepath.Join(dir, selector+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return &opendkim{addr: addr, txt: string(txt), domain: domain}
}

// record joins the quoted strings of opendkim-genkey's zone file line into the TXT value.
func (o *opendkim) record() string {
	var b strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(o.txt, -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

func testDKIM(t *testing.T, s *testbench.Samba) {
	dk := startOpenDKIM(t)
	b := startMilterBench(t, s, benchOptions{milters: func(postern string) string {
		return "inet:" + postern + ", inet:" + dk.addr // opendkim after postern
	}})
	msg := "From: Alice Anderson <alice@corp.example.test>\nTo: x@ext.example\nSubject: signed after stamping\n" +
		"Message-ID: <dkim@corp.example.test>\nDate: Sun, 22 Nov 2026 08:00:00 +0000\n\nHello,\nthe DKIM signature must cover the disclaimer.\n"
	b.send(t, []string{"x@ext.example"}, []byte(msg))
	got := b.pf.WaitSinkMessages(t, 1, 30*time.Second)[0]
	if !bytes.Contains(got.Raw, []byte("This message is confidential")) {
		t.Fatalf("no disclaimer in the delivered message:\n%s", got.Raw)
	}
	if !bytes.Contains(got.Raw, []byte("DKIM-Signature:")) {
		t.Fatalf("opendkim did not sign:\n%s", got.Raw)
	}
	raw := bytes.ReplaceAll(got.Raw, []byte("\n"), []byte("\r\n"))
	lookup := func(domain string) ([]string, error) {
		if domain != "postern._domainkey."+dk.domain {
			return nil, fmt.Errorf("no TXT record for %s", domain)
		}
		return []string{dk.record()}, nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 {
		t.Fatalf("verify: %v (%d signatures)", err, len(vs))
	}
	if vs[0].Err != nil {
		t.Errorf("DKIM signature of the stamped message does not verify: %v\n%s", vs[0].Err, got.Raw)
	}
}
