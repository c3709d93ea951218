package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/postern-mail/postern/internal/config"
)

// take.lua checks and counts one request in one atomic script, reading the time from
// Redis (TIME), so every instance sharing the Redis agrees on the windows whatever its
// own clock says.
//
//go:embed take.lua
var takeLua string

var takeScript = redis.NewScript(takeLua)

// keyPrefix holds the hash tag {rl}: every key lives in one Cluster slot, so one script
// can touch all the counters of a request. Mail rates are far below what one Redis node
// serves, so nothing is lost by not spreading them.
const keyPrefix = "postern:{rl}:"

// quietRedis silences go-redis's own logger, which is process-wide and writes a line to
// stderr on every failed dial: policyd reports an outage itself, throttled
// (postern_policyd_rate_limit_store_errors_total and one log line every 10 s).
var quietRedis sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// Redis keeps the counters in Redis, shared by every instance that uses it.
type Redis struct {
	client  redis.UniversalClient
	timeout time.Duration
}

// NewRedis connects lazily to the configured Redis: standalone, Sentinel or Cluster.
// Every call is bounded by c.Timeout.
func NewRedis(c config.Redis) *Redis {
	quietRedis.Do(func() { redis.SetLogger(discardLogger{}) })
	t := c.Timeout.D()
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 c.Addrs,
		MasterName:            c.MasterName,
		Username:              c.Username,
		Password:              c.Password.Reveal(),
		Protocol:              2,
		DisableIdentity:       true,
		DialTimeout:           t,
		ReadTimeout:           t,
		WriteTimeout:          t,
		PoolTimeout:           t,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		DialerRetries:         1,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return &Redis{client: client, timeout: t}
}

// NewRedisClient wraps an existing client (tests, several stores on one pool).
func NewRedisClient(client redis.UniversalClient, timeout time.Duration) *Redis {
	return &Redis{client: client, timeout: timeout}
}

// Name is "redis".
func (r *Redis) Name() string { return "redis" }

// Close closes the connection pool.
func (r *Redis) Close() error { return r.client.Close() }

// Take runs take.lua with the counters' keys and limits.
func (r *Redis) Take(ctx context.Context, req Request) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	keys := make([]string, 0, len(req.Counters)+1)
	args := make([]any, 0, 7+5*len(req.Counters))
	commit := "0"
	if req.Commit {
		commit = "1"
	}
	args = append(args, commit, OnceTTL.Milliseconds(), req.Cost.Messages, req.Cost.Recipients, req.Cost.Bytes, Slots, len(req.Counters))
	for _, c := range req.Counters {
		keys = append(keys, keyPrefix+"w:"+c.Key+"|"+strconv.FormatInt(c.Window.Length.Milliseconds(), 10))
		m := c.Window.Max
		args = append(args, c.Window.slot().Milliseconds(), c.Window.Length.Milliseconds(), m.Messages, m.Recipients, m.Bytes)
	}
	if req.Commit && req.Once != "" {
		keys = append(keys, keyPrefix+"once:"+req.Once)
	}
	res, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return Outcome{}, fmt.Errorf("redis: rate limit script: %w", err)
	}
	if len(res) != 7 {
		return Outcome{}, fmt.Errorf("redis: rate limit script returned %d values, want 7", len(res))
	}
	o := Outcome{Allowed: res[0] == 1, Duplicate: res[1] == 1, Exceeded: int(res[2]),
		Used: Amount{res[4], res[5], res[6]}}
	if !o.Allowed {
		o.Dimension = [...]string{"", Messages, Recipients, Bytes}[min(max(res[3], 0), 3)]
	}
	return o, nil
}
