package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time for the memory store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)} }

func hourly(key string, max Amount) Counter {
	return Counter{Key: key, Window: Window{Length: time.Hour, Max: max}}
}

func commit(t *testing.T, s Store, once string, cost Amount, cs ...Counter) Outcome {
	t.Helper()
	o, err := s.Take(context.Background(), Request{Counters: cs, Cost: cost, Commit: true, Once: once})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func check(t *testing.T, s Store, cost Amount, cs ...Counter) Outcome {
	t.Helper()
	o, err := s.Take(context.Background(), Request{Counters: cs, Cost: cost})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var oneMessage = Amount{Messages: 1, Recipients: 1, Bytes: 100}

// conformance is what every store must do; it needs no clock.
func conformance(t *testing.T, s Store, prefix string) {
	t.Run("exactly N per window", func(t *testing.T) {
		c := hourly(prefix+"n|sasl:bob", Amount{Messages: 3})
		for i := range 3 {
			if o := commit(t, s, "", oneMessage, c); !o.Allowed {
				t.Fatalf("message %d refused: %+v", i+1, o)
			}
		}
		o := commit(t, s, "", oneMessage, c)
		if o.Allowed || o.Exceeded != 0 || o.Dimension != Messages || o.Used.Messages != 3 {
			t.Fatalf("4th message: %+v; want refused on messages with 3 used", o)
		}
		if o := check(t, s, oneMessage, c); o.Allowed {
			t.Fatalf("a check after the budget is spent: %+v", o)
		}
	})
	t.Run("a check counts nothing", func(t *testing.T) {
		c := hourly(prefix+"check|sasl:bob", Amount{Messages: 1})
		for range 5 {
			if o := check(t, s, oneMessage, c); !o.Allowed {
				t.Fatalf("check refused: %+v", o)
			}
		}
		if o := commit(t, s, "", oneMessage, c); !o.Allowed {
			t.Fatalf("commit after checks refused: %+v", o)
		}
	})
	t.Run("a retried commit counts once", func(t *testing.T) {
		c := hourly(prefix+"once|sasl:bob", Amount{Messages: 2})
		for range 3 {
			if o := commit(t, s, prefix+"instance-1", oneMessage, c); !o.Allowed {
				t.Fatalf("retry refused: %+v", o)
			}
		}
		if o := commit(t, s, prefix+"instance-2", oneMessage, c); !o.Allowed || o.Duplicate {
			t.Fatalf("second message: %+v; want allowed, not a duplicate", o)
		}
		if o := commit(t, s, prefix+"instance-3", oneMessage, c); o.Allowed {
			t.Fatalf("third message: %+v; want refused", o)
		}
	})
	t.Run("recipients and bytes", func(t *testing.T) {
		c := hourly(prefix+"dims|sasl:bob", Amount{Recipients: 10, Bytes: 1000})
		if o := commit(t, s, "", Amount{1, 8, 100}, c); !o.Allowed {
			t.Fatal(o)
		}
		if o := commit(t, s, "", Amount{1, 3, 100}, c); o.Allowed || o.Dimension != Recipients || o.Used.Recipients != 8 {
			t.Fatalf("8+3 recipients of 10: %+v", o)
		}
		if o := commit(t, s, "", Amount{1, 2, 901}, c); o.Allowed || o.Dimension != Bytes {
			t.Fatalf("100+901 bytes of 1000: %+v", o)
		}
		if o := commit(t, s, "", Amount{1, 2, 900}, c); !o.Allowed {
			t.Fatalf("exactly at the limits: %+v", o)
		}
	})
	t.Run("all counters or none", func(t *testing.T) {
		wide := hourly(prefix+"all|sasl:bob", Amount{Messages: 100})
		narrow := Counter{Key: prefix + "all|client:192.0.2.1", Window: Window{Length: 24 * time.Hour, Max: Amount{Messages: 1}}}
		if o := commit(t, s, "", oneMessage, wide, narrow); !o.Allowed {
			t.Fatal(o)
		}
		o := commit(t, s, "", oneMessage, wide, narrow)
		if o.Allowed || o.Exceeded != 1 {
			t.Fatalf("second message: %+v; want refused by counter 1", o)
		}
		if o := check(t, s, oneMessage, hourly(prefix+"all|sasl:bob", Amount{Messages: 2})); !o.Allowed {
			t.Fatalf("the refused message was counted in the wide counter too: %+v", o)
		}
	})
	t.Run("concurrent commits never exceed the limit", func(t *testing.T) {
		c := hourly(prefix+"race|sasl:bob", Amount{Messages: 25})
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					o, err := s.Take(context.Background(), Request{Counters: []Counter{c}, Cost: oneMessage, Commit: true})
					if err != nil {
						t.Error(err)
						return
					}
					if o.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 25 {
			t.Fatalf("80 concurrent commits against a limit of 25: %d allowed", n)
		}
	})
}

func TestMemoryConformance(t *testing.T) {
	conformance(t, NewMemory(newClock().now), "")
}

func TestMemorySlidingWindow(t *testing.T) {
	clk := newClock()
	s := NewMemory(clk.now)
	c := hourly("slide|sasl:bob", Amount{Messages: 2})
	commit(t, s, "", oneMessage, c) // 10:00
	clk.advance(30 * time.Minute)
	commit(t, s, "", oneMessage, c) // 10:30
	if o := check(t, s, oneMessage, c); o.Allowed {
		t.Fatal("10:30: both messages still inside the hour")
	}
	clk.advance(30 * time.Minute) // 11:00: the 10:00 message is one slot (1 min) from leaving
	if o := check(t, s, oneMessage, c); o.Allowed {
		t.Fatal("11:00: a window is never shorter than its length")
	}
	clk.advance(time.Minute + time.Second) // 11:01:01: the 10:00 slot has left
	if o := check(t, s, oneMessage, c); !o.Allowed {
		t.Fatalf("11:01: the 10:00 message should have left the window: %+v", o)
	}
	commit(t, s, "", oneMessage, c)
	if o := check(t, s, oneMessage, c); o.Allowed {
		t.Fatal("11:01: 10:30 and 11:01 fill the budget")
	}
}

func TestMemoryForgets(t *testing.T) {
	clk := newClock()
	s := NewMemory(clk.now)
	commit(t, s, "i1", oneMessage, hourly("gone|sasl:bob", Amount{Messages: 5}))
	clk.advance(2 * time.Hour)
	check(t, s, oneMessage) // any call sweeps
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.counters) != 0 || len(s.once) != 0 {
		t.Fatalf("after two hours: %d counters, %d once keys kept", len(s.counters), len(s.once))
	}
}
