package welcome

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// runLock keeps two runs from overlapping: an exclusive flock(2) on state_dir/welcome.lock,
// held from before the ledger is read until after it is last written. The kernel drops
// it when the process dies, so a crashed run never blocks the next.
type runLock struct{ f *os.File }

// lockRun takes the lock, waiting up to wait for a run that holds it.
func lockRun(ctx context.Context, path string, wait time.Duration) (*runLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, classify(ErrConfig, "welcome: state directory: %w (check welcome.state_dir)", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, classify(ErrConfig, "welcome: open the lock: %w (check welcome.state_dir)", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &runLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, classify(ErrTemporary, "welcome: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, classify(ErrTemporary, "welcome: another postern welcome still holds %s after %s; try again later", path, wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *runLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}
