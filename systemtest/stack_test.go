package systemtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// stack is everything the system test runs: the servers, the four daemons as separate
// processes (as their systemd units run them), and the company model.
type stack struct {
	company *company
	samba   *testbench.Samba
	redis   *testbench.Redis
	cyrus   *testbench.Cyrus
	postfix *testbench.Postfix
	config  string // postern.yaml
	daemons map[string]*daemon
	resent  map[string]bool // "<message-id> <recipient>" Postfix may have sent twice
}

// daemon is one `postern <name>` process with the address Postfix reaches it on.
type daemon struct {
	name, addr, telemetry string
	proc                  *testbench.Process
}

// throttleLimit is throttledLogin's hourly message limit.
const throttleLimit = 3

// startStack brings the whole stack up, wired as examples/ says.
func startStack(t testing.TB) *stack {
	st := &stack{company: newCompany(), daemons: map[string]*daemon{}}
	st.samba = testbench.StartSamba(t)
	st.samba.LDIF(t, testbench.SeedCorp(st.samba))
	st.samba.LDIF(t, st.company.ldif(st.samba))
	st.redis = testbench.StartDurableRedis(t)
	st.cyrus = testbench.StartCyrus(t)
	for _, p := range st.company.people {
		st.cyrus.CreateMailbox(t, "user/"+p.addr)
	}
	for _, d := range []string{"corp.example.test", "other.example.test"} {
		st.cyrus.CreateMailbox(t, "user/shadow@"+d)
	}

	dir := testbench.Dir(t)
	pw := filepath.Join(dir, "cyrus.secret")
	if err := os.WriteFile(pw, []byte(st.cyrus.AdminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t)) }
	for _, name := range []string{"tcptable", "policyd", "milter", "lmtp-shadow"} {
		st.daemons[name] = &daemon{name: name, addr: port(), telemetry: port()}
	}
	st.config = filepath.Join(dir, "postern.yaml")
	if err := os.WriteFile(st.config, []byte(testbench.CorpConfig(st.samba, dir, fmt.Sprintf(`internal_networks: [127.0.0.0/8]
trusted_relays: [%[1]s/32]
redis: {addrs: [%[2]s]}
journal: {store: redis}
tcptable: {socketmap: inet:%[3]s}
policyd:
  listen: inet:%[4]s
  internal_only: {groups: [Interns]}
  rate_limits:
    - name: everyone
      window: 1h
      messages: 100000
      overrides:
        - {logins: [%[10]s], window: 1h, messages: %[11]d}
milter:
  listen: inet:%[5]s
  journal: {enabled: true}
  marker_key_file: %[12]s/marker.key
  disclaimer: {text_file: %[12]s/disclaimer.txt, html_file: %[12]s/disclaimer.html, directions: [outbound]}
lmtp_shadow:
  listen: inet:%[6]s
  store: {kind: cyrus, lmtp: inet:%[7]s, imap: inet:%[8]s, admin_user: admin, admin_password_file: %[9]s}
`, pmgAddr, st.redis.Addr, st.daemons["tcptable"].addr, st.daemons["policyd"].addr, st.daemons["milter"].addr,
		st.daemons["lmtp-shadow"].addr, st.cyrus.LMTPAddr, st.cyrus.IMAPAddr, pw, throttledLogin, throttleLimit,
		milterFiles(t, dir)))), 0o600); err != nil {
		t.Fatal(err)
	}
	testbench.KeepLogs(t, dir)
	for _, d := range st.daemons {
		st.startDaemon(t, d)
	}
	for _, d := range st.daemons {
		st.waitDaemon(t, d)
	}
	st.postfix = testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: st.postfixSettings(t, dir)})
	return st
}

// disclaimer is the outbound disclaimer's text; the accounting looks for it.
const disclaimer = "Corp GmbH, Registergericht Berlin HRB 0000."

// milterFiles writes the disclaimer in both versions and the marker key into dir.
func milterFiles(t testing.TB, dir string) string {
	for name, text := range map[string]string{
		"disclaimer.txt":  disclaimer + "\n",
		"disclaimer.html": "<p>" + disclaimer + "</p>\n",
		"marker.key":      "systemtest-marker-key-0123456789abcdef\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// postfixSettings is main.cf from the shipped fragments, socket paths pointed at this
// test's ports, and quick retries so a repaired fault drains within the test.
func (st *stack) postfixSettings(t testing.TB, dir string) map[string]string {
	settings := map[string]string{}
	for _, f := range []string{"tcptable-main.cf", "policyd-main.cf", "milter-main.cf", "lmtp-shadow.cf"} {
		for k, v := range testbench.PostfixExample(t, f) {
			settings[k] = v
		}
	}
	transport := filepath.Join(dir, "shadow_transport.regexp")
	ex, err := os.ReadFile("../examples/postfix/shadow_transport.regexp")
	if err != nil {
		t.Fatal(err)
	}
	shadow := st.daemons["lmtp-shadow"].addr
	if err := os.WriteFile(transport, []byte(strings.ReplaceAll(string(ex), "lmtp:unix:postern/shadow.sock", "lmtp:inet:"+shadow)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"socketmap:unix:postern/tables.sock:", "socketmap:inet:"+st.daemons["tcptable"].addr+":",
		"unix:postern/policy.sock", "inet:"+st.daemons["policyd"].addr,
		"unix:postern/milter.sock", "inet:"+st.daemons["milter"].addr,
		"regexp:/etc/postfix/shadow_transport.regexp", "regexp:"+transport,
		"lmtp:inet:127.0.0.1:24", "lmtp:inet:"+st.cyrus.LMTPAddr)
	for k, v := range settings {
		settings[k] = r.Replace(v)
	}
	for k, v := range map[string]string{
		"queue_run_delay": "3s", "minimal_backoff_time": "3s", "maximal_backoff_time": "10s",
		"smtpd_client_connection_count_limit": "0", "smtpd_client_connection_rate_limit": "0",
		"default_process_limit": "50",
	} {
		settings[k] = v
	}
	return settings
}

// startDaemon starts `postern -c config <name>` with its own metrics port, as the
// package's unit does.
func (st *stack) startDaemon(t testing.TB, d *daemon) {
	log := filepath.Join(filepath.Dir(st.config), d.name+".log")
	p, err := testbench.Start(d.name, log, nil, testbench.Postern(t), "-c", st.config, d.name, "--telemetry", d.telemetry)
	if err != nil {
		t.Fatal(err)
	}
	d.proc = p
	t.Cleanup(p.Stop)
}

// waitDaemon waits until the daemon listens and its /readyz answers 200 (its directory
// snapshot is loaded), as a load balancer's health check would.
func (st *stack) waitDaemon(t testing.TB, d *daemon) {
	ready := func() bool {
		return testbench.WaitTCP(d.addr, 100*time.Millisecond) == nil && testbench.Ready(d.telemetry)
	}
	for deadline := time.Now().Add(60 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if d.proc.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(d.proc.LogPath)
			t.Fatalf("postern %s does not listen on %s (exited: %v); its log:\n%s", d.name, d.addr, d.proc.Exited(), b)
		}
	}
}

// kill ends a daemon with SIGKILL: no drain, no goodbye, as the OOM killer would.
func (st *stack) kill(t testing.TB, name string) {
	d := st.daemons[name]
	if err := d.proc.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("kill %s: %v", name, err)
	}
	_ = d.proc.Wait()
}

func (st *stack) restart(t testing.TB, name string) {
	d := st.daemons[name]
	st.startDaemon(t, d)
	st.waitDaemon(t, d)
}
