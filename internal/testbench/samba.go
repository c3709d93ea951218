package testbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// The domain every bench DC serves. Tests may rely on these names.
const (
	SambaRealm      = "CORP.EXAMPLE.TEST"
	SambaDomain     = "CORP"
	SambaHost       = "dc1.corp.example.test"
	SambaBaseDN     = "DC=corp,DC=example,DC=test"
	SambaAdminDN    = "CN=Administrator,CN=Users,DC=corp,DC=example,DC=test"
	SambaAdminUPN   = "Administrator@corp.example.test"
	sambaAdminPass  = "Passw0rd!Admin"
	sambaCacheRoot  = "/var/tmp/postern-testbench"
	sambaPortLock   = "/tmp/postern-testbench-samba.lock"
	sambaTemplateID = "r1" // bump when the template's contents change, so old caches are not reused
)

// sambaPorts are Samba's LDAP, LDAPS and global catalog ports. smb.conf cannot move them,
// which is why only one bench DC can run on a machine at a time.
func sambaPorts() []int { return []int{389, 636, 3268, 3269} }

// Samba is a private Samba AD DC serving LDAP on 127.0.0.1:389 and LDAPS on :636.
type Samba struct {
	Dir          string // its directory
	URL          string // "ldap://127.0.0.1:389"
	LDAPSURL     string // "ldaps://127.0.0.1:636"
	CAFile       string // the CA that signed its TLS certificate (private/tls/ca.pem)
	ServerName   string // the DNS name in its certificate: "dc1.corp.example.test" (no IP SAN, like a real DC)
	BaseDN       string // "DC=corp,DC=example,DC=test"
	BindDN       string // Administrator's DN, usable for a simple bind
	Password     string
	PasswordFile string // a file holding Password (mode 0600, no newline), for bind_password_file

	conf     string   // its smb.conf
	lock     *os.File // held while this DC may run
	lastHeld string   // what the lock file said before we took it, for the port-busy message
	proc     *Process
}

// StartSamba starts a fresh DC whose domain holds only what provisioning makes, and stops
// it when the test ends. It waits while another test (in any process) has a DC running,
// because Samba's LDAP ports are fixed.
func StartSamba(t testing.TB) *Samba {
	t.Helper()
	Require(t, "samba", "samba-tool", "ldapmodify")
	if os.Geteuid() != 0 {
		if InCI() {
			t.Fatal("testbench: a Samba AD DC must run as root; run the tests as root")
		}
		t.Skip("testbench: a Samba AD DC must run as root; run the tests as root")
	}
	s := &Samba{
		URL:      "ldap://127.0.0.1:389",
		LDAPSURL: "ldaps://127.0.0.1:636",

		ServerName: SambaHost,
		BaseDN:     SambaBaseDN,
		BindDN:     SambaAdminDN,
		Password:   sambaAdminPass,
	}
	// Cleanups run last-registered first: stop the DC, keep its logs, remove its dir, and
	// only then let the next test have the ports.
	s.lock, s.lastHeld = lockSambaPorts(t)
	t.Cleanup(func() { s.lock.Close() })

	tmpl := sambaTemplate(t)
	s.Dir = Dir(t)
	began := time.Now()
	if out, err := exec.Command("cp", "-a", tmpl+"/.", s.Dir).CombinedOutput(); err != nil {
		t.Fatalf("testbench: copy the Samba template %s: %v\n%s", tmpl, err, out)
	}
	for _, d := range []string{"run", "log", "cache"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.conf = filepath.Join(s.Dir, "etc", "smb.conf")
	if err := os.WriteFile(s.conf, []byte(sambaConf(s.Dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.CAFile = filepath.Join(s.Dir, "private", "tls", "ca.pem")
	s.PasswordFile = filepath.Join(s.Dir, "bind-password")
	if err := os.WriteFile(s.PasswordFile, []byte(s.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("testbench: Samba dir %s copied from the template in %s", s.Dir, time.Since(began).Round(time.Millisecond))

	KeepLogs(t, filepath.Join(s.Dir, "log"))
	t.Cleanup(s.Stop)
	s.Start(t)
	return s
}

// Stop stops the server and keeps its data, e.g. to simulate an outage.
func (s *Samba) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
}

// Start starts the server again on the same data and waits until LDAP answers.
func (s *Samba) Start(t testing.TB) {
	t.Helper()
	if s.proc != nil && !s.proc.Exited() {
		t.Fatal("testbench: Samba is already running; Stop it first")
	}
	// A foreign server on the ports would answer the readiness check in place of ours.
	if _, busy := sambaPortBusy(); busy && reclaimStaleSamba(s.lastHeld) {
		t.Logf("testbench: stopped a bench Samba left over from a killed test run (%s)", s.lastHeld)
	}
	if port, busy := sambaPortBusy(); busy {
		t.Fatalf("testbench: something already listens on 127.0.0.1:%d, one of Samba's fixed ports "+
			"(389/636/3268/3269), probably a samba left over from an aborted test run. "+
			"Find it with `ss -ltnp 'sport = :%d'` and stop it by its pid (%s last recorded: %s).",
			port, port, sambaPortLock, s.lastHeld)
	}
	began := time.Now()
	p, err := Start("samba", filepath.Join(s.Dir, "log", "stdout.log"), nil,
		"samba", "-i", "-M", "single", "-s", s.conf)
	if err != nil {
		t.Fatal(err)
	}
	s.proc = p
	noteSambaLock(s.lock, t, s.Dir, p.Pid())
	if err := s.waitReady(60 * time.Second); err != nil {
		s.proc.Stop()
		t.Fatalf("testbench: %v\n--- last lines of %s:\n%s", err, p.LogPath, tail(p.LogPath, 30))
	}
	t.Logf("testbench: Samba (pid %d) answers LDAP after %s", p.Pid(), time.Since(began).Round(time.Millisecond))
}

// waitReady waits until an anonymous rootDSE search names our domain.
func (s *Samba) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if s.proc.Exited() {
			return fmt.Errorf("samba exited during start-up (%v)", s.proc.Wait())
		}
		last = s.rootDSE()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("samba did not answer an LDAP rootDSE search within %s: %v", timeout, last)
}

func (s *Samba) rootDSE() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 5, false, "(objectClass=*)", []string{"defaultNamingContext"}, nil))
	if err != nil {
		return err
	}
	if len(res.Entries) != 1 || !strings.EqualFold(res.Entries[0].GetAttributeValue("defaultNamingContext"), s.BaseDN) {
		return fmt.Errorf("rootDSE does not name %s", s.BaseDN)
	}
	return nil
}

// TLSConfig verifies the DC's certificate the way a client of a real DC would: against
// CAFile and ServerName (the certificate has no IP address in it).
func (s *Samba) TLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("testbench: no certificate in %s", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: s.ServerName}
}

// Dial returns a connection over plain ldap:// bound as Administrator, closed when the
// test ends, for checking what the directory holds.
func (s *Samba) Dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatalf("testbench: dial Samba: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(30 * time.Second)
	if err := c.Bind(s.BindDN, s.Password); err != nil {
		t.Fatalf("testbench: bind to Samba as %s: %v", s.BindDN, err)
	}
	return c
}

// LDIF applies changetype records (add, modify, delete, modrdn) as Administrator, in
// order, stopping at the first one Samba rejects. A record without a changetype is an add.
// A common leading indentation (from a Go raw string) is removed first.
func (s *Samba) LDIF(t testing.TB, ldif string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ldapmodify", "-x", "-a", "-H", s.URL, "-D", s.BindDN, "-y", s.PasswordFile)
	cmd.Stdin = strings.NewReader(dedent(ldif))
	cmd.Env = append(os.Environ(), "LDAPNOINIT=1") // ignore ~/.ldaprc and /etc/ldap/ldap.conf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbench: Samba rejected the LDIF (%v):\n%s", err, out)
	}
}

// UnicodePwd returns the value for an LDIF "unicodePwd::" line that sets password: AD
// wants the password in double quotes, as UTF-16LE.
func UnicodePwd(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// dedent removes the leading whitespace that every non-blank line shares, so LDIF can be
// written indented in Go source without turning lines into LDIF continuations.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ws := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ws, false
			continue
		}
		for !strings.HasPrefix(l, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if prefix == "" {
		return s
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
		if strings.TrimSpace(lines[i]) == "" {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// sambaConf replaces the smb.conf provisioning writes: LDAP only, loopback only, simple
// binds over plain LDAP allowed, every path inside dir, and our own TLS certificate,
// because Samba's self-made one has no subjectAltName and Go refuses such certificates.
func sambaConf(dir string) string {
	return strings.ReplaceAll(`[global]
	netbios name = DC1
	workgroup = CORP
	realm = CORP.EXAMPLE.TEST
	server role = active directory domain controller
	server services = ldap
	interfaces = 127.0.0.1
	bind interfaces only = yes
	ldap server require strong auth = no
	private dir = @D@/private
	state directory = @D@/state
	cache directory = @D@/cache
	lock directory = @D@
	binddns dir = @D@/bind-dns
	pid directory = @D@/run
	ncalrpc dir = @D@/run/ncalrpc
	winbindd socket directory = @D@/run/winbindd
	ntp signd socket directory = @D@/run/ntp_signd
	log file = @D@/log/samba.log
	log level = 1
	tls enabled = yes
	tls keyfile = @D@/private/tls/key.pem
	tls certfile = @D@/private/tls/cert.pem
	tls cafile = @D@/private/tls/ca.pem
`, "@D@", dir)
}

// sambaTemplate returns a provisioned DC directory to copy, provisioning it once per samba
// version (about 5 s). A file lock keeps concurrent test binaries from provisioning twice.
func sambaTemplate(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("samba", "--version").Output()
	if err != nil {
		t.Fatalf("testbench: samba --version: %v", err)
	}
	version := regexp.MustCompile(`[^A-Za-z0-9.+_-]+`).ReplaceAllString(
		strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Version")), "_")
	tmpl := filepath.Join(sambaCacheRoot, "samba-"+version+"-"+sambaTemplateID)
	if _, err := os.Stat(tmpl); err == nil {
		return tmpl // complete: it only appears by rename
	}
	if err := os.MkdirAll(sambaCacheRoot, 0o755); err != nil {
		t.Fatalf("testbench: make the Samba template cache: %v", err)
	}
	lf, err := os.OpenFile(tmpl+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testbench: lock %s: %v", lf.Name(), err)
	}
	if _, err := os.Stat(tmpl); err == nil {
		return tmpl // another process provisioned it while we waited
	}
	began := time.Now()
	work := tmpl + ".tmp"
	if err := os.RemoveAll(work); err != nil { // left by an aborted run
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "samba-tool", "domain", "provision", "--targetdir="+work,
		"--realm="+SambaRealm, "--domain="+SambaDomain, "--server-role=dc", "--dns-backend=NONE",
		"--host-name=dc1", "--host-ip=127.0.0.1", "--adminpass="+sambaAdminPass,
		"--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(work)
		t.Fatalf("testbench: samba-tool domain provision into %s failed (%v); its last lines:\n%s",
			work, err, lastLines(out, 30))
	}
	if err := writeSambaTLS(filepath.Join(work, "private", "tls")); err != nil {
		os.RemoveAll(work)
		t.Fatalf("testbench: make the Samba TLS certificate: %v", err)
	}
	if err := os.Rename(work, tmpl); err != nil {
		t.Fatal(err)
	}
	t.Logf("testbench: provisioned the Samba template %s in %s (once per samba version)",
		tmpl, time.Since(began).Round(time.Millisecond))
	return tmpl
}

// writeSambaTLS makes a CA and a server certificate for SambaHost signed by it. Samba would
// make its own on first start, but with the name only in the CN, which Go does not accept.
func writeSambaTLS(dir string) error {
	_, err := WriteTLS(dir, "postern testbench Samba CA", SambaHost)
	return err
}

// lockSambaPorts takes the machine-wide lock that says "a bench DC runs here", waiting for
// whoever holds it. The kernel drops the lock when the holding process dies.
func lockSambaPorts(t testing.TB) (*os.File, string) {
	t.Helper()
	f, err := os.OpenFile(sambaPortLock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("testbench: open the Samba lock %s: %v", sambaPortLock, err)
	}
	deadline, hasDeadline := time.Time{}, false
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		deadline, hasDeadline = d.Deadline()
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			t.Fatalf("testbench: lock %s: %v", sambaPortLock, err)
		}
		holder := readHolder(f)
		if strings.HasPrefix(holder, fmt.Sprintf("pid %d test %s ", os.Getpid(), t.Name())) {
			f.Close()
			t.Fatal("testbench: StartSamba called twice in one test; only one DC can run at a time")
		}
		if hasDeadline && time.Until(deadline) < 30*time.Second {
			f.Close()
			t.Fatalf("testbench: gave up waiting for %s before the test deadline; it is held by: %s", sambaPortLock, holder)
		}
		if !waiting {
			t.Logf("testbench: waiting for the Samba DC of another test (%s)", holder)
			waiting = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastHeld := readHolder(f)
	noteSambaLock(f, t, "", 0)
	return f, lastHeld
}

// noteSambaLock records in the lock file who holds it, for the messages of those waiting.
func noteSambaLock(f *os.File, t testing.TB, dir string, pid int) {
	note := fmt.Sprintf("pid %d test %s (starting its DC)\n", os.Getpid(), t.Name())
	if pid != 0 {
		note = fmt.Sprintf("pid %d test %s samba pid %d dir %s\n", os.Getpid(), t.Name(), pid, dir)
	}
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(note), 0)
	}
}

func readHolder(f *os.File) string {
	b := make([]byte, 512)
	n, _ := f.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "holder unknown"
}

// sambaPortBusy reports the first of Samba's ports that already accepts connections.
func sambaPortBusy() (int, bool) {
	for _, p := range sambaPorts() {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 500*time.Millisecond)
		if err == nil {
			c.Close()
			return p, true
		}
	}
	return 0, false
}

// tail returns the last n lines of a log file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(b, n)
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// reclaimStaleSamba kills the bench Samba the lock file recorded, when it still runs:
// whoever took the lock after its test holds it now, so that test's process died without
// its cleanup (a go test timeout, a kill). Only a samba process serving a bench
// directory is touched. It reports whether the ports came free.
func reclaimStaleSamba(lastHeld string) bool {
	var holder, pid int
	var test, dir string
	if n, _ := fmt.Sscanf(lastHeld, "pid %d test %s samba pid %d dir %s", &holder, &test, &pid, &dir); n != 4 {
		return false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "samba" || !strings.Contains(string(cmdline), dir) ||
		!strings.Contains(dir, "postern-bench-") {
		return false
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if _, busy := sambaPortBusy(); !busy {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
