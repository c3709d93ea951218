package testbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	began := time.Now()
	r := StartRedis(t)
	t.Logf("StartRedis took %s", time.Since(began).Round(time.Millisecond))

	c := dialRESP(t, r.Addr)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"SET", "rl:bob", "hello world"}, "OK"},
		{[]string{"GET", "rl:bob"}, "hello world"},
		{[]string{"INCR", "n"}, "1"},
		{[]string{"CONFIG", "GET", "save"}, "[save ]"},
	} {
		if got := c.do(t, step.args...); got != step.want {
			t.Errorf("%q = %q, want %q", step.args, got, step.want)
		}
	}
	c.Close()

	r.Stop()
	if c, err := net.Dial("tcp", r.Addr); err == nil {
		c.Close()
		t.Fatal("redis still answers after Stop")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Stop: %v, want connection refused", err)
	}

	began = time.Now()
	r.Start(t)
	t.Logf("Start (restart) took %s", time.Since(began).Round(time.Millisecond))
	c = dialRESP(t, r.Addr)
	defer c.Close()
	if got := c.do(t, "PING"); got != "PONG" {
		t.Errorf("PING after restart = %q", got)
	}
	if got := c.do(t, "GET", "rl:bob"); got != "(nil)" {
		t.Errorf("GET after restart = %q, want (nil): nothing is persisted", got)
	}
}

// A durable Redis keeps what it was told across Stop and Start, as a production Redis
// with an append-only file does through a restart.
func TestDurableRedis(t *testing.T) {
	r := StartDurableRedis(t)
	c := dialRESP(t, r.Addr)
	if got := c.do(t, "SET", "journal:1", "envelope"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	c.Close()
	r.Stop()
	r.Start(t)
	c = dialRESP(t, r.Addr)
	defer c.Close()
	if got := c.do(t, "GET", "journal:1"); got != "envelope" {
		t.Errorf("GET after restart = %q, want the value written before Stop", got)
	}
}

// respConn is just enough of a RESP client for the self-test.
type respConn struct {
	net.Conn
	rd *bufio.Reader
}

func dialRESP(t *testing.T, addr string) *respConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &respConn{Conn: c, rd: bufio.NewReader(c)}
}

// do sends a command and returns its reply as text: "(nil)" for a null, "[a b]" for an array.
func (c *respConn) do(t *testing.T, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	reply, err := c.read()
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return reply
}

func (c *respConn) read() (string, error) {
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "(nil)", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "(nil)", err
		}
		items := make([]string, n)
		for i := range items {
			if items[i], err = c.read(); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(items, " ") + "]", nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
