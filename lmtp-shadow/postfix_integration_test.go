package lmtpshadow

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// shadowPostfix starts Postfix delivering corp.example.test to Cyrus and the shadow
// address to lmtp-shadow at shadowAddr, with every message to bob copied to the shadow.
func shadowPostfix(t testing.TB, c *testbench.Cyrus, shadowAddr string) *testbench.Postfix {
	c.CreateMailbox(t, "user/bob@corp.example.test")
	// The shipped transport table, pointed at this test's lmtp-shadow.
	example, err := os.ReadFile("../examples/postfix/shadow_transport.regexp")
	if err != nil {
		t.Fatal(err)
	}
	transport := filepath.Join(testbench.Dir(t), "shadow_transport.regexp")
	os.WriteFile(transport, []byte(strings.ReplaceAll(string(example), "lmtp:unix:postern/shadow.sock", "lmtp:inet:"+shadowAddr)), 0o644)
	return testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: map[string]string{
		"virtual_mailbox_domains":            "corp.example.test",
		"virtual_mailbox_maps":               "inline:{ bob@corp.example.test=ok, shadow@corp.example.test=ok }",
		"virtual_transport":                  "lmtp:inet:" + c.LMTPAddr,
		"transport_maps":                     "inline:{ shadow@corp.example.test=lmtp:inet:" + shadowAddr + " }",
		"recipient_bcc_maps":                 "inline:{ bob@corp.example.test=shadow@corp.example.test }",
		"lmtp_destination_concurrency_limit": "4",
		// Retry deferred copies within seconds, as a test cannot wait Postfix's minutes.
		"queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
	}})
}

func TestPostfixCopiesReachTheArchive(t *testing.T) {
	b := startBench(t)
	p := shadowPostfix(t, b.cyrus, b.addr)
	msg := []byte("From: alice@corp.example.test\r\nTo: bob@corp.example.test\r\nSubject: via postfix\r\nMessage-ID: <via-postfix@test>\r\n\r\nhello\r\n")
	if code, text, err := testbench.SendMail(p.SMTPAddr, testbench.Mail{From: "alice@corp.example.test", To: []string{"bob@corp.example.test"}, Data: msg}); err != nil || code != 250 {
		t.Fatalf("submit: %d %s %v", code, text, err)
	}
	p.WaitQueueEmpty(t, 30*time.Second)
	if got := b.cyrus.Messages(t, "bob@corp.example.test", "INBOX"); len(got) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(got))
	}
	arch := b.cyrus.Messages(t, "shadow@corp.example.test", "INBOX/Unjournaled/"+time.Now().UTC().Format("2006/01"))
	if len(arch) != 1 || arch[0].MessageID != "<via-postfix@test>" {
		t.Fatalf("archive holds %d messages, want the one copy", len(arch))
	}
}

// TestKillMidBurstLosesNothing kills lmtp-shadow with SIGKILL while Postfix delivers a
// burst; after a restart every message is archived, duplicates only of what Postfix
// retried.
func TestKillMidBurstLosesNothing(t *testing.T) {
	const n = 1000
	c := testbench.StartCyrus(t)
	c.CreateMailbox(t, "user/shadow@corp.example.test")
	dir := testbench.Dir(t)
	pw := filepath.Join(dir, "cyrus.secret")
	os.WriteFile(pw, []byte(c.AdminPassword), 0o600)
	shadowAddr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	cfg := filepath.Join(dir, "postern.yaml")
	example, _ := filepath.Abs("../examples/directory.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`domains: [corp.example.test]
state_dir: %[1]s
directory: {backend: static, static: {file: %[2]s}}
journal: {store: file, path: %[1]s/journal}
telemetry: {listen: 127.0.0.1:%[3]d}
lmtp_shadow:
  listen: inet:%[4]s
  store: {kind: cyrus, lmtp: inet:%[5]s, imap: inet:%[6]s, admin_user: %[7]s, admin_password_file: %[8]s}
`, dir, example, testbench.FreePort(t), shadowAddr, c.LMTPAddr, c.IMAPAddr, c.Admin, pw)), 0o600)
	shadow := testbench.StartPostern(t, cfg, "lmtp-shadow")
	if err := testbench.WaitTCP(shadowAddr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p := shadowPostfix(t, c, shadowAddr)

	src := exec.Command("smtp-source", "-s", "10", "-m", fmt.Sprint(n), "-l", "2048", "-f", "alice@corp.example.test",
		"-t", "bob@corp.example.test", "-S", "burst", p.SMTPAddr)
	if out, err := src.CombinedOutput(); err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	// Kill it while copies are in flight, then bring it back.
	deadline := time.Now().Add(60 * time.Second)
	for archivedCount(p) < n/10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	shadow.Signal(syscall.SIGKILL)
	shadow.Wait()
	testbench.StartPostern(t, cfg, "lmtp-shadow")
	testbench.WaitTCP(shadowAddr, 30*time.Second)
	p.Flush(t)
	p.WaitQueueEmpty(t, 3*time.Minute)

	ids := map[string]int{}
	for _, m := range c.Messages(t, "shadow@corp.example.test", "INBOX/Unjournaled/"+time.Now().UTC().Format("2006/01")) {
		ids[m.MessageID]++
	}
	dups := 0
	for _, k := range ids {
		dups += k - 1
	}
	if len(ids) != n {
		t.Fatalf("%d distinct messages archived, want all %d", len(ids), n)
	}
	if retried := countDeferred(p.MailLog); dups > retried {
		t.Fatalf("%d duplicates, more than the %d copies Postfix retried", dups, retried)
	}
	t.Logf("%d messages archived, %d duplicated by Postfix's retries", len(ids), dups)
}

// archivedCount counts the copies Postfix has handed to lmtp-shadow so far.
func archivedCount(p *testbench.Postfix) int {
	n := 0
	for _, l := range strings.Split(readFile(p.MailLog), "\n") {
		if strings.Contains(l, "to=<shadow@corp.example.test>") && strings.Contains(l, "status=sent") {
			n++
		}
	}
	return n
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

// countDeferred counts the copies Postfix could not hand to lmtp-shadow and retried.
func countDeferred(maillog string) int {
	n := 0
	for _, l := range strings.Split(readFile(maillog), "\n") {
		if strings.Contains(l, "to=<shadow@corp.example.test>") && strings.Contains(l, "status=deferred") {
			n++
		}
	}
	return n
}
