package testbench

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a private redis-server on 127.0.0.1 without persistence: a restart empties it.
type Redis struct {
	Addr string // "127.0.0.1:port"
	Dir  string // its directory (working dir and logs)

	proc    *Process
	durable bool
}

// StartRedis starts redis-server on a free port and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, &Redis{})
}

// StartDurableRedis is StartRedis with an append-only file written on every command
// (appendfsync always), so data survives Stop and Start as on a production Redis.
func StartDurableRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, &Redis{durable: true})
}

func startRedis(t testing.TB, r *Redis) *Redis {
	t.Helper()
	Require(t, "redis-server")
	r.Dir = Dir(t)
	KeepLogs(t, r.Dir)
	t.Cleanup(r.Stop)
	// The free port can be taken by another test binary before redis binds it; try others.
	var err error
	for range 3 {
		r.Addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		began := time.Now()
		if err = r.start(); err == nil {
			t.Logf("testbench: redis on %s answers PING after %s", r.Addr, time.Since(began).Round(time.Millisecond))
			return r
		}
	}
	t.Fatal(err)
	return nil
}

// Stop stops the server; its data is gone unless it was started durable.
func (r *Redis) Stop() {
	if r.proc != nil {
		r.proc.Stop()
	}
}

// Start starts the server again on the same port and waits until it answers PING.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if r.proc != nil && !r.proc.Exited() {
		t.Fatal("testbench: redis is already running; Stop it first")
	}
	began := time.Now()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("testbench: redis on %s answers PING after %s", r.Addr, time.Since(began).Round(time.Millisecond))
}

func (r *Redis) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	persistence := []string{"--appendonly", "no"}
	if r.durable {
		persistence = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	// --bind is explicit: without a config file redis would listen on every interface.
	argv := append([]string{"redis-server",
		"--bind", "127.0.0.1", "--port", port, "--protected-mode", "yes", "--save", ""}, persistence...)
	argv = append(argv, "--dir", r.Dir, "--daemonize", "no",
		"--logfile", filepath.Join(r.Dir, "redis.log"), "--pidfile", filepath.Join(r.Dir, "redis.pid"))
	p, err := Start("redis", filepath.Join(r.Dir, "redis.out"), nil, argv...)
	if err != nil {
		return err
	}
	r.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.Exited() {
			return fmt.Errorf("testbench: redis-server on %s exited during start-up (%v); its log:\n%s\n%s",
				r.Addr, p.Wait(), tail(filepath.Join(r.Dir, "redis.log"), 20), tail(p.LogPath, 20))
		}
		err := redisPing(r.Addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("testbench: redis-server on %s does not answer PING after 30 s: %v", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPing sends PING in RESP and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %s", strconv.Quote(line))
	}
	return nil
}
