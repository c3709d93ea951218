package systemtest

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fault is one thing that breaks during the run, for a while, and its repair.
type fault struct {
	name   string
	inject func(t testing.TB, st *stack)
	repair func(t testing.TB, st *stack)
}

// faults are injected one after the other while mail flows; a daemon's telemetry goes
// into stats before it is killed.
func faults(stats *daemonStats) []fault {
	var hole *blackhole
	var good []byte
	kill := func(name string) fault {
		return fault{name: "SIGKILL postern " + name,
			inject: func(t testing.TB, st *stack) {
				if err := stats.sample(st.daemons[name]); err != nil {
					t.Errorf("telemetry of %s: %v", name, err)
				}
				st.kill(t, name)
			},
			repair: func(t testing.TB, st *stack) { st.restart(t, name) }}
	}
	return []fault{
		{name: "Samba stopped",
			inject: func(t testing.TB, st *stack) { st.samba.Stop() },
			repair: func(t testing.TB, st *stack) { st.samba.Start(t) }},
		{name: "Samba blackholed (accepts TCP, never answers)",
			inject: func(t testing.TB, st *stack) {
				st.samba.Stop()
				hole = openBlackhole(t, "127.0.0.1:389")
			},
			repair: func(t testing.TB, st *stack) {
				hole.close()
				st.samba.Start(t)
			}},
		{name: "Redis stopped",
			inject: func(t testing.TB, st *stack) { st.redis.Stop() },
			repair: func(t testing.TB, st *stack) { st.redis.Start(t) }},
		{name: "Cyrus stopped",
			inject: func(t testing.TB, st *stack) { st.cyrus.Stop() },
			repair: func(t testing.TB, st *stack) { st.cyrus.Start(t) }},
		kill("tcptable"), kill("policyd"), kill("milter"), kill("lmtp-shadow"),
		{name: "every daemon reloaded with a broken configuration",
			inject: func(t testing.TB, st *stack) {
				var err error
				if good, err = os.ReadFile(st.config); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(st.config, append(append([]byte{}, good...), "policyd: {listen: [\n"...), 0o600); err != nil {
					t.Fatal(err)
				}
				st.hupAll(t)
			},
			repair: func(t testing.TB, st *stack) {
				for _, d := range st.daemons {
					if d.proc.Exited() {
						t.Errorf("postern %s exited after a reload with a broken configuration; it must keep the old one", d.name)
						st.restart(t, d.name)
					}
				}
				if err := os.WriteFile(st.config, good, 0o600); err != nil {
					t.Fatal(err)
				}
				st.hupAll(t)
			}},
	}
}

func (st *stack) hupAll(t testing.TB) {
	for _, d := range st.daemons {
		if err := d.proc.Signal(syscall.SIGHUP); err != nil {
			t.Errorf("SIGHUP %s: %v", d.name, err)
		}
	}
}

// blackhole accepts TCP connections and never answers, like a directory server whose
// disk hangs.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func openBlackhole(t testing.TB, addr string) *blackhole {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("blackhole on %s: %v", addr, err)
	}
	h := &blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *blackhole) close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}

// schedule runs the faults while the workload goes on, one phase each: the fault is
// injected, its share of the messages is submitted, and after hold it is repaired.
type schedule struct {
	faults   []fault
	hold     time.Duration
	mu       sync.Mutex
	active   string         // the fault in force, "" when none
	last     string         // the fault repaired last
	attempts map[string]int // SMTP sessions begun while each fault was in force
	log      []string
}

// attempt notes an SMTP session about to begin and returns the fault in force.
func (s *schedule) attempt() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempts == nil {
		s.attempts = map[string]int{}
	}
	label := s.active
	if label == "" && s.last != "" {
		label = "none; after " + s.last
	}
	s.attempts[label]++
	return label
}

func (s *schedule) set(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		s.last = s.active
	}
	s.active = name
}

// run submits msgs in len(faults)+1 phases through submit (which returns once its
// messages are handed to the senders): the first without a fault, each other one with
// its fault in force for at least hold.
func (s *schedule) run(t testing.TB, st *stack, total int, submit func(upto int)) {
	share := total / (len(s.faults) + 1)
	submit(share)
	for i, f := range s.faults {
		upto := share * (i + 2)
		if i == len(s.faults)-1 {
			upto = total
		}
		began := time.Now()
		f.inject(t, st)
		s.set(f.name)
		submitted := make(chan struct{})
		go func() { submit(upto); close(submitted) }()
		time.Sleep(s.hold)
		f.repair(t, st)
		s.set("")
		<-submitted
		s.mu.Lock()
		s.log = append(s.log, fmt.Sprintf("%s: %s, %d SMTP sessions begun meanwhile", f.name,
			time.Since(began).Round(time.Second), s.attempts[f.name]))
		s.mu.Unlock()
	}
}
