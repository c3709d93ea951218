package lmtpshadow

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestWholePathArchivesTheRealEnvelope runs the archive path as an operator wires it:
// real Postfix configured from the shipped examples, postern tcptable + milter +
// lmtp-shadow in one `postern run`, the seeded Samba AD, the users' mailboxes in Cyrus and
// the archive in a store of its own, as many sites keep it: a second Cyrus in one
// subtest, Dovecot in the other. Both share one Samba, users' Cyrus, Postfix and postern;
// each subtest points lmtp-shadow at its store with a reload (SIGHUP), as an operator
// would move the archive.
//
// In each: a message to a To, a Cc, a Bcc and a list reaches every mailbox and exactly
// one archive copy, which alone names the Bcc recipient and the list's members; inbound
// (through a relay standing in for PMG) and internal mail is archived in its own folder.
// Then the archive store is stopped: recipients still get their mail, Postfix keeps the
// shadow copies deferred (4xx, nothing bounced), and once the store is back every copy
// arrives exactly once — two transactions of one message (one Message-ID) as two copies.
//
// (A recipient addressed both directly and through a list gets two copies from Postfix
// when enable_original_recipient is on, its default; Cyrus's duplicate suppression, on
// for the users' mailboxes, folds them. The recipients here do not overlap, so every
// count below is Postfix's own. The users' Cyrus outlives the first subtest, so each
// subtest's Message-IDs carry its name, lest that suppression fold the second's.)
func TestWholePathArchivesTheRealEnvelope(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	users := testbench.StartCyrus(t)
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		users.CreateMailbox(t, "user/"+u+"@corp.example.test")
	}

	archive := testbench.StartCyrus(t) // a Cyrus for the archive alone
	archive.CreateMailbox(t, "user/shadow@corp.example.test")
	dovecot := testbench.StartDovecot(t)
	stores := []archiveStore{{
		name: "cyrus",
		yaml: cyrusStore(t, archive),
		messages: func(t testing.TB, folder string) []testbench.Message {
			if folder != "" {
				folder = "/" + folder
			}
			return archive.Messages(t, "shadow@corp.example.test", "INBOX"+folder)
		},
		stop: archive.Stop, start: archive.Start,
	}, {
		name: "dovecot",
		yaml: "{kind: dovecot, lmtp: inet:" + dovecot.LMTPAddr + "}",
		messages: func(t testing.TB, folder string) []testbench.Message {
			if folder == "" {
				folder = "INBOX"
			}
			return dovecot.Messages(t, "shadow@corp.example.test", folder)
		},
		stop: dovecot.Stop, start: dovecot.Start,
	}}

	site := startSite(t, s, users, stores[0].yaml)
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			site.archiveInto(t, st.yaml)
			site.checkArchive(t, st)
		})
	}
}

// archiveStore is one archive server as the whole-path test uses it.
type archiveStore struct {
	name string
	yaml string // lmtp_shadow.store
	// messages reads a folder of shadow@corp.example.test, "Outbound/2026/11" as the folder
	// template names it; "" is the INBOX.
	messages func(t testing.TB, folder string) []testbench.Message
	stop     func()
	start    func(testing.TB)
}

// site is everything but the archive store: Samba, the users' Cyrus, `postern run` and
// Postfix from the shipped fragments.
type site struct {
	users   *testbench.Cyrus
	mx      *testbench.Postfix
	postern *testbench.Process
	config  func(t testing.TB, store string) // writes postern.yaml with this lmtp_shadow.store
}

func startSite(t *testing.T, s *testbench.Samba, users *testbench.Cyrus, store string) *site {
	t.Helper()
	dir := testbench.Dir(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t)) }
	telemetry, tables, milter, shadow := port(), port(), port(), port()
	cfg := filepath.Join(dir, "postern.yaml")
	w := &site{users: users}
	w.config = func(t testing.TB, store string) {
		t.Helper()
		yaml := testbench.CorpConfig(s, dir, fmt.Sprintf(`internal_networks: [127.0.0.0/8]
trusted_relays: [192.0.2.10/32]
telemetry: {listen: %[1]s}
journal: {store: file, path: %[2]s/journal}
tcptable: {socketmap: inet:%[3]s}
milter: {listen: inet:%[4]s, journal: {enabled: true}}
lmtp_shadow:
  listen: inet:%[5]s
  store: %[6]s
`, telemetry, dir, tables, milter, shadow, store))
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.config(t, store)
	w.postern = testbench.StartPostern(t, cfg, "run")
	for _, a := range []string{tables, milter, shadow} {
		if err := testbench.WaitTCP(a, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Postfix from the shipped fragments, socket paths pointed at this test's ports.
	settings := map[string]string{}
	for _, f := range []string{"tcptable-main.cf", "milter-main.cf", "lmtp-shadow.cf"} {
		maps.Copy(settings, testbench.PostfixExample(t, f))
	}
	transport := filepath.Join(dir, "shadow_transport.regexp")
	ex, err := os.ReadFile("../examples/postfix/shadow_transport.regexp")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(transport, []byte(strings.ReplaceAll(string(ex), "lmtp:unix:postern/shadow.sock", "lmtp:inet:"+shadow)), 0o644)
	r := strings.NewReplacer("socketmap:unix:postern/tables.sock:", "socketmap:inet:"+tables+":",
		"unix:postern/milter.sock", "inet:"+milter, "regexp:/etc/postfix/shadow_transport.regexp", "regexp:"+transport,
		"lmtp:inet:127.0.0.1:24", "lmtp:inet:"+users.LMTPAddr)
	for k, v := range settings {
		settings[k] = r.Replace(v)
	}
	w.mx = testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: settings})
	return w
}

// archiveInto points lmtp-shadow at another store: it rewrites postern.yaml and reloads
// `postern run` with SIGHUP, and returns once postern has logged the reload.
func (w *site) archiveInto(t *testing.T, store string) {
	t.Helper()
	mark := len(readFile(w.postern.LogPath))
	w.config(t, store)
	if err := w.postern.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log := readFile(w.postern.LogPath)[mark:]
		if strings.Contains(log, "reload failed") || strings.Contains(log, "reload incomplete") {
			t.Fatalf("postern did not take the new store:\n%s", log)
		}
		if strings.Contains(log, "configuration reloaded") {
			return
		}
		if w.postern.Exited() || time.Now().After(deadline) {
			t.Fatalf("postern did not log the reload within 30 s (exited: %v):\n%s", w.postern.Exited(), log)
		}
	}
}

func (w *site) send(t *testing.T, m testbench.Mail) {
	t.Helper()
	if code, text, err := testbench.SendMail(w.mx.SMTPAddr, m); err != nil || code != 250 {
		t.Fatalf("send %q: %d %s %v", m.To, code, text, err)
	}
}

// deliver sends m and waits until Postfix has delivered every copy of it.
func (w *site) deliver(t *testing.T, m testbench.Mail) {
	t.Helper()
	w.send(t, m)
	w.mx.WaitQueueEmpty(t, 2*time.Minute)
}

// inbox counts the messages with Message-ID id in a user's INBOX in the users' Cyrus.
func (w *site) inbox(t *testing.T, user, id string) int {
	t.Helper()
	n := 0
	for _, m := range w.users.Messages(t, user+"@corp.example.test", "INBOX") {
		if m.MessageID == id {
			n++
		}
	}
	return n
}

// checkArchive sends the messages, checks every mailbox and the archive in st, then
// takes st down for a while and checks that nothing is lost or doubled.
func (w *site) checkArchive(t *testing.T, st archiveStore) {
	// Message-IDs of this subtest: <local.cyrus@domain>.
	id := func(local, domain string) string { return "<" + local + "." + st.name + "@" + domain + ">" }
	boardPack, lunch, news := id("board-pack", "corp.example.test"), id("lunch", "corp.example.test"), id("news", "partner.example")
	// Each message is delivered before the next is sent, so the month's folders are made
	// one at a time. (Dovecot 2.3 races on concurrent first deliveries with its mailbox
	// list index on; the shipped configuration turns it off, and
	// TestDovecotConcurrentFirstDeliveries is about that. The empty-INBOX check at the end
	// would see a misfiled copy.)
	outbound := []byte("From: Alice <alice@corp.example.test>\r\nTo: bob@corp.example.test, interns@corp.example.test\r\nCc: x@partner.example\r\nSubject: board pack\r\nMessage-ID: " + boardPack + "\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nThe board pack.\r\n")
	w.deliver(t, testbench.Mail{From: "alice@corp.example.test", XClientLogin: "alice", Data: outbound,
		To: []string{"bob@corp.example.test", "interns@corp.example.test", "x@partner.example", "erin@corp.example.test"}})
	w.deliver(t, testbench.Mail{From: "bob@corp.example.test", XClientLogin: "bob", To: []string{"carol@corp.example.test"},
		Data: []byte("From: bob@corp.example.test\r\nTo: carol@corp.example.test\r\nSubject: lunch\r\nMessage-ID: " + lunch + "\r\n\r\nLunch?\r\n")})
	w.deliver(t, testbench.Mail{From: "news@partner.example", XClientAddr: "192.0.2.10", To: []string{"erin@corp.example.test"},
		Data: []byte("From: news@partner.example\r\nTo: erin@corp.example.test\r\nSubject: newsletter\r\nMessage-ID: " + news + "\r\n\r\nNews.\r\n")})

	// Every recipient has the board pack once; none of their copies names the Bcc.
	for _, u := range []string{"bob", "carol", "erin"} { // To, through the list, Bcc
		n := 0
		for _, m := range w.users.Messages(t, u+"@corp.example.test", "INBOX") {
			if m.MessageID == boardPack {
				n++
				if strings.Contains(strings.ToLower(string(m.Raw)), "erin@corp.example.test") && u != "erin" {
					t.Errorf("%s's copy names the Bcc recipient:\n%s", u, m.Raw)
				}
				if strings.Contains(string(m.Raw), "X-Postern-Envelope") {
					t.Errorf("%s's copy carries archive headers", u)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s has the board pack %d times, want once", u, n)
		}
	}
	for _, sm := range w.mx.SinkMessages(t) {
		if sm.MessageID == boardPack && strings.Contains(strings.ToLower(string(sm.Raw)), "erin@") {
			t.Errorf("the external copy names the Bcc recipient:\n%s", sm.Raw)
		}
	}

	month := time.Now().UTC().Format("2006/01")
	archived := func(folder, id string) []string {
		var out []string
		for _, m := range st.messages(t, folder+"/"+month) {
			if m.MessageID == id {
				out = append(out, string(m.Raw))
			}
		}
		return out
	}
	copies := archived("Outbound", boardPack)
	if len(copies) != 1 {
		t.Fatalf("the outbound message is archived %d times in Outbound/%s, want once", len(copies), month)
	}
	for _, want := range []string{
		"X-Postern-Archive: v=1; journal=ok",
		"X-Postern-Envelope-From: <alice@corp.example.test>",
		"X-Postern-Envelope-To: <bob@corp.example.test>",
		"X-Postern-Envelope-To: <x@partner.example>",
		"X-Postern-Envelope-To: <interns@corp.example.test>",
		"X-Postern-Envelope-To: <erin@corp.example.test>", // the Bcc
		"X-Postern-Expanded-To: <interns@corp.example.test>: carol@corp.example.test",
		"X-Postern-Direction: outbound",
		"X-Postern-Sasl-Login: alice",
	} {
		if !strings.Contains(copies[0], want) {
			t.Errorf("the archive copy lacks %q:\n%s", want, copies[0])
		}
	}
	if n := len(archived("Internal", lunch)); n != 1 {
		t.Errorf("the internal message is archived %d times in Internal/, want once", n)
	}
	if n := len(archived("Inbound", news)); n != 1 {
		t.Errorf("the inbound message is archived %d times in Inbound/, want once", n)
	}
	if t.Failed() {
		return // the outage below builds on all of the above
	}

	// The archive store goes down; mail goes on. The minutes are sent twice, to carol and
	// then to erin: one Message-ID, two transactions, two archive copies.
	st.stop()
	mark := len(readFile(w.mx.MailLog))
	afterHours, minutes, news2 := id("after-hours", "corp.example.test"), id("minutes", "corp.example.test"), id("news-2", "partner.example")
	minutesMsg := []byte("From: bob@corp.example.test\r\nSubject: minutes\r\nMessage-ID: " + minutes + "\r\n\r\nThe minutes.\r\n")
	outage := []testbench.Mail{
		{From: "alice@corp.example.test", XClientLogin: "alice", To: []string{"bob@corp.example.test", "x@partner.example"},
			Data: []byte("From: alice@corp.example.test\r\nTo: bob@corp.example.test, x@partner.example\r\nSubject: after hours\r\nMessage-ID: " + afterHours + "\r\n\r\nLate.\r\n")},
		{From: "bob@corp.example.test", XClientLogin: "bob", To: []string{"carol@corp.example.test"}, Data: minutesMsg},
		{From: "news@partner.example", XClientAddr: "192.0.2.10", To: []string{"erin@corp.example.test"},
			Data: []byte("From: news@partner.example\r\nTo: erin@corp.example.test\r\nSubject: newsletter 2\r\nMessage-ID: " + news2 + "\r\n\r\nMore news.\r\n")},
		{From: "bob@corp.example.test", XClientLogin: "bob", To: []string{"erin@corp.example.test"}, Data: minutesMsg},
	}
	for _, m := range outage {
		w.send(t, m)
	}
	reasons := w.waitShadowDeferred(t, len(outage), mark)
	if log := readFile(w.mx.MailLog)[mark:]; shadowStatus(log, "deferred") < len(outage) || shadowStatus(log, "sent") != 0 || strings.Contains(log, "status=bounced") {
		t.Errorf("the mail log does not show every shadow copy deferred, none sent, nothing bounced:\n%s", log)
	}
	t.Logf("%d shadow copies deferred while the %s archive is down: %s", len(outage), st.name, reasons[0])
	for _, got := range []struct{ user, id string }{{"bob", afterHours}, {"carol", minutes}, {"erin", news2}, {"erin", minutes}} {
		if n := w.inbox(t, got.user, got.id); n != 1 {
			t.Errorf("during the outage %s has %s %d times, want once", got.user, got.id, n)
		}
	}

	// The store is back: a flush delivers every waiting copy, once.
	st.start(t)
	w.mx.Flush(t)
	w.mx.WaitQueueEmpty(t, 2*time.Minute)
	log := readFile(w.mx.MailLog)[mark:]
	if n := shadowStatus(log, "sent"); n != len(outage) {
		t.Errorf("Postfix delivered %d shadow copies after the outage, want %d:\n%s", n, len(outage), log)
	}
	if strings.Contains(log, "status=bounced") {
		t.Errorf("Postfix bounced mail during the outage:\n%s", log)
	}
	want := map[string]map[string]int{
		"Outbound": {boardPack: 1, afterHours: 1},
		"Internal": {lunch: 1, minutes: 2},
		"Inbound":  {news: 1, news2: 1},
	}
	for folder, ids := range want {
		got := map[string]int{}
		for _, m := range st.messages(t, folder+"/"+month) {
			got[m.MessageID]++
			if !strings.Contains(string(m.Raw), "X-Postern-Archive: v=1; journal=ok") {
				t.Errorf("%s/%s: the copy of %s lost its envelope:\n%s", folder, month, m.MessageID, m.Raw)
			}
		}
		if !maps.Equal(got, ids) {
			t.Errorf("%s/%s holds %v (Message-ID: copies), want %v", folder, month, got, ids)
		}
	}
	// Each transaction of the minutes is archived with its own envelope.
	var rcpts []string
	for _, raw := range archived("Internal", minutes) {
		for _, u := range []string{"carol", "erin"} {
			if strings.Contains(raw, "X-Postern-Envelope-To: <"+u+"@corp.example.test>") {
				rcpts = append(rcpts, u)
			}
		}
	}
	if slices.Sort(rcpts); !slices.Equal(rcpts, []string{"carol", "erin"}) {
		t.Errorf("the two archive copies of the minutes name %v, want carol in one and erin in the other", rcpts)
	}
	if n := len(st.messages(t, "")); n != 0 {
		t.Errorf("the shadow INBOX holds %d copies, want none: every copy belongs in its folder", n)
	}
}

// waitShadowDeferred waits until Postfix's queue holds n messages, all deferred, each for
// the shadow address alone with a 4xx from lmtp-shadow (the recipients' copies gone out),
// and returns the reasons. mark is where the mail log of this phase begins.
func (w *site) waitShadowDeferred(t *testing.T, n, mark int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		q := postqueueJSON(t, w.mx)
		ok := len(q) == n
		var reasons []string
		for _, m := range q {
			if m.QueueName != "deferred" || len(m.Recipients) != 1 ||
				m.Recipients[0].Address != "shadow@corp.example.test" || !strings.Contains(m.Recipients[0].DelayReason, " said: 4") {
				ok = false
				break
			}
			reasons = append(reasons, m.QueueID+": "+m.Recipients[0].DelayReason)
		}
		if ok {
			return reasons
		}
		if log := readFile(w.mx.MailLog)[mark:]; shadowStatus(log, "sent") > 0 || strings.Contains(log, "status=bounced") {
			t.Fatalf("a shadow copy was delivered or mail bounced while the archive store is down:\n%s", log)
		}
		if time.Now().After(deadline) {
			listing, _ := w.mx.Queue()
			t.Fatalf("after 1 min the queue is not %d messages deferred for shadow@ alone with a 4xx:\n%s\nmaillog:\n%s",
				n, listing, readFile(w.mx.MailLog)[mark:])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queuedMessage is one line of postqueue -j.
type queuedMessage struct {
	QueueName  string `json:"queue_name"`
	QueueID    string `json:"queue_id"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// postqueueJSON is Postfix's queue as postqueue -j lists it, one JSON object per message.
func postqueueJSON(t *testing.T, p *testbench.Postfix) []queuedMessage {
	t.Helper()
	out, err := exec.Command("postqueue", "-c", p.ConfigDir, "-j").Output()
	if err != nil {
		t.Fatalf("postqueue -j: %v", err)
	}
	var q []queuedMessage
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var m queuedMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("postqueue -j: %v: %s", err, line)
		}
		q = append(q, m)
	}
	return q
}

// shadowStatus counts the mail log's deliveries to the shadow address with this status.
func shadowStatus(log, status string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "to=<shadow@corp.example.test>") && strings.Contains(l, "status="+status) {
			n++
		}
	}
	return n
}
