package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern-mail/postern/internal/config"
)

// Redis is the journal store in the shared Redis: one key per entry (prefix + id) holding
// the entry as JSON, with Redis's own expiry as the retention.
type Redis struct {
	client    redis.UniversalClient
	prefix    string
	retention time.Duration
	timeout   time.Duration
}

// NewRedis connects lazily to the configured Redis (standalone, Sentinel or Cluster).
func NewRedis(c config.Redis, prefix string, retention, timeout time.Duration) *Redis {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:         c.Addrs,
		MasterName:    c.MasterName,
		Password:      c.Password.Reveal(),
		DialTimeout:   timeout,
		ReadTimeout:   timeout,
		WriteTimeout:  timeout,
		MaxRetries:    1,
		DialerRetries: 1,
	})
	return &Redis{client: client, prefix: prefix, retention: retention, timeout: timeout}
}

func (r *Redis) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if r.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, r.timeout)
}

// Put stores the entry with SET NX EX, so an existing id is never overwritten.
func (r *Redis) Put(ctx context.Context, e *Entry) error {
	if err := checkID(e.ID); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: encode entry %s: %w", e.ID, err)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	ok, err := r.client.SetNX(ctx, r.prefix+e.ID, data, r.retention).Result()
	if err != nil {
		return fmt.Errorf("journal: redis: store entry: %w", err)
	}
	if !ok {
		return fmt.Errorf("journal: entry %s exists", e.ID)
	}
	return nil
}

// Get reads an entry.
func (r *Redis) Get(ctx context.Context, id string) (*Entry, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	data, err := r.client.Get(ctx, r.prefix+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: redis: read entry: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("journal: entry %s is damaged: %w", id, err)
	}
	return &e, nil
}

// MarkArchived rewrites the entry with its archive time, keeping its expiry.
func (r *Redis) MarkArchived(ctx context.Context, id string, at time.Time) error {
	e, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	e.Archived = at
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: encode entry %s: %w", id, err)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	err = r.client.SetArgs(ctx, r.prefix+id, data, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("journal: redis: update entry: %w", err)
	}
	return nil
}

// Delete removes the entry.
func (r *Redis) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.client.Del(ctx, r.prefix+id).Err(); err != nil {
		return fmt.Errorf("journal: redis: delete entry: %w", err)
	}
	return nil
}

// Expire does nothing: every key carries its own expiry.
func (r *Redis) Expire(ctx context.Context, now time.Time) (int, error) { return 0, nil }

// Close closes the connection pool.
func (r *Redis) Close() error { return r.client.Close() }
