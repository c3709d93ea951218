package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// activatedDaemon is a daemon as its packaged .socket unit starts it.
type activatedDaemon struct {
	daemon  string // the subcommand
	fdName  string // the unit's FileDescriptorName
	network string // the socket systemd holds: unix (the package's units) or tcp
	// section is the daemon's configuration: %[1]s its listen address, %[2]s the state dir.
	section string
	// talk makes one real exchange and returns the reply, which should start with want.
	talk func(*bufio.ReadWriter) (string, error)
	want string
}

var activatedDaemons = []activatedDaemon{
	{daemon: "tcptable", fdName: "socketmap", network: "unix",
		section: "tcptable: {socketmap: %[1]s}", talk: socketmapLookup, want: "OK alice@corp.example.test"},
	{daemon: "policyd", fdName: "policyd", network: "unix",
		section: "policyd: {listen: %[1]s}", talk: policyRequest, want: "action=DUNNO"},
	{daemon: "milter", fdName: "milter", network: "unix",
		section: "milter: {listen: %[1]s}", talk: milterOptneg, want: "O"},
	{daemon: "lmtp-shadow", fdName: "lmtp-shadow", network: "unix",
		section: lmtpShadowSection, talk: lmtpHello, want: "250 "},
	// A ListenStream= may be a port too.
	{daemon: "lmtp-shadow", fdName: "lmtp-shadow", network: "tcp",
		section: lmtpShadowSection, talk: lmtpHello, want: "250 "},
}

const lmtpShadowSection = `lmtp_shadow:
  listen: %[1]s
  store: {lmtp: inet:127.0.0.1:1, imap: inet:127.0.0.1:1, admin_user: cyrus, admin_password_file: %[2]s/pw}`

// TestSocketActivationSurvivesRestart holds each daemon's listening socket as systemd
// does, hands it over (LISTEN_FDS, LISTEN_FDNAMES) and talks to the daemon through it;
// then stops the daemon, connects while it is down, and starts it again on the same
// socket: the waiting connection is served, not refused.
func TestSocketActivationSurvivesRestart(t *testing.T) {
	for _, d := range activatedDaemons {
		t.Run(d.daemon+"/"+d.network, func(t *testing.T) {
			t.Parallel()
			d.survivesRestart(t)
		})
	}
}

func (d activatedDaemon) survivesRestart(t *testing.T) {
	dir := t.TempDir()
	ln, sock := holdSocket(t, d.network, filepath.Join(dir, d.fdName+".sock"))
	// The configured listener is one nobody uses: only the inherited socket answers.
	listen := fmt.Sprintf("inet:127.0.0.1:%d", testbench.FreePort(t))
	unused := filepath.Join(dir, "unused.sock")
	if d.network == "unix" {
		listen = "unix:" + unused
	}
	cfg, telemetry := writeActivationConfig(t, dir, fmt.Sprintf(d.section, listen, dir))
	logPath := filepath.Join(dir, "postern.log")
	testbench.KeepLogs(t, logPath)
	// Until its first directory sync a daemon answers, but with temporary failures: wait
	// for /readyz, then expect real answers.
	start := func() *exec.Cmd {
		cmd := startActivated(t, sock, d.fdName, logPath, cfg, d.daemon)
		eventually(t, d.daemon+" is ready", func() bool { return testbench.Ready(telemetry) })
		return cmd
	}

	first := start()
	c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d.check(t, c, "through the inherited socket")

	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("stopping on SIGTERM: %v", err)
	}
	waiting, err := net.Dial(ln.Addr().Network(), ln.Addr().String()) // while nothing serves
	if err != nil {
		t.Fatalf("a connection during the restart was refused: %v", err)
	}
	start()
	d.check(t, waiting, "the connection made during the restart")
	if _, err := os.Lstat(unused); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the configured socket %s was bound beside the inherited one: %v", unused, err)
	}
}

// check makes d's exchange over c and closes it.
func (d activatedDaemon) check(t *testing.T, c net.Conn, what string) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := d.talk(bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)))
	if err != nil || !strings.HasPrefix(got, d.want) {
		t.Fatalf("%s: %q, %v; want a reply starting %q", what, got, err, d.want)
	}
}

// holdSocket listens as systemd does for a ListenStream= (a path for unix, a loopback
// port for tcp) and returns the listener with the file to pass on.
func holdSocket(t *testing.T, network, path string) (net.Listener, *os.File) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = path
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln, f
}

// writeActivationConfig writes a configuration with the static directory and section,
// and returns its path and the telemetry address.
func writeActivationConfig(t *testing.T, dir, section string) (cfg, telemetry string) {
	t.Helper()
	example, err := filepath.Abs("../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "postern.yaml")
	telemetry = fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	body := fmt.Sprintf(`domains: [corp.example.test]
state_dir: %s
directory: {backend: static, static: {file: %s}}
telemetry: {listen: %s}
%s
`, dir, example, telemetry, section)
	for name, text := range map[string]string{cfg: body, filepath.Join(dir, "pw"): "x"} {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, telemetry
}

// startActivated runs `postern -c cfg daemon` with sock as its fd 3, the way systemd
// passes a socket named fdName, and kills it when the test ends.
func startActivated(t *testing.T, sock *os.File, fdName, logPath, cfg, daemon string) *exec.Cmd {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// LISTEN_PID must be the daemon's own pid: sh sets it, then execs postern.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0" -c "$1" "$2"`, binary(t), cfg, daemon)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES="+fdName)
	cmd.ExtraFiles = []*os.File{sock} // fd 3
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// socketmapLookup asks socketmap_table(5) for a mailbox, as Postfix does.
func socketmapLookup(rw *bufio.ReadWriter) (string, error) {
	query := "mailboxes alice@corp.example.test"
	fmt.Fprintf(rw, "%d:%s,", len(query), query)
	if err := rw.Flush(); err != nil {
		return "", err
	}
	length, err := rw.ReadString(':')
	if err != nil {
		return length, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(length, ":"))
	if err != nil || n < 0 {
		return length, fmt.Errorf("not a netstring length")
	}
	reply := make([]byte, n+1)
	if _, err := io.ReadFull(rw, reply); err != nil {
		return "", err
	}
	if reply[n] != ',' {
		return string(reply), fmt.Errorf("netstring does not end in ','")
	}
	return string(reply[:n]), nil
}

// policyRequest sends a policy delegation request at RCPT and returns the first line of
// the reply.
func policyRequest(rw *bufio.ReadWriter) (string, error) {
	io.WriteString(rw, "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"+
		"client_address=127.0.0.1\nsasl_username=alice\nsender=alice@corp.example.test\n"+
		"recipient=bob@corp.example.test\nrecipient_count=0\n\n")
	if err := rw.Flush(); err != nil {
		return "", err
	}
	var first string
	for {
		line, err := rw.ReadString('\n')
		if err != nil {
			return first + line, err
		}
		if line == "\n" {
			return first, nil
		}
		if first == "" {
			first = line
		}
	}
}

// milterOptneg sends SMFIC_OPTNEG as Postfix does (protocol version 6) and returns the
// command of the reply: SMFIC_OPTNEG ("O") again, with the daemon's version and masks.
func milterOptneg(rw *bufio.ReadWriter) (string, error) {
	rw.Write([]byte{
		0, 0, 0, 13, 'O', // length, SMFIC_OPTNEG
		0, 0, 0, 6, // version
		0, 0, 0x01, 0xff, // actions
		0, 0x1f, 0xff, 0xff, // protocol steps
	})
	if err := rw.Flush(); err != nil {
		return "", err
	}
	var length [4]byte
	if _, err := io.ReadFull(rw, length[:]); err != nil {
		return "", err
	}
	size := int(length[0])<<24 | int(length[1])<<16 | int(length[2])<<8 | int(length[3])
	if size < 13 || size > 1<<16 {
		return "", fmt.Errorf("a reply of %d bytes, want an option negotiation", size)
	}
	reply := make([]byte, size)
	if _, err := io.ReadFull(rw, reply); err != nil {
		return "", err
	}
	return string(reply[:1]), nil
}

// lmtpHello reads the greeting, says LHLO and returns the last line of the reply.
func lmtpHello(rw *bufio.ReadWriter) (string, error) {
	greeting, err := rw.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "220 ") {
		return greeting, err
	}
	io.WriteString(rw, "LHLO client.example.test\r\n")
	if err := rw.Flush(); err != nil {
		return "", err
	}
	for {
		line, err := rw.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "250-") {
			return line, err
		}
	}
}
