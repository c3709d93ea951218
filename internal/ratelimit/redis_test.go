package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

func redisStore(t *testing.T, addr string) *Redis {
	t.Helper()
	s := NewRedis(config.Redis{Addrs: []string{addr}, Timeout: config.Duration(time.Second)})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisConformance(t *testing.T) {
	r := testbench.StartRedis(t)
	conformance(t, redisStore(t, r.Addr), "a-")
	// A second store is a second policyd instance: it shares the budget.
	t.Run("two instances share one budget", func(t *testing.T) {
		a, b := redisStore(t, r.Addr), redisStore(t, r.Addr)
		c := hourly("shared|sasl:bob", Amount{Messages: 4})
		for i, s := range []Store{a, b, a, b} {
			if o := commit(t, s, "", oneMessage, c); !o.Allowed {
				t.Fatalf("message %d refused: %+v", i+1, o)
			}
		}
		if o := commit(t, b, "", oneMessage, c); o.Allowed {
			t.Fatalf("5th message through either instance: %+v; want refused", o)
		}
	})
}

// TestRedisSlotsLeave plants slots at the edge of the window in the hash, as time would
// leave them, and checks which ones count.
func TestRedisSlotsLeave(t *testing.T) {
	r := testbench.StartRedis(t)
	store := redisStore(t, r.Addr)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer client.Close()
	ctx := context.Background()
	tm, err := client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	c := hourly("edge|sasl:bob", Amount{Messages: 10})
	cur := tm.UnixMilli() / c.Window.slot().Milliseconds()
	key := keyPrefix + "w:edge|sasl:bob|3600000"
	client.HSet(ctx, key,
		"m"+strconv.FormatInt(cur-Slots, 10), 4, // the oldest slot still inside
		"m"+strconv.FormatInt(cur-Slots-1, 10), 100, // gone
		"r"+strconv.FormatInt(cur-Slots-5, 10), 100, // gone
		"junk", 1) // not ours: dropped
	o := check(t, store, Amount{Messages: 7}, c)
	if o.Allowed || o.Used.Messages != 4 {
		t.Fatalf("4 used + 7 of 10: %+v; want refused with 4 used", o)
	}
	if o := check(t, store, Amount{Messages: 6}, c); !o.Allowed {
		t.Fatalf("4 used + 6 of 10: %+v", o)
	}
	fields, _ := client.HKeys(ctx, key).Result()
	if len(fields) != 1 {
		t.Errorf("stale fields kept: %v", fields)
	}
}

func TestRedisDown(t *testing.T) {
	r := testbench.StartRedis(t)
	store := redisStore(t, r.Addr)
	r.Stop()
	began := time.Now()
	_, err := store.Take(context.Background(), Request{Counters: []Counter{hourly("down|sasl:bob", Amount{Messages: 1})}, Cost: oneMessage, Commit: true})
	if err == nil {
		t.Fatal("Take with Redis stopped succeeded")
	}
	t.Logf("as expected (after %s): %v", time.Since(began).Round(time.Millisecond), err)
	var re redis.Error
	if errors.As(err, &re) {
		t.Errorf("a stopped Redis should be a network error, not a Redis reply: %v", err)
	}
}
