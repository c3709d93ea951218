package ratelimit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

// TestRedisCluster runs the conformance checks against a three-node Redis Cluster: every
// key of a request shares the {rl} hash tag, so one script may touch them all.
func TestRedisCluster(t *testing.T) {
	testbench.Require(t, "redis-server", "redis-cli")
	dir := testbench.Dir(t)
	testbench.KeepLogs(t, dir)
	var addrs []string
	for i := range 3 {
		port := strconv.Itoa(testbench.FreePort(t))
		node := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(node, 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := testbench.Start("redis cluster node", filepath.Join(node, "redis.out"), nil, "redis-server",
			"--bind", "127.0.0.1", "--port", port, "--protected-mode", "yes", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(node, "nodes.conf"), "--save", "", "--appendonly", "no",
			"--dir", node, "--logfile", filepath.Join(node, "redis.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		addrs = append(addrs, "127.0.0.1:"+port)
		if err := testbench.WaitTCP(addrs[i], 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, a := range addrs {
		waitClusterOK(t, a)
	}
	store := NewRedis(config.Redis{Addrs: addrs, Timeout: config.Duration(2 * time.Second)})
	t.Cleanup(func() { store.Close() })
	conformance(t, store, "cluster-")
}

func waitClusterOK(t *testing.T, addr string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
		if strings.Contains(string(out), "cluster_state:ok") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis cluster node %s not ok after 30 s:\n%s", addr, out)
		}
	}
}

// TestRedisSentinel runs the conformance checks through a Sentinel (master_name): the
// client asks the sentinel for the master and counts there.
func TestRedisSentinel(t *testing.T) {
	testbench.Require(t, "redis-server", "redis-cli")
	master := testbench.StartRedis(t)
	dir := testbench.Dir(t)
	testbench.KeepLogs(t, dir)
	port := strconv.Itoa(testbench.FreePort(t))
	host, mport, _ := strings.Cut(master.Addr, ":")
	conf := filepath.Join(dir, "sentinel.conf") // sentinel rewrites its configuration file
	if err := os.WriteFile(conf, []byte("bind 127.0.0.1\nport "+port+"\nsentinel monitor postern "+host+" "+mport+" 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := testbench.Start("redis sentinel", filepath.Join(dir, "sentinel.out"), nil, "redis-server", conf, "--sentinel",
		"--logfile", filepath.Join(dir, "sentinel.log"), "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	sentinel := "127.0.0.1:" + port
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port, "sentinel", "get-master-addr-by-name", "postern").Output()
		if strings.Contains(string(out), mport) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s does not name the master after 30 s: %q", sentinel, out)
		}
	}
	store := NewRedis(config.Redis{Addrs: []string{sentinel}, MasterName: "postern", Timeout: config.Duration(2 * time.Second)})
	t.Cleanup(func() { store.Close() })
	conformance(t, store, "sentinel-")
}
