package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory keeps the counters in this process: for a single policyd instance, or when no
// Redis is configured. A restart forgets them.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	counters  map[string]*slots
	once      map[string]time.Time // Once key -> when it is forgotten
	lastSweep time.Time
}

// slots is one counter's ring of Slots+1 slots.
type slots struct {
	index  [Slots + 1]int64 // the slot number each entry holds
	amount [Slots + 1]Amount
	last   time.Time // when it was last counted into
	length time.Duration
}

// NewMemory returns an empty in-memory store reading the time from now (nil: time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, counters: map[string]*slots{}, once: map[string]time.Time{}}
}

// Name is "memory".
func (m *Memory) Name() string { return "memory" }

// Close does nothing.
func (m *Memory) Close() error { return nil }

// Take checks and counts a request under one lock, so it is atomic.
func (m *Memory) Take(_ context.Context, r Request) (Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	if r.Commit && r.Once != "" {
		if until, ok := m.once[r.Once]; ok && now.Before(until) {
			return Outcome{Allowed: true, Duplicate: true, Exceeded: -1}, nil
		}
	}
	current := make([]int64, len(r.Counters))
	for i, c := range r.Counters {
		current[i] = slotOf(now, c.Window)
		used := m.used(c, current[i])
		if dim := fits(used, r.Cost, c.Window.Max); dim != "" {
			return Outcome{Exceeded: i, Dimension: dim, Used: used}, nil
		}
	}
	if r.Commit {
		for i, c := range r.Counters {
			m.add(c, current[i], r.Cost, now)
		}
		if r.Once != "" {
			m.once[r.Once] = now.Add(OnceTTL)
		}
	}
	return Outcome{Allowed: true, Exceeded: -1}, nil
}

func slotOf(now time.Time, w Window) int64 { return now.UnixMilli() / w.slot().Milliseconds() }

func memKey(c Counter) string { return c.Key + "|" + c.Window.Length.String() }

// used sums the slots still inside the window that ends in slot cur.
func (m *Memory) used(c Counter, cur int64) Amount {
	var sum Amount
	s := m.counters[memKey(c)]
	if s == nil {
		return sum
	}
	for i, idx := range s.index {
		if idx >= cur-Slots && idx <= cur {
			sum = sum.add(s.amount[i])
		}
	}
	return sum
}

func (m *Memory) add(c Counter, cur int64, cost Amount, now time.Time) {
	k := memKey(c)
	s := m.counters[k]
	if s == nil {
		s = &slots{length: c.Window.Length}
		for i := range s.index {
			s.index[i] = -1
		}
		m.counters[k] = s
	}
	i := cur % (Slots + 1)
	if s.index[i] != cur {
		s.index[i], s.amount[i] = cur, Amount{}
	}
	s.amount[i] = s.amount[i].add(cost)
	s.last = now
}

// sweep forgets, once a minute, counters no longer inside any window and expired Once
// keys, so memory follows the active identities only.
func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for k, s := range m.counters {
		if now.Sub(s.last) > s.length+s.length/Slots+time.Second {
			delete(m.counters, k)
		}
	}
	for k, until := range m.once {
		if !now.Before(until) {
			delete(m.once, k)
		}
	}
}
