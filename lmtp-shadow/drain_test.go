package lmtpshadow

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestShutdownDrainsTheTransactionInFlight: a copy in flight when lmtp-shadow is told to
// stop (SIGTERM: systemctl stop, a package upgrade) is still archived and answered 250,
// and Shutdown returns only then, while lmtp-shadow's own listener refuses new
// connections at once (a systemd socket would hold them for the next start).
func TestShutdownDrainsTheTransactionInFlight(t *testing.T) {
	store := startFakeStore(t, true, nil)
	d := runShadowDaemon(t, "{kind: dovecot, lmtp: inet:"+store.addr+"}")

	type result struct {
		replies []testbench.Reply
		err     error
	}
	delivered := make(chan result, 1)
	go func() {
		r, err := testbench.DeliverLMTP(d.addr, testbench.Mail{From: "alice@corp.example.test", To: []string{"shadow@corp.example.test"}, Data: message("")})
		delivered <- result{r, err}
	}()
	select {
	case <-store.entered: // the copy is in the store's hands, lmtp-shadow waits for its answer
	case r := <-delivered:
		t.Fatalf("the transaction ended before the store answered: %v %v", r.replies, r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the copy never reached the store")
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- d.daemon.Shutdown(ctx)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("lmtp-shadow still accepts connections 10 s after Shutdown (last: %v)", err)
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a transaction in flight", err)
	case r := <-delivered:
		t.Fatalf("the transaction in flight ended during the drain: %v %v", r.replies, r.err)
	default:
	}

	close(store.release)
	select {
	case r := <-delivered:
		if r.err != nil || len(r.replies) != 1 || r.replies[0].Code != 250 {
			t.Fatalf("the transaction in flight at Shutdown: %v %v, want 250", r.replies, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no reply to the transaction in flight")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown after the drain: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return after the last transaction ended")
	}
	if got := <-store.got; !strings.Contains(got, "X-Postern-Archive: v=1; journal=missing") || !strings.HasSuffix(got, string(message(""))) {
		t.Errorf("the store got:\n%s", got)
	}
}

// TestStoreRepliesAtDataArePerRecipient: the store accepts every recipient and then
// answers each at the end of the data on its own (RFC 2033 4.2); lmtp-shadow passes on
// one reply per recipient, in order: 250 for a stored copy, the store's 4xx as it is, and
// a 4xx for the store's 5xx, so the copy waits in Postfix's queue instead of bouncing.
func TestStoreRepliesAtDataArePerRecipient(t *testing.T) {
	store := startFakeStore(t, false, func(rcpt string) error {
		switch {
		case strings.HasPrefix(rcpt, "quota+"):
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Over quota"}
		case strings.HasPrefix(rcpt, "gone+"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unknown"}
		}
		return nil
	})
	d := runShadowDaemon(t, "{kind: dovecot, lmtp: inet:"+store.addr+"}")
	to := []string{"shadow@corp.example.test", "quota@corp.example.test", "gone@other.example.test", "shadow@other.example.test"}
	replies, err := testbench.DeliverLMTP(d.addr, testbench.Mail{From: "alice@corp.example.test", To: to, Data: message("")})
	if err != nil || len(replies) != len(to) {
		t.Fatalf("LMTP: %v %v", replies, err)
	}
	for i, want := range []struct {
		code int
		text string
	}{{250, ""}, {452, "4.2.2"}, {451, "archive store refused"}, {250, ""}} {
		if r := replies[i]; r.Code != want.code || !strings.Contains(r.Text, want.text) {
			t.Errorf("reply %d (%s): %s, want %d %s", i+1, to[i], r, want.code, want.text)
		}
	}
	for result, want := range map[string]float64{"archived": 2, "deferred": 1, "rejected": 1} {
		if n := copiesTotal(t, d.metrics, "unknown", result); n != want {
			t.Errorf(`postern_shadow_copies_total{direction="unknown",result=%q} = %v, want %v`, result, n, want)
		}
	}
}

// fakeStore is an LMTP store that answers each recipient at the end of the data with
// answer (nil: 250), and with hold only once released.
type fakeStore struct {
	addr    string
	answer  func(rcpt string) error
	entered chan struct{} // a copy has arrived
	release chan struct{} // closed: answer
	got     chan string   // the copies, as received
}

func startFakeStore(t testing.TB, hold bool, answer func(rcpt string) error) *fakeStore {
	t.Helper()
	hs := &fakeStore{answer: answer, entered: make(chan struct{}, 10), release: make(chan struct{}), got: make(chan string, 10)}
	if !hold {
		close(hs.release)
	}
	srv := smtp.NewServer(hs)
	srv.LMTP = true
	srv.Domain = "fake-store.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return hs
}

func (hs *fakeStore) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &fakeSession{store: hs}, nil
}

type fakeSession struct {
	store *fakeStore
	rcpts []string
}

func (s *fakeSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *fakeSession) Data(io.Reader) error { return errors.New("LMTP only") }
func (s *fakeSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	select {
	case s.store.entered <- struct{}{}:
	default:
	}
	<-s.store.release
	for _, rcpt := range s.rcpts {
		var err error
		if s.store.answer != nil {
			err = s.store.answer(rcpt)
		}
		status.SetStatus(rcpt, err)
	}
	select {
	case s.store.got <- string(b):
	default:
	}
	return nil
}
func (s *fakeSession) Reset()        { s.rcpts = nil }
func (s *fakeSession) Logout() error { return nil }
