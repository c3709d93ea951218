package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

func entry(id string) *Entry {
	return &Entry{ID: id, Time: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), QueueID: "4F1A2B3C4D",
		ClientAddr: "10.1.2.3", ClientName: "sogo.corp.example.test", Helo: "sogo", Login: "alice",
		Sender: "alice@corp.example.test", Recipients: []string{"to@ext.example", "cc@ext.example", "bcc@ext.example"},
		Direction: "outbound", MessageID: "<m1@corp.example.test>", Size: 2048}
}

func TestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("NewID() = %q: invalid or repeated", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", "../../../../etc/passwd", strings.Repeat("a", 26), strings.Repeat("A", 25) + "1",
		strings.Repeat("A", 25) + "/", strings.Repeat("A", 27)} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

// storeContract is what every store must do; lmtp-shadow relies on it.
func storeContract(t *testing.T, s Store) {
	ctx := context.Background()
	e := entry(NewID())
	if err := s.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, e); err == nil {
		t.Error("a second Put with the same id succeeded")
	}
	got, err := s.Get(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != fmt.Sprint(*e) {
		t.Errorf("Get = %+v\nwant  %+v", *got, *e)
	}
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	if err := s.MarkArchived(ctx, e.ID, at); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, e.ID); got == nil || !got.Archived.Equal(at) {
		t.Errorf("after MarkArchived: %+v", got)
	}
	if err := s.Delete(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, e.ID); err != nil {
		t.Errorf("deleting a missing entry: %v", err)
	}
	if _, err := s.Get(ctx, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.MarkArchived(ctx, e.ID, at); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkArchived after Delete: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"../x", "", "FORGED"} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrBadID) {
			t.Errorf("Get(%q) = %v, want ErrBadID", bad, err)
		}
		if err := s.Put(ctx, entry(bad)); !errors.Is(err, ErrBadID) {
			t.Errorf("Put(%q) = %v, want ErrBadID", bad, err)
		}
	}
}

func TestFileStore(t *testing.T) {
	s, err := OpenFile(filepath.Join(t.TempDir(), "journal"), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	storeContract(t, s)
}

func TestFileExpire(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFile(dir, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, fresh := entry(NewID()), entry(NewID())
	for _, e := range []*Entry{old, fresh} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(s.path(old.ID), past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.Expire(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, old.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired entry still there: %v", err)
	}
	if _, err := s.Get(ctx, fresh.ID); err != nil {
		t.Errorf("fresh entry gone: %v", err)
	}
}

func TestFileStoreUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // a file where the folder should be
		t.Fatal(err)
	}
	if _, err := OpenFile(dir, time.Hour); err == nil {
		t.Fatal("OpenFile on a file succeeded")
	}
}

// TestFileStoreTwoProcesses writes from a child process while this one reads: the
// milter and lmtp-shadow share the file store without locks.
func TestFileStoreTwoProcesses(t *testing.T) {
	if dir := os.Getenv("POSTERN_JOURNAL_CHILD"); dir != "" {
		s, err := OpenFile(dir, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range strings.Fields(os.Getenv("POSTERN_JOURNAL_IDS")) {
			if err := s.Put(context.Background(), entry(id)); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	dir := t.TempDir()
	s, err := OpenFile(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 200 {
		ids = append(ids, NewID())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreTwoProcesses$")
	cmd.Env = append(os.Environ(), "POSTERN_JOURNAL_CHILD="+dir, "POSTERN_JOURNAL_IDS="+strings.Join(ids, " "))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx := context.Background()
	found := map[string]bool{}
	var childErr error
	for done := false; !done; {
		select {
		case childErr = <-exited:
			done = true // one more pass below reads what is left
		default:
		}
		for _, id := range ids {
			if found[id] {
				continue
			}
			e, err := s.Get(ctx, id)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				t.Fatalf("reading while the other process writes: %v", err) // a torn entry
			case len(e.Recipients) != 3:
				t.Fatalf("entry %s read half-written: %+v", id, e)
			default:
				found[id] = true
			}
		}
	}
	if childErr != nil {
		t.Fatalf("child process: %v", childErr)
	}
	for _, id := range ids {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("entry %s: %v", id, err)
		}
	}
}

func TestRedisStore(t *testing.T) {
	r := testbench.StartRedis(t)
	s := NewRedis(config.Redis{Addrs: []string{r.Addr}}, "postern:journal:", 30*24*time.Hour, 2*time.Second)
	t.Cleanup(func() { s.Close() })
	storeContract(t, s)

	ctx := context.Background()
	e := entry(NewID())
	if err := s.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.client.TTL(ctx, "postern:journal:"+e.ID).Result()
	if err != nil || ttl < 29*24*time.Hour {
		t.Errorf("TTL = %v, %v; want the retention", ttl, err)
	}
	if err := s.MarkArchived(ctx, e.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := s.client.TTL(ctx, "postern:journal:"+e.ID).Result(); ttl < 29*24*time.Hour {
		t.Errorf("MarkArchived lost the expiry: TTL %v", ttl)
	}

	r.Stop()
	if err := s.Put(ctx, entry(NewID())); err == nil {
		t.Fatal("Put with Redis stopped succeeded")
	}
}
