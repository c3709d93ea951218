package listener

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/postern-mail/postern/internal/config"
)

func TestOpenTCP(t *testing.T) {
	ln, err := Open(config.Listen{Network: "tcp", Address: "127.0.0.1:0"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestOpenUnixReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l := config.Listen{Network: "unix", Address: path}
	first, err := Open(l, "test")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	if _, err := Open(l, "test"); err == nil {
		t.Fatal("a socket another listener serves was taken over")
	}
	first.(*net.UnixListener).SetUnlinkOnClose(false)
	first.Close() // leaves a stale socket file, as a crash would
	second, err := Open(l, "test")
	if err != nil {
		t.Fatalf("a stale socket file blocked the start: %v", err)
	}
	second.Close()
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := Open(l, "test"); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

func TestOpenNothingConfigured(t *testing.T) {
	if _, err := Open(config.Listen{}, "test"); err == nil {
		t.Fatal("want an error when nothing is configured or passed")
	}
}
