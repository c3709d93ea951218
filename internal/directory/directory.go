package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/safefile"
)

// Source delivers every object of the directory in one go.
type Source interface {
	// Fetch reads the whole directory; it must respect ctx's deadline.
	Fetch(ctx context.Context) ([]*Object, error)
	// Name identifies the source in logs and in the persisted snapshot.
	Name() string
}

// Options configure a Directory.
type Options struct {
	Source    Source
	Refresh   time.Duration // time between syncs
	MaxStale  time.Duration // how long a snapshot may serve after its sync
	StateFile string        // where the snapshot is persisted; "" keeps it in memory only
	// ReadOnlyState loads StateFile but never writes it (one-shot tools run as root).
	ReadOnlyState bool
	Logger        *zap.Logger
	Registry      prometheus.Registerer // nil: no metrics
	Now           func() time.Time      // nil: time.Now
}

// Directory holds the current snapshot and keeps it in sync with its Source.
type Directory struct {
	mu      sync.Mutex // guards opts and lastErr
	opts    Options
	lastErr error

	current atomic.Pointer[Snapshot]
	synced  chan struct{} // closed and replaced after every sync attempt
	metrics *metrics
}

// New returns a directory with no snapshot yet: until the first successful sync (or a
// persisted snapshot is loaded), every lookup is a temporary failure.
func New(o Options) *Directory {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Directory{opts: o, synced: make(chan struct{})}
	d.metrics = newMetrics(o.Registry, d)
	return d
}

// Reconfigure swaps the source and timings, e.g. after a configuration reload; the next
// sync uses them.
func (d *Directory) Reconfigure(src Source, refresh, maxStale time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opts.Source, d.opts.Refresh, d.opts.MaxStale = src, refresh, maxStale
}

func (d *Directory) options() Options {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opts
}

// Snapshot returns the current snapshot, or ErrUnavailable when there is none yet or it
// is older than max_stale.
func (d *Directory) Snapshot() (*Snapshot, error) {
	o := d.options()
	s := d.current.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: no snapshot yet, the first sync from %s has not succeeded%s", ErrUnavailable, o.Source.Name(), d.lastErrText())
	}
	if age := o.Now().Sub(s.SyncedAt); age > o.MaxStale {
		return nil, fmt.Errorf("%w: snapshot is %s old, beyond directory.max_stale (%s)%s", ErrUnavailable, age.Round(time.Second), o.MaxStale, d.lastErrText())
	}
	return s, nil
}

// Ready reports whether lookups can be answered.
func (d *Directory) Ready() bool {
	_, err := d.Snapshot()
	return err == nil
}

func (d *Directory) lastErrText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastErr == nil {
		return ""
	}
	return "; last sync: " + d.lastErr.Error()
}

// Sync reads the source once and, on success, swaps in the new snapshot and persists it.
func (d *Directory) Sync(ctx context.Context) error {
	o := d.options()
	start := o.Now()
	objs, err := o.Source.Fetch(ctx)
	d.metrics.observeSync(o.Now().Sub(start), err)
	defer d.signalSynced()
	if err != nil {
		d.mu.Lock()
		d.lastErr = err
		d.mu.Unlock()
		return err
	}
	snap := NewSnapshot(objs, start, o.Source.Name())
	d.current.Store(snap)
	d.mu.Lock()
	d.lastErr = nil
	d.mu.Unlock()
	d.metrics.observeSnapshot(snap)
	for a, dns := range snap.Ambiguous {
		o.Logger.Warn("ambiguous address in the directory; lookups of it fail temporarily until it is unique",
			zap.String("address", a), zap.Strings("claimed_by", dns))
	}
	if o.StateFile != "" && !o.ReadOnlyState {
		if err := d.persist(snap, o.StateFile); err != nil {
			o.Logger.Warn("cannot persist the directory snapshot; a restart during a directory outage will not answer", zap.Error(err))
		}
	}
	return nil
}

// Synced returns a channel closed when the next sync attempt (success or failure) ends.
func (d *Directory) Synced() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

func (d *Directory) signalSynced() {
	d.mu.Lock()
	defer d.mu.Unlock()
	close(d.synced)
	d.synced = make(chan struct{})
}

// Run syncs now and then every refresh until ctx ends. Until the first success it
// retries sooner (1 s, doubling up to refresh) so a daemon becomes ready quickly.
func (d *Directory) Run(ctx context.Context) {
	retry := time.Second
	for {
		o := d.options()
		sctx, cancel := context.WithTimeout(ctx, o.Refresh+30*time.Second)
		err := d.Sync(sctx)
		cancel()
		wait := o.Refresh
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			o.Logger.Error("directory sync failed; serving the last snapshot until it is older than max_stale",
				zap.String("source", o.Source.Name()), zap.Error(err))
			if d.current.Load() == nil && retry < wait {
				wait, retry = retry, retry*2
			}
		} else {
			retry = time.Second
			o.Logger.Debug("directory synced", zap.String("source", o.Source.Name()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

type persisted struct {
	Version  int       `json:"version"`
	Source   string    `json:"source"`
	SyncedAt time.Time `json:"synced_at"`
	Objects  []*Object `json:"objects"`
}

func (d *Directory) persist(s *Snapshot, path string) error {
	b, err := json.Marshal(persisted{Version: 1, Source: s.Source, SyncedAt: s.SyncedAt, Objects: s.Objects})
	if err != nil {
		return err
	}
	return safefile.Write(path, b, 0o600)
}

// LoadState loads the persisted snapshot, if there is one from the same source and no
// newer snapshot is in memory, so a restart during an outage keeps answering. Its age
// still counts from its original sync.
func (d *Directory) LoadState() error {
	o := d.options()
	if o.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(o.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load directory snapshot: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil || p.Version != 1 {
		return fmt.Errorf("load directory snapshot %s: unreadable (it will be rewritten at the next sync): %v", o.StateFile, err)
	}
	if p.Source != o.Source.Name() {
		return fmt.Errorf("load directory snapshot %s: it comes from %q, not %q; ignored", o.StateFile, p.Source, o.Source.Name())
	}
	snap := NewSnapshot(p.Objects, p.SyncedAt, p.Source)
	if d.current.CompareAndSwap(nil, snap) {
		d.metrics.observeSnapshot(snap)
	}
	return nil
}
