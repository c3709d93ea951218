package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/safefile"
)

// File is the journal store for sites without Redis: one JSON file per entry under
// Dir/<first two characters of the id>/<id>.json, each written atomically and durably
// (temp file, fsync, rename), so the milter and lmtp-shadow can use it at the same time
// from two processes without locks: a reader sees a whole entry or none.
type File struct {
	Dir       string
	Retention time.Duration
}

// OpenFile opens (creating it if needed) the store in dir and checks that it is writable.
func OpenFile(dir string, retention time.Duration) (*File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w (check journal.path)", dir, err)
	}
	f := &File{Dir: dir, Retention: retention}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("journal: %s is not writable: %w (check journal.path and its owner)", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return f, nil
}

func (f *File) path(id string) string { return filepath.Join(f.Dir, id[:2], id+".json") }

// Put writes the entry. Ids are 128 random bits, so an existing file means a bug; it is
// refused rather than overwritten.
func (f *File) Put(ctx context.Context, e *Entry) error {
	if err := checkID(e.ID); err != nil {
		return err
	}
	p := f.path(e.ID)
	if err := f.mkdir(filepath.Dir(p)); err != nil {
		return err
	}
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("journal: entry %s exists", e.ID)
	}
	return f.write(p, e)
}

func (f *File) write(p string, e *Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: encode entry %s: %w", e.ID, err)
	}
	if err := safefile.Write(p, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// mkdir creates a shard folder and makes its name durable too.
func (f *File) mkdir(dir string) error {
	err := os.Mkdir(dir, 0o750)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	d, err := os.Open(f.Dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: fsync %s: %w", f.Dir, err)
	}
	return nil
}

// Get reads an entry.
func (f *File) Get(ctx context.Context, id string) (*Entry, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("journal: entry %s is damaged: %w", id, err)
	}
	return &e, nil
}

// MarkArchived rewrites the entry with its archive time.
func (f *File) MarkArchived(ctx context.Context, id string, at time.Time) error {
	e, err := f.Get(ctx, id)
	if err != nil {
		return err
	}
	e.Archived = at
	return f.write(f.path(id), e)
}

// Delete removes the entry's file.
func (f *File) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := os.Remove(f.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Expire removes entries whose file is older than the retention, and temp files left by
// a crash. It goes by modification time, so it never has to read an entry.
func (f *File) Expire(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-f.Retention)
	removed := 0
	err := filepath.WalkDir(f.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by the other process meanwhile
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		stale := info.ModTime().Before(cutoff)
		if strings.HasSuffix(p, ".tmp") || strings.HasPrefix(d.Name(), ".probe-") {
			stale = info.ModTime().Before(now.Add(-time.Hour))
		}
		if stale && os.Remove(p) == nil {
			removed++
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("journal: expire in %s: %w", f.Dir, err)
	}
	return removed, nil
}

// Close does nothing: every call opens and closes its own file.
func (f *File) Close() error { return nil }
