package testbench

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cyrusMaster runs in the foreground (no -d), so the harness owns its PID and process group.
const cyrusMaster = "/usr/lib/cyrus/bin/master"

// cyrusServername is the SASL realm of the unqualified admin login: with virtdomains: userid,
// "admin" is looked up as admin@<servername>.
const cyrusServername = "imap.corp.example.test"

// Cyrus is a private Cyrus IMAP instance with virtual domains (user/alice@corp.example.test),
// "/" as hierarchy separator, and duplicate suppression on, as Cyrus ships it: a second
// message with a Message-ID already delivered to a mailbox is dropped (still answered 250)
// unless the mailbox has /shared/vendor/cmu/cyrus-imapd/duplicatedeliver "true", which
// lmtp-shadow sets on every archive folder.
type Cyrus struct {
	Dir           string
	IMAPAddr      string // IMAP; LOGIN and AUTHENTICATE PLAIN allowed without TLS
	LMTPAddr      string // lmtpd -a: preauthorized, no LMTP AUTH needed; MAIL FROM AUTH=<id> is honoured
	Admin         string // the Cyrus admin ("admin"), a member of admins: in imapd.conf
	AdminPassword string

	conf   string // imapd.conf, given with -C to master and to every service it runs
	sasldb string
	logDir string
	master *Process
}

// StartCyrus starts a private Cyrus master with IMAP and preauthorized LMTP on free loopback
// ports, and stops it when the test ends. Needs root: master drops to the cyrus user itself.
func StartCyrus(t testing.TB) *Cyrus {
	t.Helper()
	Require(t, cyrusMaster, "saslpasswd2")
	requireRoot(t, "Cyrus IMAP")
	begin := time.Now()
	dir := Dir(t)
	c := &Cyrus{
		Dir:           dir,
		Admin:         "admin",
		AdminPassword: "admin-secret",
		conf:          filepath.Join(dir, "imapd.conf"),
		sasldb:        filepath.Join(dir, "sasldb2"),
		logDir:        filepath.Join(dir, "log"),
	}
	if err := c.layout(); err != nil {
		t.Fatalf("testbench: set up cyrus in %s: %v", dir, err)
	}
	c.AddUser(t, c.Admin, c.AdminPassword)
	if err := chownTree(dir, "cyrus", "mail"); err != nil {
		t.Fatalf("testbench: set up cyrus in %s: %v", dir, err)
	}
	KeepLogs(t, c.logDir)
	if captureSyslog() {
		t.Cleanup(releaseSyslog) // after Stop: cleanups run last-registered first
	} else {
		t.Logf("testbench: /dev/log is served by another process, so Cyrus's log lines go there "+
			"(if that is another test binary of this package, it files them in %s/syslog too)", c.logDir)
	}
	t.Cleanup(c.Stop)
	// A port FreePort found can be taken by another test binary before master binds it; master
	// then runs on without that service, so a start that fails is tried on fresh ports.
	var err error
	for range 3 {
		c.IMAPAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		c.LMTPAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		if err = c.writeCyrusConf(); err != nil {
			t.Fatalf("testbench: set up cyrus in %s: %v", dir, err)
		}
		if err = c.start(); err == nil {
			c.logReady(t, begin)
			return c
		}
		c.Stop()
	}
	t.Fatal(err)
	return nil
}

// layout writes imapd.conf and makes every directory it names, inside Dir.
func (c *Cyrus) layout() error {
	for _, d := range []string{"conf/socket", "conf/db", "spool", "run/proc", "run/lock", "run/socket", "sieve", "log"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	d := c.Dir
	imapd := strings.Join([]string{
		"configdirectory: " + d + "/conf",
		"defaultpartition: default",
		"partition-default: " + d + "/spool",
		"proc_path: " + d + "/run/proc",
		"mboxname_lockpath: " + d + "/run/lock",
		"lmtpsocket: " + d + "/run/socket/lmtp",
		"idlesocket: " + d + "/run/socket/idle",
		"notifysocket: " + d + "/run/socket/notify",
		"sievedir: " + d + "/sieve",
		"servername: " + cyrusServername,
		"virtdomains: userid",
		"defaultdomain: default.invalid", // so corp.example.test is a real virtual domain
		"unixhierarchysep: yes",
		"altnamespace: no",
		"admins: admin",
		"lmtp_downcase_rcpt: yes",
		"delete_mode: immediate",
		"expunge_mode: immediate",
		"allowplaintext: yes",
		"sasl_mech_list: PLAIN LOGIN",
		"sasl_pwcheck_method: auxprop",
		"sasl_auxprop_plugin: sasldb",
		"sasl_sasldb_path: " + c.sasldb,
		"umask: 077",
		// The ident names the log dir, so whoever holds /dev/log can file the line there.
		"syslog_prefix: " + c.logDir,
	}, "\n") + "\n"
	return os.WriteFile(c.conf, []byte(imapd), 0o644)
}

// writeCyrusConf writes cyrus.conf for the current ports.
func (c *Cyrus) writeCyrusConf() error {
	// master does not pass its -C on: without -C a service reads /etc/imapd.conf.
	cyrusConf := fmt.Sprintf(`START {
  recover  cmd="ctl_cyrusdb -C %[1]s -r"
}
SERVICES {
  imap     cmd="imapd -C %[1]s"    listen="%[2]s" prefork=0 maxchild=50
  lmtppre  cmd="lmtpd -C %[1]s -a" listen="%[3]s" prefork=0 maxchild=50
}
EVENTS {
  checkpoint cmd="ctl_cyrusdb -C %[1]s -c" period=30
}
DAEMON {
}
`, c.conf, c.IMAPAddr, c.LMTPAddr)
	return os.WriteFile(filepath.Join(c.Dir, "cyrus.conf"), []byte(cyrusConf), 0o644)
}

// Start starts the master again after Stop, on the same ports, and waits until it serves
// IMAP and LMTP. Mailboxes and users survive a Stop/Start.
func (c *Cyrus) Start(t testing.TB) {
	t.Helper()
	begin := time.Now()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	c.logReady(t, begin)
}

func (c *Cyrus) start() error {
	var err error
	c.master, err = Start("cyrus master", filepath.Join(c.logDir, "master.log"), nil,
		cyrusMaster, "-D", "-C", c.conf, "-M", filepath.Join(c.Dir, "cyrus.conf"), "-p", filepath.Join(c.Dir, "run", "master.pid"))
	if err != nil {
		return err
	}
	// Ready when master itself holds both listening sockets: a connection test would also
	// succeed against another program on a port master failed to bind. master binds its
	// services within a millisecond of each other, so one bound without the other for half a
	// second means the other port is taken.
	begin := time.Now()
	for deadline := begin.Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		imap, lmtp := listensOn(c.master.Pid(), c.IMAPAddr), listensOn(c.master.Pid(), c.LMTPAddr)
		if imap && lmtp {
			return nil
		}
		if c.master.Exited() || time.Now().After(deadline) || (imap != lmtp && time.Since(begin) > 500*time.Millisecond) {
			return fmt.Errorf("testbench: cyrus master is not listening on %s and %s (exited: %v; "+
				"a port taken, or see the logs):\nmaster.log:\n%s\nsyslog:\n%s", c.IMAPAddr, c.LMTPAddr, c.master.Exited(),
				tail(filepath.Join(c.logDir, "master.log"), 10), tail(filepath.Join(c.logDir, "syslog"), 20))
		}
	}
}

func (c *Cyrus) logReady(t testing.TB, begin time.Time) {
	t.Helper()
	t.Logf("testbench: cyrus IMAP on %s, LMTP (preauth) on %s, ready in %s (dir %s)",
		c.IMAPAddr, c.LMTPAddr, time.Since(begin).Round(time.Millisecond), c.Dir)
}

// Stop stops the master and every service it forked, and returns once all of them have
// gone, so the ports refuse connections.
func (c *Cyrus) Stop() {
	if c.master == nil {
		return
	}
	// SIGTERM to the master alone: it shuts its services down cleanly (the group gets
	// SIGTERM too only if it has not ended in 5 s).
	_ = syscall.Kill(c.master.Pid(), syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); !c.master.Exited() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stopGroup(c.master)
}

// AddUser creates a SASL user in the instance's sasldb so it can log in over IMAP. A user
// "alice@corp.example.test" goes into realm corp.example.test; an unqualified one into the
// servername realm, where Cyrus looks for it.
func (c *Cyrus) AddUser(t testing.TB, user, password string) {
	t.Helper()
	local, realm, ok := strings.Cut(user, "@")
	if !ok {
		realm = cyrusServername
	}
	cmd := exec.Command("saslpasswd2", "-p", "-f", c.sasldb, "-u", realm, "-c", local)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbench: saslpasswd2 -f %s -u %s -c %s: %v\n%s", c.sasldb, realm, local, err, out)
	}
	if err := chownTree(c.sasldb, "cyrus", "mail"); err != nil { // imapd reads it as cyrus
		t.Fatalf("testbench: %v", err)
	}
}

// CreateMailbox creates a mailbox as the admin, e.g. "user/alice@corp.example.test" (alice's
// INBOX) or "user/alice/Archive@corp.example.test" (her INBOX/Archive).
func (c *Cyrus) CreateMailbox(t testing.TB, name string) {
	t.Helper()
	c.AdminCommand(t, "CREATE "+imapQuote(name))
}

// SetACL sets id's rights on a mailbox as the admin; "anyone" "p" lets LMTP deliver to
// user+Folder@domain without MAIL FROM AUTH=.
func (c *Cyrus) SetACL(t testing.TB, mailbox, id, rights string) {
	t.Helper()
	c.AdminCommand(t, "SETACL "+imapQuote(mailbox)+" "+imapQuote(id)+" "+imapQuote(rights))
}

// AdminCommand runs one IMAP command as the admin (arguments already quoted) and returns its
// untagged response lines; a NO or BAD fails the test.
func (c *Cyrus) AdminCommand(t testing.TB, command string) []string {
	t.Helper()
	conn, err := c.dialIMAP("", c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.logout()
	resps, err := conn.do(command)
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, len(resps))
	for i, r := range resps {
		lines[i] = r.text
	}
	return lines
}

// Metadata returns the value of a mailbox's shared or private metadata entry (RFC 5464
// GETMETADATA as the admin), e.g. "/shared/vendor/cmu/cyrus-imapd/duplicatedeliver" of
// "user/shadow/Outbound@corp.example.test"; "" when it has none.
func (c *Cyrus) Metadata(t testing.TB, mailbox, entry string) string {
	t.Helper()
	for _, line := range c.AdminCommand(t, "GETMETADATA "+imapQuote(mailbox)+" ("+imapQuote(entry)+")") {
		// * METADATA user/shadow/Outbound@corp.example.test ("/shared/vendor/..." "true")
		if m := metadataValue.FindStringSubmatch(line); m != nil && strings.EqualFold(m[1], entry) {
			return m[2]
		}
	}
	return ""
}

var metadataValue = regexp.MustCompile(`^\* METADATA .* \("?([^" ]+)"? "((?:[^"\\]|\\.)*)"\)$`)

// Message is one message read back from a mailbox.
type Message struct {
	Raw       []byte // as the store keeps it, CRLF line ends
	MessageID string
	Subject   string // decoded (RFC 2047)
}

// Messages reads every message of a user's folder ("INBOX", "INBOX/Archive") as that user
// would see it, logging in as the admin on the user's behalf (SASL PLAIN authzid), so it needs
// neither the user's password nor an ACL for the admin.
func (c *Cyrus) Messages(t testing.TB, user, folder string) []Message {
	t.Helper()
	msgs, err := c.ReadMessages(user, folder)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// ErrNoFolder is ReadMessages' error for a folder that does not exist.
var ErrNoFolder = errors.New("testbench: no such folder")

// ReadMessages is Messages for callers that handle errors themselves; a folder that does
// not exist is ErrNoFolder.
func (c *Cyrus) ReadMessages(user, folder string) ([]Message, error) {
	conn, err := c.dialIMAP(user, c.Admin)
	if err != nil {
		return nil, err
	}
	defer conn.logout()
	resps, err := conn.do("EXAMINE " + imapQuote(folder))
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, fmt.Errorf("%w: %s of %s", ErrNoFolder, folder, user)
		}
		return nil, fmt.Errorf("%v (does %s have a folder %q?)", err, user, folder)
	}
	exists := 0
	for _, r := range resps {
		if n, ok := strings.CutSuffix(r.text, " EXISTS"); ok {
			exists, _ = strconv.Atoi(strings.TrimPrefix(n, "* "))
		}
	}
	if exists == 0 {
		return nil, nil
	}
	if resps, err = conn.do("FETCH 1:* (BODY.PEEK[])"); err != nil {
		return nil, err
	}
	var msgs []Message
	for _, r := range resps {
		if len(r.literals) == 1 && strings.Contains(r.text, " FETCH ") {
			m := Message{Raw: r.literals[0]}
			m.MessageID, m.Subject = headerFields(m.Raw)
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// headerFields returns the Message-ID and the decoded Subject of a raw message.
func headerFields(raw []byte) (messageID, subject string) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", ""
	}
	subject = m.Header.Get("Subject")
	if s, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = s
	}
	return m.Header.Get("Message-Id"), subject
}

// imapConn is a bare IMAP4rev1 client (RFC 3501): tagged commands, untagged responses with
// their literals. Enough for CREATE, SETACL, EXAMINE and FETCH, without a dependency.
type imapConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

type imapResponse struct {
	text     string   // the response with each literal replaced by its {n} marker
	literals [][]byte // the literals, in order
}

// dialIMAP logs in as authc with the admin password; with authz set, acting as that user
// (Cyrus lets admins authorize as anyone).
func (c *Cyrus) dialIMAP(authz, authc string) (*imapConn, error) {
	nc, err := net.DialTimeout("tcp", c.IMAPAddr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("testbench: connect to cyrus IMAP %s: %w (is it running?)", c.IMAPAddr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	conn := &imapConn{addr: c.IMAPAddr, conn: nc, r: bufio.NewReader(nc)}
	if greeting, err := conn.read(); err != nil || !strings.HasPrefix(greeting.text, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("testbench: cyrus IMAP %s greeted %q: %v", c.IMAPAddr, greeting.text, err)
	}
	ir := base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + c.AdminPassword))
	if _, err := conn.do("AUTHENTICATE PLAIN " + ir); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w (login as %s for %q; see the syslog in %s)", err, authc, authz, c.logDir)
	}
	return conn, nil
}

// do sends one command and collects the untagged responses until its tagged reply; a reply
// other than OK is an error quoting it.
func (c *imapConn) do(command string) ([]imapResponse, error) {
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		return nil, fmt.Errorf("testbench: IMAP %s: %w", c.addr, err)
	}
	var resps []imapResponse
	for {
		r, err := c.read()
		if err != nil {
			return resps, err
		}
		if status, ok := strings.CutPrefix(r.text, tag+" "); ok {
			if !strings.HasPrefix(status, "OK") {
				return resps, fmt.Errorf("testbench: IMAP %s: %s: %s", c.addr, redact(command), status)
			}
			return resps, nil
		}
		resps = append(resps, r)
	}
}

var literalMarker = regexp.MustCompile(`\{(\d+)\+?\}$`)

// read reads one response line, with any literals it announces.
func (c *imapConn) read() (imapResponse, error) {
	var r imapResponse
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, fmt.Errorf("testbench: IMAP %s: read: %w", c.addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		r.text += line
		m := literalMarker.FindStringSubmatch(line)
		if m == nil {
			return r, nil
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			return r, fmt.Errorf("testbench: IMAP %s: read literal: %w", c.addr, err)
		}
		r.literals = append(r.literals, lit)
	}
}

func (c *imapConn) logout() {
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.do("LOGOUT")
	c.conn.Close()
}

// redact keeps credentials out of error messages.
func redact(command string) string {
	if strings.HasPrefix(command, "AUTHENTICATE ") {
		return "AUTHENTICATE PLAIN ..."
	}
	return command
}

// imapQuote makes an IMAP quoted string (RFC 3501 section 4.3).
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// chownTree gives path and everything under it to user:group.
func chownTree(path, user, group string) error {
	uid, gid, err := lookupIDs(user, group)
	if err != nil {
		return err
	}
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// listensOn reports whether process pid holds a socket listening on addr (127.0.0.1:port),
// from /proc/net/tcp and /proc/PID/fd.
func listensOn(pid int, addr string) bool {
	_, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(port)
	want := fmt.Sprintf("0100007F:%04X", n) // 127.0.0.1 in host (little-endian) order
	tcp, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(tcp), "\n") {
		// sl local_address rem_address st ... inode (field 9)
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == want && f[3] == "0A" {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
}

// Cyrus logs only through syslog(3), to /dev/log. Where the host has no /dev/log (this
// machine, containers), the test process binds one for as long as a Cyrus instance runs and
// appends each line to <log dir>/syslog of the instance that sent it: the ident is
// syslog_prefix + "/" + service, and syslog_prefix is that log dir, so this works for the
// instances of other test processes too. A /dev/log that works is never touched, so on a host
// with a syslog daemon the lines go there; one that this harness left behind when its process
// was killed (noted by inode in devlogMark, nobody reading it) is replaced.
var devlog struct {
	sync.Mutex
	users int
	conn  *net.UnixConn
	ino   uint64
}

const devlogPath = "/dev/log"

var devlogMark = filepath.Join(os.TempDir(), "postern-testbench-devlog")

// captureSyslog takes /dev/log if it is free (or already ours) and reports whether Cyrus
// lines are being filed; each true must be matched by releaseSyslog.
func captureSyslog() bool {
	devlog.Lock()
	defer devlog.Unlock()
	if devlog.conn == nil {
		if _, err := os.Lstat(devlogPath); err == nil && !removeStaleDevlog() {
			return false
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: devlogPath, Net: "unixgram"})
		if err != nil {
			return false
		}
		var st syscall.Stat_t
		_ = syscall.Stat(devlogPath, &st)
		_ = os.Chmod(devlogPath, 0o666) // services run as cyrus
		_ = os.WriteFile(devlogMark, []byte(strconv.FormatUint(st.Ino, 10)), 0o644)
		devlog.conn, devlog.ino = conn, st.Ino
		go fileSyslog(conn)
	}
	devlog.users++
	return true
}

// removeStaleDevlog removes /dev/log if it is the socket a killed test process of ours left.
func removeStaleDevlog() bool {
	var st syscall.Stat_t
	mark, err := os.ReadFile(devlogMark)
	if err != nil || syscall.Stat(devlogPath, &st) != nil || string(mark) != strconv.FormatUint(st.Ino, 10) {
		return false
	}
	c, err := net.Dial("unixgram", devlogPath)
	if err == nil {
		c.Close()
		return false // another test process serves it
	}
	return errors.Is(err, syscall.ECONNREFUSED) && os.Remove(devlogPath) == nil
}

func releaseSyslog() {
	devlog.Lock()
	defer devlog.Unlock()
	if devlog.users--; devlog.users > 0 || devlog.conn == nil {
		return
	}
	var st syscall.Stat_t
	if syscall.Stat(devlogPath, &st) == nil && st.Ino == devlog.ino {
		os.Remove(devlogPath)
		os.Remove(devlogMark)
	}
	devlog.conn.Close()
	devlog.conn = nil
}

// syslogLine is "<PRI>Mmm dd hh:mm:ss IDENT[PID]: message" as glibc's syslog(3) sends it.
var syslogLine = regexp.MustCompile(`^<\d+>(.{15} )(/[^\[: ]+)/([^/\[: ]+)(\[\d+\]: .*)$`)

func fileSyslog(conn *net.UnixConn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return // closed by releaseSyslog
		}
		m := syslogLine.FindSubmatch(bytes.TrimRight(buf[:n], "\x00\n"))
		if m == nil {
			continue // not from a bench instance
		}
		dir := string(m[2])
		if filepath.Clean(dir) != dir || filepath.Base(dir) != "log" || !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "postern-bench-") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, "syslog"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			continue // the instance's directory is gone
		}
		fmt.Fprintf(f, "%s%s%s\n", m[1], m[3], m[4])
		f.Close()
	}
}
