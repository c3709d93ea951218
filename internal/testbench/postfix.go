package testbench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postfixMaster is run in the foreground (-d) so the harness owns its PID and process group;
// `postfix start` would daemonize it.
const postfixMaster = "/usr/lib/postfix/sbin/master"

// PostfixHost is the bench Postfix's myhostname and the DNS name in its TLS certificate.
const PostfixHost = "mx.corp.example.test"

// Postfix is a private Postfix instance: its own config, queue and data directories, smtpd on
// a free loopback port, and every non-local mail relayed to an smtp-sink that dumps it to files.
type Postfix struct {
	Dir       string
	ConfigDir string // for -c on every Postfix command; there is no /etc/postfix/main.cf here
	SMTPAddr  string // smtpd, "127.0.0.1:<port>"
	SinkAddr  string // smtp-sink, the relayhost
	SinkDir   string // one file per message received by smtp-sink
	MailLog   string // Postfix's maillog_file

	// With PostfixOptions.Submission, the services a site offers its mail clients, as on
	// ports 587 and 465; both relay only for a client that has logged in with SASL AUTH.
	SubmissionAddr string // smtpd requiring STARTTLS, with AUTH offered only after it
	SMTPSAddr      string // smtpd in wrapper mode: implicit TLS from the first byte
	CAFile         string // the test CA that signed the certificate both present
	ServerName     string // the name in that certificate (PostfixHost); it has no IP address

	queueDir string
	logDir   string
	master   *Process
	sink     *Process
}

// PostfixOptions adds to or overrides the harness's configuration.
type PostfixOptions struct {
	// MainCF sets main.cf parameters, e.g. "virtual_alias_maps":
	// "socketmap:inet:127.0.0.1:10050:aliases". An empty value clears a parameter.
	MainCF map[string]string
	// MasterCF lines are appended to master.cf (chroot column must be n: nothing is set up
	// inside the queue directory for a chroot).
	MasterCF []string
	// Submission, when set, adds the submission (STARTTLS) and smtps (implicit TLS) services
	// with SASL AUTH PLAIN and LOGIN for this one account. Port 25 (SMTPAddr) stays as it is.
	Submission *PostfixSubmission
}

// PostfixSubmission is the account a mail client logs in with. Postfix checks it with Cyrus
// SASL against a sasldb of the bench's own (cyrus_sasl_config_path), nothing under /etc.
type PostfixSubmission struct {
	// User is the login, e.g. "welcome@corp.example.test" or "frank": Cyrus SASL takes the
	// part after the last @ as the realm, and smtpd gives a login without @ the realm
	// myhostname. Policy servers and milters see it as sasl_username, as typed.
	User     string
	Password string
}

// StartPostfix starts a private Postfix and an smtp-sink as its relayhost, and stops both when
// the test ends. Needs root: master binds and drops to the postfix user like the real thing.
func StartPostfix(t testing.TB, opt PostfixOptions) *Postfix {
	t.Helper()
	Require(t, postfixMaster, "postconf", "postmap", "postqueue", "smtp-sink")
	if opt.Submission != nil {
		Require(t, "saslpasswd2")
	}
	requireRoot(t, "Postfix")
	begin := time.Now()
	dir := Dir(t)
	p := &Postfix{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		SinkDir:   filepath.Join(dir, "sink"),
		MailLog:   filepath.Join(dir, "log", "maillog"),
		queueDir:  filepath.Join(dir, "spool"),
		logDir:    filepath.Join(dir, "log"),
	}
	KeepLogs(t, p.logDir, p.ConfigDir)
	t.Cleanup(p.stop)
	if opt.Submission != nil {
		if err := p.setupSubmission(opt); err != nil {
			t.Fatalf("testbench: set up postfix submission in %s: %v", p.Dir, err)
		}
	}
	// A port FreePort found can be taken by another test binary before master binds it, so
	// a start that fails is tried again on fresh ports; a configuration error fails each time.
	var err error
	for range 3 {
		p.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		p.SinkAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		submission := ""
		if opt.Submission != nil {
			p.SubmissionAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
			p.SMTPSAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
			submission = fmt.Sprintf(", submission on %s, smtps on %s", p.SubmissionAddr, p.SMTPSAddr)
		}
		if err = p.start(opt); err == nil {
			t.Logf("testbench: postfix on %s%s, relaying to smtp-sink on %s, ready in %s (config %s)",
				p.SMTPAddr, submission, p.SinkAddr, time.Since(begin).Round(time.Millisecond), p.ConfigDir)
			return p
		}
		p.stop()
	}
	t.Fatal(p.diagnose(err))
	return nil
}

// start writes the configuration for the current ports and starts smtp-sink and master.
func (p *Postfix) start(opt PostfixOptions) error {
	if err := p.layout(opt); err != nil {
		return fmt.Errorf("testbench: set up postfix in %s: %w", p.Dir, err)
	}
	var err error
	p.sink, err = Start("smtp-sink", filepath.Join(p.logDir, "sink.log"), nil,
		"smtp-sink", "-u", "postfix", "-h", "sink.test", "-d", filepath.Join(p.SinkDir, "%Y%m%d%H%M%S."), p.SinkAddr, "128")
	if err != nil {
		return err
	}
	if err := WaitTCP(p.SinkAddr, 10*time.Second); err != nil {
		return fmt.Errorf("%w; smtp-sink log:\n%s", err, tail(filepath.Join(p.logDir, "sink.log"), 20))
	}
	var logged int64 // the maillog of an earlier attempt may already say "daemon started"
	if info, err := os.Stat(p.MailLog); err == nil {
		logged = info.Size()
	}
	p.master, err = Start("postfix master", filepath.Join(p.logDir, "master.log"), nil,
		postfixMaster, "-d", "-c", p.ConfigDir)
	if err != nil {
		return err
	}
	// master logs "daemon started" once it has read master.cf and bound every service; a bad
	// master.cf line or a taken port makes it exit before that, even after smtpd listens.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p.master.Exited() || p.sink.Exited() {
			return fmt.Errorf("testbench: postfix master (or smtp-sink on %s) exited while starting", p.SinkAddr)
		}
		if log, _ := os.ReadFile(p.MailLog); int64(len(log)) > logged &&
			bytes.Contains(log[logged:], []byte("daemon started")) && WaitTCP(p.SMTPAddr, time.Second) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbench: postfix master did not log \"daemon started\" and listen on %s within 15 s", p.SMTPAddr)
		}
	}
}

// diagnose adds what Postfix's own checks find to a failed start: master exits silently when
// its configuration is wrong. postconf reports bad master.cf lines and unused (misspelt)
// main.cf parameters on stderr; postfix check writes its findings to maillog_file.
func (p *Postfix) diagnose(err error) error {
	postconf := stderrOf("postconf", "-c", p.ConfigDir, "-M") // a bad master.cf line is fatal here
	if postconf == "" {
		postconf = stderrOf("postconf", "-c", p.ConfigDir, "-n")
	}
	_ = exec.Command("postfix", "-c", p.ConfigDir, "check").Run()
	return fmt.Errorf("%w (a port in master.cf taken, or a configuration error: see below)\n"+
		"postconf:\n%s\nmaillog after `postfix -c %s check`:\n%s", err, postconf, p.ConfigDir, tail(p.MailLog, 10))
}

func stderrOf(name string, args ...string) string {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	_ = cmd.Run()
	return stderr.String()
}

// postfixMainCF is the base main.cf: everything inside Dir, loopback only, no DNS, no local
// delivery, no /etc/aliases, and all mail that is not for a test's own transport goes to the sink.
func (p *Postfix) postfixMainCF() [][2]string {
	main := [][2]string{
		{"compatibility_level", "3.6"},
		{"queue_directory", p.queueDir},
		{"data_directory", filepath.Join(p.Dir, "data")},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"maillog_file", p.MailLog},
		{"maillog_file_prefixes", p.logDir}, // the default (/var, /dev/stdout) rejects a log file in Dir
		{"myhostname", PostfixHost},
		{"mydomain", "corp.example.test"},
		{"myorigin", "$mydomain"},
		{"mydestination", ""},
		{"local_recipient_maps", ""},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"inet_interfaces", "127.0.0.1"},
		{"inet_protocols", "ipv4"},
		{"mynetworks", "127.0.0.0/8"},
		{"smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination"},
		{"relayhost", "[127.0.0.1]:" + strings.TrimPrefix(p.SinkAddr, "127.0.0.1:")}, // [] = no MX lookup
		{"smtp_dns_support_level", "disabled"},
		{"smtp_tls_security_level", "none"},
		{"smtpd_tls_security_level", "none"},
		{"biff", "no"},
		{"smtpd_authorized_xclient_hosts", "127.0.0.0/8"}, // tests fake the SASL login with XCLIENT LOGIN=
	}
	if p.CAFile == "" {
		return main
	}
	// The certificate is there for every smtpd, but only the submission services turn TLS
	// and SASL on (master.cf -o); smtpd reads the key as root, before it drops privileges.
	return append(main,
		[2]string{"smtpd_tls_chain_files", p.tlsDir("key.pem") + ", " + p.tlsDir("cert.pem")},
		[2]string{"smtpd_sasl_type", "cyrus"},
		[2]string{"smtpd_sasl_path", "smtpd"},            // Cyrus reads smtpd.conf ...
		[2]string{"cyrus_sasl_config_path", p.saslDir()}, // ... from here (see saslDir), not /etc
	)
}

// postfixMasterCF has chroot n everywhere (a chroot would need copies of /etc in the queue
// directory) and every service that delivery to smtp:, lmtp: and error: needs, plus postlogd
// for maillog_file.
const postfixMasterCF = `# service type  private unpriv  chroot  wakeup  maxproc command
%s inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
lmtp       unix  - - n -     - lmtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`

// postfixSubmissionCF are the two services a site offers its mail clients, as Debian's
// master.cf has them: submission (587) requires STARTTLS and offers AUTH only after it, smtps
// (465) speaks TLS from the start; both relay only for a client logged in with AUTH, even
// from mynetworks. smtpd_recipient_restrictions come from main.cf, as on port 25. smtpd gets
// its TLS entropy from tlsmgr, and without it turns TLS off.
const postfixSubmissionCF = `%s inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
%s inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
tlsmgr unix - - n 1000? 1 tlsmgr
`

// postfixQueueDirs are the queue subdirectories with the owner, group and mode that
// /etc/postfix/postfix-files gives them. Making them here saves `postfix check`, which takes
// 2-3 s per start to do the same.
var postfixQueueDirs = []struct {
	name         string
	owner, group string // "" is root
	mode         os.FileMode
}{
	{"active", "postfix", "", 0o700}, {"bounce", "postfix", "", 0o700}, {"corrupt", "postfix", "", 0o700},
	{"defer", "postfix", "", 0o700}, {"deferred", "postfix", "", 0o700}, {"flush", "postfix", "", 0o700},
	{"hold", "postfix", "", 0o700}, {"incoming", "postfix", "", 0o700}, {"private", "postfix", "", 0o700},
	{"saved", "postfix", "", 0o700}, {"trace", "postfix", "", 0o700},
	{"maildrop", "postfix", "postdrop", 0o730}, {"public", "postfix", "postdrop", 0o710},
	{"pid", "", "", 0o755},
}

// layout writes main.cf and master.cf and makes the directories with the owners Postfix
// insists on (data_directory and the sink dir belong to postfix).
func (p *Postfix) layout(opt PostfixOptions) error {
	for _, d := range []string{p.ConfigDir, p.queueDir, p.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(p.Dir, "data"), 0o700}, {p.SinkDir, 0o755}} {
		if err := mkdirOwned(d.path, "postfix", "", d.mode); err != nil {
			return err
		}
	}
	for _, q := range postfixQueueDirs {
		if err := mkdirOwned(filepath.Join(p.queueDir, q.name), q.owner, q.group, q.mode); err != nil {
			return err
		}
	}
	main := p.postfixMainCF()
	extra := maps.Clone(opt.MainCF)
	for i, kv := range main {
		if v, ok := extra[kv[0]]; ok {
			main[i][1] = v
			delete(extra, kv[0])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		main = append(main, [2]string{k, extra[k]})
	}
	var cf bytes.Buffer
	for _, kv := range main {
		fmt.Fprintf(&cf, "%s = %s\n", kv[0], kv[1])
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), cf.Bytes(), 0o644); err != nil {
		return err
	}
	master := fmt.Sprintf(postfixMasterCF, p.SMTPAddr)
	if opt.Submission != nil {
		master += fmt.Sprintf(postfixSubmissionCF, p.SubmissionAddr, p.SMTPSAddr)
	}
	master += strings.Join(opt.MasterCF, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), []byte(master), 0o644); err != nil {
		return err
	}
	return p.backdateConfig()
}

func (p *Postfix) tlsDir(name string) string { return filepath.Join(p.Dir, "tls", name) }

// saslDir holds smtpd.conf: Debian's Postfix reads it from the sasl folder of the -c config
// directory whatever cyrus_sasl_config_path says; upstream's reads it from that parameter.
func (p *Postfix) saslDir() string { return filepath.Join(p.ConfigDir, "sasl") }

// setupSubmission makes, once for all start attempts, what the submission services need: a
// test CA and a certificate for PostfixHost in Dir/tls, and in ConfigDir/sasl the Cyrus SASL
// configuration smtpd.conf with a sasldb2 holding the one account. smtpd checks a password
// as the postfix user, so the sasldb is root:postfix 0640.
func (p *Postfix) setupSubmission(opt PostfixOptions) error {
	files, err := WriteTLS(p.tlsDir(""), "postern testbench Postfix CA", PostfixHost)
	if err != nil {
		return fmt.Errorf("make the TLS certificate: %w", err)
	}
	p.CAFile, p.ServerName = files.CAFile, PostfixHost
	if err := os.MkdirAll(p.saslDir(), 0o755); err != nil {
		return err
	}
	db := filepath.Join(p.saslDir(), "sasldb2")
	conf := fmt.Sprintf("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\nmech_list: PLAIN LOGIN\n", db)
	if err := os.WriteFile(filepath.Join(p.saslDir(), "smtpd.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	args := []string{"-p", "-c", "-f", db} // -p: the password from stdin, as it is
	user, realm := opt.Submission.User, PostfixHost
	if h, ok := opt.MainCF["myhostname"]; ok {
		realm = h
	}
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		user, realm = user[:i], user[i+1:]
	}
	args = append(args, "-u", realm)
	cmd := exec.Command("saslpasswd2", append(args, user)...)
	cmd.Stdin = strings.NewReader(opt.Submission.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("saslpasswd2 %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	_, gid, err := lookupIDs("", "postfix")
	if err != nil {
		return err
	}
	if err := os.Chown(db, 0, gid); err != nil {
		return err
	}
	return os.Chmod(db, 0o640)
}

// TLSConfig verifies the submission services' certificate as a mail client of a real site
// would: against CAFile alone (not the system's roots) and for ServerName.
func (p *Postfix) TLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(p.CAFile)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("testbench: no CA certificate in %q (was PostfixOptions.Submission set?): %v", p.CAFile, err)
	}
	return &tls.Config{RootCAs: pool, ServerName: p.ServerName, MinVersion: tls.VersionTLS12}
}

// backdateConfig sets the config files' mtime a minute back. Postfix reads a config file
// changed in the last second or two again and again, 300 ms apart, until it is older (in case
// an editor is still writing it), which made every start and reload take 1.5-2 s.
func (p *Postfix) backdateConfig() error {
	past := time.Now().Add(-time.Minute)
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := os.Chtimes(filepath.Join(p.ConfigDir, f), past, past); err != nil {
			return err
		}
	}
	return nil
}

func (p *Postfix) stop() {
	if p.master != nil {
		stopGroup(p.master)
	}
	if p.sink != nil {
		stopGroup(p.sink)
	}
}

// Postconf sets main.cf parameters (postconf -e) and reloads Postfix. It returns once every
// daemon process that ran with the old configuration has gone, so the next connection sees
// the new one. An SMTP session a test keeps open across the call delays it by up to 10 s.
func (p *Postfix) Postconf(t testing.TB, settings map[string]string) {
	t.Helper()
	args := []string{"-c", p.ConfigDir, "-e"}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, k+" = "+settings[k])
	}
	if out, err := exec.Command("postconf", args...).CombinedOutput(); err != nil {
		t.Fatalf("testbench: postconf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := p.backdateConfig(); err != nil {
		t.Fatal(err)
	}
	p.reload(t)
}

// reload sends SIGHUP to the master alone (its children must not get it) and waits until the
// children it had have exited: master re-reads main.cf and tells them to finish, and until
// they do, an old smtpd may take the next connection with the old settings.
func (p *Postfix) reload(t testing.TB) {
	t.Helper()
	old := childPIDs(p.master.Pid())
	if err := syscall.Kill(p.master.Pid(), syscall.SIGHUP); err != nil {
		t.Fatalf("testbench: reload postfix: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range old {
		for pidAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// ErrNotFound is wrapped by a Postmap error when the key is not in the table (postmap exit
// status 1 with nothing on stderr), as opposed to a table that fails.
var ErrNotFound = errors.New("not found")

// PostmapError is a failed postmap query.
type PostmapError struct {
	Args     []string
	ExitCode int
	Stderr   string
	notFound bool
}

func (e *PostmapError) Error() string {
	if e.notFound {
		return fmt.Sprintf("postmap %s: not found", strings.Join(e.Args, " "))
	}
	return fmt.Sprintf("postmap %s: exit status %d: %s", strings.Join(e.Args, " "), e.ExitCode, strings.TrimSpace(e.Stderr))
}

// Unwrap makes errors.Is(err, ErrNotFound) true only for a key that is not in the table.
func (e *PostmapError) Unwrap() error {
	if e.notFound {
		return ErrNotFound
	}
	return nil
}

// Postmap looks key up in table with Postfix's own client (postmap -q), as smtpd or
// cleanup would. A missing key is an error wrapping ErrNotFound; a table that fails (a tcp:
// server that is down: postmap retries for 10 s) is a *PostmapError carrying its stderr.
func (p *Postfix) Postmap(key, table string) (string, error) {
	out, err := p.postmap(nil, "-q", key, table)
	return strings.TrimSuffix(out, "\n"), err
}

// PostmapBatch looks up every key in one postmap process (postmap -q - TABLE) and returns its
// output: one "key<TAB>value" line per key found.
func (p *Postfix) PostmapBatch(keys []string, table string) (string, error) {
	return p.postmap(strings.NewReader(strings.Join(keys, "\n")+"\n"), "-q", "-", table)
}

func (p *Postfix) postmap(stdin *strings.Reader, args ...string) (string, error) {
	args = append([]string{"-c", p.ConfigDir}, args...)
	cmd := exec.Command("postmap", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), &PostmapError{Args: args, ExitCode: exit.ExitCode(), Stderr: stderr.String(),
			notFound: exit.ExitCode() == 1 && stderr.Len() == 0}
	}
	if err != nil {
		return "", fmt.Errorf("testbench: run postmap: %w", err)
	}
	return stdout.String(), nil
}

// Flush asks the queue manager to retry all deferred mail now (postqueue -f).
func (p *Postfix) Flush(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("postqueue", "-c", p.ConfigDir, "-f").CombinedOutput(); err != nil {
		t.Fatalf("testbench: postqueue -c %s -f: %v\n%s", p.ConfigDir, err, out)
	}
}

// Queue is the queue listing (postqueue -p).
func (p *Postfix) Queue() (string, error) {
	out, err := exec.Command("postqueue", "-c", p.ConfigDir, "-p").CombinedOutput()
	return string(out), err
}

// QueueEmpty reports whether postqueue -p says the queue is empty; false if it cannot tell.
func (p *Postfix) QueueEmpty() bool {
	out, err := p.Queue()
	return err == nil && strings.Contains(out, "Mail queue is empty")
}

// WaitQueueEmpty waits until every message has been delivered or bounced, and fails the test
// with the queue listing and the end of the mail log if that takes longer than timeout.
func (p *Postfix) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !p.QueueEmpty() {
		if time.Now().After(deadline) {
			q, _ := p.Queue()
			t.Fatalf("testbench: postfix queue still not empty after %s (deferred mail? see the reasons below):\n%s\nmaillog:\n%s",
				timeout, q, tail(p.MailLog, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SinkMessage is one message smtp-sink received from Postfix.
type SinkMessage struct {
	File      string
	From      string   // envelope sender (X-Mail-Args), without <>
	To        []string // envelope recipients (X-Rcpt-Args), without <>
	Raw       []byte   // the message as Postfix sent it, LF line ends, smtp-sink's own Received: removed
	MessageID string
	Subject   string
}

// SinkMessages parses every dump in SinkDir, oldest first. smtp-sink writes a dump while the
// message arrives, so call it once Postfix is done (WaitQueueEmpty, or WaitSinkMessages).
func (p *Postfix) SinkMessages(t testing.TB) []SinkMessage {
	t.Helper()
	entries, err := os.ReadDir(p.SinkDir)
	if err != nil {
		t.Fatalf("testbench: read smtp-sink dumps: %v", err)
	}
	type dump struct {
		name string
		mod  time.Time
	}
	var dumps []dump
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			dumps = append(dumps, dump{e.Name(), info.ModTime()})
		}
	}
	sort.SliceStable(dumps, func(i, j int) bool {
		if !dumps[i].mod.Equal(dumps[j].mod) {
			return dumps[i].mod.Before(dumps[j].mod)
		}
		return dumps[i].name < dumps[j].name
	})
	msgs := make([]SinkMessage, 0, len(dumps))
	for _, d := range dumps {
		path := filepath.Join(p.SinkDir, d.name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("testbench: read smtp-sink dump: %v", err)
		}
		msgs = append(msgs, parseSinkDump(path, b))
	}
	return msgs
}

// WaitSinkMessages waits until smtp-sink has at least n messages and the Postfix queue is
// empty (so every dump is complete), and returns them all.
func (p *Postfix) WaitSinkMessages(t testing.TB, n int, timeout time.Duration) []SinkMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		files, _ := os.ReadDir(p.SinkDir)
		if len(files) >= n && p.QueueEmpty() {
			return p.SinkMessages(t)
		}
		if time.Now().After(deadline) {
			q, _ := p.Queue()
			t.Fatalf("testbench: smtp-sink has %d message(s) after %s, want %d; queue:\n%s\nmaillog:\n%s",
				len(files), timeout, n, q, tail(p.MailLog, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parseSinkDump splits an smtp-sink -d dump into the envelope (X-Client-*, X-Helo-Args,
// X-Mail-Args, X-Rcpt-Args lines that smtp-sink writes first) and the message, and drops the
// Received: line smtp-sink prepends and the extra newline it appends.
func parseSinkDump(path string, b []byte) SinkMessage {
	m := SinkMessage{File: path}
	for {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		name, value, _ := strings.Cut(string(line), ": ")
		if !ok || !isSinkEnvelope(name) {
			break
		}
		addr := strings.Trim(strings.Fields(value + " ")[0], "<>")
		switch name {
		case "X-Mail-Args":
			m.From = addr
		case "X-Rcpt-Args":
			m.To = append(m.To, addr)
		}
		b = rest
	}
	if h := firstHeader(b); bytes.HasPrefix(h, []byte("Received: ")) && bytes.Contains(h, []byte("(smtp-sink)")) {
		b = b[len(h):]
	}
	m.Raw = bytes.TrimSuffix(b, []byte("\n"))
	m.MessageID, m.Subject = headerFields(m.Raw)
	return m
}

func isSinkEnvelope(name string) bool {
	switch name {
	case "X-Helo-Args", "X-Mail-Args", "X-Rcpt-Args":
		return true
	}
	return strings.HasPrefix(name, "X-Client-")
}

// firstHeader returns the first header field of b with its continuation lines.
func firstHeader(b []byte) []byte {
	end := 0
	for {
		i := bytes.IndexByte(b[end:], '\n')
		if i < 0 {
			return b
		}
		end += i + 1
		if end >= len(b) || (b[end] != ' ' && b[end] != '\t') {
			return b[:end]
		}
	}
}

// mkdirOwned makes dir with mode and owner (see lookupIDs).
func mkdirOwned(dir, owner, group string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	uid, gid, err := lookupIDs(owner, group)
	if err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode) // MkdirAll's mode is masked by the umask
}

// lookupIDs returns the ids of a user ("" is root) and a group ("" is the user's group).
func lookupIDs(owner, group string) (uid, gid int, err error) {
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return 0, 0, fmt.Errorf("user %s: %w (is the package that creates it installed?)", owner, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("group %s: %w (is the package that creates it installed?)", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

// requireRoot skips (fails under CI) a test whose server must start as root to drop to its
// own user.
func requireRoot(t testing.TB, server string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("testbench: %s must be started as root (it switches to its own user); run the tests as root", server)
	}
	t.Skipf("testbench: %s must be started as root (it switches to its own user); run the tests as root", server)
}

// procStat reads state, parent and process group of pid from /proc/PID/stat.
func procStat(pid int) (state string, ppid, pgrp int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, false
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 3 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	pgrp, _ = strconv.Atoi(fields[2])
	return fields[0], ppid, pgrp, true
}

// livePIDs lists the running processes (zombies excluded) for which match is true.
func livePIDs(match func(ppid, pgrp int) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, pgrp, ok := procStat(pid); ok && state != "Z" && match(ppid, pgrp) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// childPIDs lists the running children of ppid.
func childPIDs(ppid int) []int {
	return livePIDs(func(parent, _ int) bool { return parent == ppid })
}

// pidAlive reports whether pid runs; a zombie counts as gone (orphans are reaped late here).
func pidAlive(pid int) bool {
	state, _, _, ok := procStat(pid)
	return ok && state != "Z"
}

// stopGroup stops a server and everything it forked: a child that outlives its master (Cyrus
// services finish their session) still holds the listening socket and the data directory.
func stopGroup(p *Process) {
	p.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for len(livePIDs(func(_, pgrp int) bool { return pgrp == p.Pid() })) > 0 {
		if time.Now().After(deadline) {
			_ = p.Signal(syscall.SIGKILL)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
