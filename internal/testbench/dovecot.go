package testbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dovecotMailUser owns every mailbox: Debian's own "mail" account (uid 8), present on every
// system, so the bench creates no account. Its uid is below Dovecot's first_valid_uid
// default (500), hence first_valid_uid in the configuration.
const dovecotMailUser = "mail"

// DovecotPassword is the password of the users StartDovecot creates (its passdb).
const DovecotPassword = "bench-secret"

// Dovecot is a private Dovecot instance with LMTP on loopback, virtual users from a
// passwd-file (shadow@corp.example.test and bob@corp.example.test to begin with), and
// folder delivery as the archive uses it: user+Outbound/2026/11@domain files into the
// folder Outbound/2026/11, created on delivery, with "/" as hierarchy separator.
//
// It serves no IMAP: Debian's dovecot-imapd and cyrus-imapd conflict (both provide
// imap-server), and the bench needs Cyrus. Mail is read back with doveadm, which is in
// dovecot-core and goes through the same storage code as IMAP.
type Dovecot struct {
	Dir      string
	LMTPAddr string // no LMTP AUTH; unknown users are refused with 550 5.1.1 at RCPT

	conf   string // dovecot.conf, given with -c to dovecot and doveadm
	users  string // the passwd-file: passdb and userdb
	logDir string
	master *Process
}

// StartDovecot starts a private Dovecot master in the foreground (dovecot -F) on a free
// loopback port and stops it when the test ends. Needs root: the master starts as root,
// and each delivery and doveadm command runs as the mail user.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	Require(t, "dovecot", "doveadm", "/usr/lib/dovecot/lmtp")
	requireRoot(t, "Dovecot")
	begin := time.Now()
	dir := Dir(t) // 0755: the auth process (dovecot) and the mail user must traverse it
	d := &Dovecot{
		Dir:    dir,
		conf:   filepath.Join(dir, "dovecot.conf"),
		users:  filepath.Join(dir, "users"),
		logDir: filepath.Join(dir, "log"),
	}
	if err := d.layout(); err != nil {
		t.Fatalf("testbench: set up dovecot in %s: %v", dir, err)
	}
	for _, u := range []string{"shadow@corp.example.test", "bob@corp.example.test"} {
		d.AddUser(t, u, DovecotPassword)
	}
	KeepLogs(t, d.logDir)
	t.Cleanup(d.Stop)
	// A port FreePort found can be taken before the master binds it; the master then exits,
	// so a start that fails is tried on fresh ports.
	var err error
	for range 3 {
		d.LMTPAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		if err = d.writeConf(); err != nil {
			t.Fatalf("testbench: set up dovecot in %s: %v", dir, err)
		}
		if err = d.start(); err == nil {
			d.logReady(t, begin)
			return d
		}
		d.Stop()
	}
	t.Fatal(err)
	return nil
}

// layout makes the directories the configuration names, and the mail root owned by the
// mail user, who creates each user's home in it on first delivery.
func (d *Dovecot) layout() error {
	if _, err := os.Stat(shadowConf()); err != nil {
		return fmt.Errorf("the shipped Dovecot settings: %w", err)
	}
	for _, sub := range []string{"run", "state", "log", "mail"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	if err := chownTree(filepath.Join(d.Dir, "mail"), dovecotMailUser, dovecotMailUser); err != nil {
		return err
	}
	// The passwd-file is read by the auth process, which runs as dovecot.
	if err := os.WriteFile(d.users, nil, 0o640); err != nil {
		return err
	}
	return chownTree(d.users, "", "dovecot")
}

// writeConf writes dovecot.conf for the current ports. It stands alone: nothing of
// /etc/dovecot is read, and every path is inside Dir.
func (d *Dovecot) writeConf() error {
	uid, gid, err := lookupIDs(dovecotMailUser, dovecotMailUser)
	if err != nil {
		return err
	}
	_, lmtpPort, _ := net.SplitHostPort(d.LMTPAddr)
	conf := fmt.Sprintf(`# Written by testbench.StartDovecot: a private instance, everything under %[1]s.
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/log/dovecot.log
protocols = lmtp
listen = 127.0.0.1
hostname = mail.corp.example.test
ssl = no
auth_verbose = yes
auth_failure_delay = 0

# Virtual users: every mailbox belongs to one system user.
mail_uid = %[2]d
mail_gid = %[3]d
first_valid_uid = %[2]d
last_valid_uid = %[2]d
first_valid_gid = %[3]d
mail_home = %[1]s/mail/%%d/%%n
mail_location = maildir:~/Maildir:LAYOUT=fs
# Dovecot's auth wants a passdb; the passwords also let doveadm auth test check a login.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%Lu %[4]s
}
userdb {
  driver = passwd-file
  args = username_format=%%Lu %[4]s
}

namespace inbox {
  inbox = yes
  prefix =
}

# The archive's folder delivery, as shipped; then this instance's own port.
!include %[5]s
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[6]s
  }
}
`, d.Dir, uid, gid, d.users, shadowConf(), lmtpPort)
	return os.WriteFile(d.conf, []byte(conf), 0o644)
}

// shadowConf is the shipped examples/dovecot/90-postern-shadow.conf, which every bench
// instance includes, so the tests check the settings operators copy.
func shadowConf() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "dovecot", "90-postern-shadow.conf")
}

// Start starts the master again after Stop, on the same ports, and waits until it serves
// LMTP. Users and mail survive a Stop/Start.
func (d *Dovecot) Start(t testing.TB) {
	t.Helper()
	begin := time.Now()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	d.logReady(t, begin)
}

func (d *Dovecot) start() error {
	var err error
	d.master, err = Start("dovecot", filepath.Join(d.logDir, "master.log"), nil, "dovecot", "-F", "-c", d.conf)
	if err != nil {
		return err
	}
	// Ready when the master itself holds the listening socket (it binds every inet
	// listener before it forks a service), not when some other program answers there.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if listensOn(d.master.Pid(), d.LMTPAddr) {
			return nil
		}
		if d.master.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("testbench: dovecot is not listening on %s (exited: %v; the port taken, or see the logs):\n"+
				"master.log:\n%s\ndovecot.log:\n%s", d.LMTPAddr, d.master.Exited(),
				tail(filepath.Join(d.logDir, "master.log"), 10), tail(filepath.Join(d.logDir, "dovecot.log"), 20))
		}
	}
}

func (d *Dovecot) logReady(t testing.TB, begin time.Time) {
	t.Helper()
	t.Logf("testbench: dovecot LMTP on %s, ready in %s (dir %s)",
		d.LMTPAddr, time.Since(begin).Round(time.Millisecond), d.Dir)
}

// Stop stops the master and every process it forked, and returns once all of them have
// gone, so the port refuses connections.
func (d *Dovecot) Stop() {
	if d.master == nil {
		return
	}
	// SIGTERM to the whole group at once: told alone, the master waits a second or more
	// for its log process before it exits.
	stopGroup(d.master)
}

// AddUser adds a virtual user (user@domain) with a password to the passwd-file, which
// Dovecot rereads when it changes — but looks at no more than once a second, so AddUser
// returns only when the second it wrote in has passed.
func (d *Dovecot) AddUser(t testing.TB, user, password string) {
	t.Helper()
	if strings.ContainsAny(user+password, ":\n") {
		t.Fatalf("testbench: dovecot user %q: no ':' or newline in a passwd-file entry", user)
	}
	f, err := os.OpenFile(d.users, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	defer f.Close()
	// user:password:uid:gid:gecos:home:shell:extra — uid, gid and home come from mail_*.
	if _, err := fmt.Fprintf(f, "%s:{PLAIN}%s::::::\n", user, password); err != nil {
		t.Fatalf("testbench: %v", err)
	}
	if d.master != nil && !d.master.Exited() {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	}
}

// Messages reads every message of a user's folder ("INBOX", "Outbound/2026/11") through
// Dovecot's own storage code, with doveadm fetch as that user, line ends as IMAP would
// give them (CRLF). The instance must be running: doveadm asks its userdb.
func (d *Dovecot) Messages(t testing.TB, user, folder string) []Message {
	t.Helper()
	out, err := d.doveadm("-f", "json", "fetch", "-u", user, "text", "mailbox", folder, "all")
	if err != nil {
		t.Fatal(err)
	}
	var fetched []struct{ Text string }
	if err := json.Unmarshal(out, &fetched); err != nil {
		t.Fatalf("testbench: doveadm fetch: %v\n%s", err, out)
	}
	if len(fetched) == 0 { // fetch answers [] for a folder that does not exist, too
		if _, err := d.doveadm("mailbox", "status", "-u", user, "messages", folder); err != nil {
			t.Fatalf("%v (does %s have a folder %q?)", err, user, folder)
		}
	}
	msgs := make([]Message, len(fetched))
	for i, f := range fetched {
		// Maildir keeps bare LF; IMAP and LMTP speak CRLF.
		msgs[i].Raw = []byte(strings.ReplaceAll(f.Text, "\n", "\r\n"))
		msgs[i].MessageID, msgs[i].Subject = headerFields(msgs[i].Raw)
	}
	return msgs
}

// doveadm runs doveadm against this instance and returns its standard output.
func (d *Dovecot) doveadm(args ...string) ([]byte, error) {
	cmd := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("testbench: doveadm %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}
