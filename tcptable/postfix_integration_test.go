package tcptable

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

func exampleMainCF(t *testing.T, name string) map[string]string {
	return testbench.PostfixExample(t, name)
}

// The ports tcptable-tcp-main.cf gives each map.
var examplePorts = map[string]string{"10051": "domains", "10052": "alias_domains", "10053": "mailboxes",
	"10054": "aliases", "10055": "senders", "10056": "shadow", "10057": "recipients"}

// mxSettings is the shipped socketmap configuration, with virtual_alias_maps and
// recipient_bcc_maps taken from the shipped tcp_table one, so mail crosses both
// protocols; ports and the LMTP server are this test's.
func mxSettings(t *testing.T, tables *corpTables, lmtp string) map[string]string {
	t.Helper()
	mainCF := exampleMainCF(t, "tcptable-main.cf")
	tcp := exampleMainCF(t, "tcptable-tcp-main.cf")
	port := regexp.MustCompile(`tcp:127\.0\.0\.1:(\d+)`)
	for _, k := range []string{"virtual_alias_maps", "recipient_bcc_maps"} {
		mainCF[k] = port.ReplaceAllStringFunc(tcp[k], func(s string) string {
			return "tcp:" + tables.daemon.addrs[examplePorts[port.FindStringSubmatch(s)[1]]].String()
		})
	}
	mainCF["virtual_transport"] = "lmtp:inet:" + lmtp
	// reject_sender_login_mismatch is ignored ("no SASL support") unless SASL is on.
	mainCF["smtpd_sasl_auth_enable"] = "yes"
	mainCF["smtpd_sender_restrictions"] = "reject_sender_login_mismatch"
	return mainCF
}

// socketInQueueDir makes the directory for the socketmap socket where the example's
// relative path points: postern/ under the queue directory Postfix reports, group
// postfix and set-group-ID as the package's tmpfiles.d entry makes it. tcptable binds
// the socket itself, which then gets group postfix and mode 0660, as
// postern-tcptable.socket would make it: Postfix's daemons run as user postfix.
func socketInQueueDir(t *testing.T, mx *testbench.Postfix) string {
	t.Helper()
	out, err := exec.Command("postconf", "-c", mx.ConfigDir, "-h", "queue_directory").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "postern")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Chown(dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "tables.sock")
}

// mail is a message with a subject to find it by.
func mail(from, login, subject string, to ...string) testbench.Mail {
	return testbench.Mail{From: from, XClientLogin: login, To: to,
		Data: []byte(fmt.Sprintf("From: <%s>\nTo: undisclosed-recipients:;\nSubject: %s\nMessage-ID: <%d@test>\n\nbody\n", from, subject, time.Now().UnixNano()))}
}

// count is how many messages with subject a user's folder holds.
func count(t *testing.T, cy *testbench.Cyrus, user, folder, subject string) int {
	t.Helper()
	n := 0
	for _, m := range cy.Messages(t, user, folder) {
		if m.Subject == subject {
			n++
		}
	}
	return n
}

// TestPostfixDeliversThroughTables runs a private Postfix configured with the shipped
// main.cf lines against tcptable, the seeded Samba AD and a real Cyrus: first with AD
// down before postern ever synced, then for every kind of address.
func TestPostfixDeliversThroughTables(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	s.Stop() // down before postern's first sync

	cy := testbench.StartCyrus(t)
	for _, u := range []string{"alice", "bob", "carol", "erin", "shadow"} {
		cy.CreateMailbox(t, "user/"+u+"@corp.example.test")
	}
	cy.CreateMailbox(t, "user/alice/News@corp.example.test")
	cy.SetACL(t, "user/alice/News@corp.example.test", "anyone", "p")

	mx := testbench.StartPostfix(t, testbench.PostfixOptions{})
	sock := socketInQueueDir(t, mx)
	tables := startCorpTables(t, s, "  socketmap: unix:"+sock+"\n  senders: {group_send_as: true}\n", false)
	tables.runDirectory(t) // from here on only the refresh loop syncs, as in `postern run`
	mx.Postconf(t, mxSettings(t, tables, cy.LMTPAddr))
	// The relay in front (PMG), with a queue: what it cannot hand over now it retries.
	pmg := testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: map[string]string{
		"relayhost":       "[127.0.0.1]:" + strings.TrimPrefix(mx.SMTPAddr, "127.0.0.1:"),
		"myhostname":      "pmg.corp.example.test",
		"queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
	}})

	accepted := []string{} // subjects every one of which the shadow mailbox must hold once
	send := func(t *testing.T, from, login, subject string, wantCode int, to ...string) string {
		t.Helper()
		code, text, err := testbench.SendMail(mx.SMTPAddr, mail(from, login, subject, to...))
		if err != nil || code != wantCode {
			t.Fatalf("MAIL FROM:<%s> (login %q) RCPT TO:%v: %d %s, %v; want %d", from, login, to, code, text, err, wantCode)
		}
		if code == 250 {
			accepted = append(accepted, subject)
		}
		return text
	}

	t.Run("AD down before the first sync: every recipient gets a 4xx, never a 5xx", func(t *testing.T) {
		for _, rcpt := range []string{alice, "Alice+News@CORP.EXAMPLE.TEST", "all@corp.example.test", "a.anderson@corp.example.test",
			"carol@alias.example.test", "nobody@corp.example.test", "dave@corp.example.test"} {
			code, text, err := testbench.SendMail(mx.SMTPAddr, mail("x@partner.example", "", "outage", rcpt))
			if err != nil || code/100 != 4 {
				t.Errorf("RCPT TO:<%s> with AD down: %d %s, %v; want 4xx", rcpt, code, text, err)
			}
		}
		m := mail("x@partner.example", "", "queued during the outage", "all@corp.example.test")
		if code, text, err := testbench.SendMail(pmg.SMTPAddr, m); err != nil || code != 250 {
			t.Fatalf("the relay in front did not take the message: %d %s %v", code, text, err)
		}
		accepted = append(accepted, "queued during the outage")
		deferred := regexp.MustCompile(`said: 4\d\d 4\.\d\.\d`)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			q, _ := pmg.Queue()
			if deferred.MatchString(q) {
				t.Logf("the relay's queue while AD is down:\n%s", q)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the relay's queue shows no 4xx deferral:\n%s", q)
			}
		}
	})

	s.Start(t)
	// No sync by hand: the refresh loop, retrying every second, must find AD again.
	tables.waitSynced(t, 10*time.Second)

	t.Run("after AD returns, the queued mail is delivered", func(t *testing.T) {
		pmg.Flush(t)
		pmg.WaitQueueEmpty(t, 30*time.Second)
		mx.WaitQueueEmpty(t, 30*time.Second)
		for _, u := range []string{"alice", "bob", "carol", "erin"} {
			if n := count(t, cy, u+"@corp.example.test", "INBOX", "queued during the outage"); n != 1 {
				t.Errorf("%s holds %d copies of the queued message, want 1", u, n)
			}
		}
	})

	t.Run("Alice+News@CORP lands in Alice's News folder", func(t *testing.T) {
		send(t, "x@partner.example", "", "plus address", 250, "Alice+News@CORP.EXAMPLE.TEST")
		mx.WaitQueueEmpty(t, 30*time.Second)
		if n := count(t, cy, alice, "INBOX/News", "plus address"); n != 1 {
			t.Errorf("alice's INBOX/News holds %d copies, want 1 (INBOX: %d)", n, count(t, cy, alice, "INBOX", "plus address"))
		}
	})

	// Postfix keeps one copy per original recipient (enable_original_recipient), so each
	// message goes to one list: what must not happen is a member twice through nesting
	// or a cycle.
	t.Run("a list reaches every member once", func(t *testing.T) {
		send(t, "x@partner.example", "", "to all staff", 250, "all@corp.example.test")     // Sales, Interns and alice
		send(t, "x@partner.example", "", "to the cycle", 250, "cycle-a@corp.example.test") // CycleA -> CycleB -> CycleA
		mx.WaitQueueEmpty(t, 30*time.Second)
		for subject, members := range map[string][]string{"to all staff": {"alice", "bob", "carol", "erin"}, "to the cycle": {"alice", "bob"}} {
			for _, u := range members {
				if n := count(t, cy, u+"@corp.example.test", "INBOX", subject); n != 1 {
					t.Errorf("%s holds %d copies of %q, want 1", u, n, subject)
				}
			}
		}
		if n := count(t, cy, carol, "INBOX", "to the cycle"); n != 0 {
			t.Errorf("carol, not in the cycle, holds %d copies", n)
		}
	})

	t.Run("secondary, alias-domain and IDN addresses reach their mailbox", func(t *testing.T) {
		names := map[string]string{"a.anderson@corp.example.test": alice, "anna@xn--bcher-kva.example.test": alice,
			"carol@alias.example.test": carol, "C.Clark+Q3@Corp.Example.Test": carol}
		for rcpt := range names {
			send(t, "x@partner.example", "", "to "+rcpt, 250, rcpt)
		}
		mx.WaitQueueEmpty(t, 30*time.Second)
		for rcpt, owner := range names {
			if n := count(t, cy, owner, "INBOX", "to "+rcpt); n != 1 {
				t.Errorf("%s holds %d copies of the mail to %s, want 1", owner, n, rcpt)
			}
		}
	})

	t.Run("a list with a contact sends the contact's copy out", func(t *testing.T) {
		send(t, "x@partner.example", "", "partners", 250, "partners@corp.example.test")
		mx.WaitQueueEmpty(t, 30*time.Second)
		if n := count(t, cy, erin, "INBOX", "partners"); n != 1 {
			t.Errorf("erin holds %d copies, want 1", n)
		}
		var out []string
		for _, m := range mx.WaitSinkMessages(t, 1, 10*time.Second) {
			if m.Subject == "partners" {
				out = append(out, m.To...)
			}
		}
		if strings.Join(out, ",") != "bob@partner.example" {
			t.Errorf("relayed out to %v, want the contact bob@partner.example", out)
		}
	})

	t.Run("unknown and disabled users get 550 5.1.1", func(t *testing.T) {
		for _, rcpt := range []string{"nobody@corp.example.test", "dave@corp.example.test", "x%evil.example@corp.example.test"} {
			if text := send(t, "x@partner.example", "", "unknown", 550, rcpt); !strings.HasPrefix(text, "5.1.1") {
				t.Errorf("RCPT TO:<%s>: %q, want 5.1.1", rcpt, text)
			}
		}
	})

	t.Run("only an address's owner, or a group's member, may send as it", func(t *testing.T) {
		send(t, "alice+sent@corp.example.test", "alice", "alice as herself", 250, bob)
		send(t, "a.anderson@alias.example.test", "ALICE", "alice by another name", 250, bob)
		send(t, "sales@corp.example.test", "bob", "bob as sales", 250, erin)
		for _, tt := range []struct{ from, login string }{
			{bob, "alice"},                         // someone else's address
			{"sales@corp.example.test", "carol"},   // a list carol is not in
			{alice, ""},                            // an owned address without logging in
			{"partner@corp.example.test", "alice"}, // a contact: nobody owns it
		} {
			if text := send(t, tt.from, tt.login, "forged", 553, bob); !strings.HasPrefix(text, "5.7.1") {
				t.Errorf("%s as %q: %q, want 5.7.1", tt.login, tt.from, text)
			}
		}
		mx.WaitQueueEmpty(t, 30*time.Second)
		for _, subject := range []string{"alice as herself", "alice by another name"} {
			if n := count(t, cy, bob, "INBOX", subject); n != 1 {
				t.Errorf("bob holds %d copies of %q, want 1", n, subject)
			}
		}
		if n := count(t, cy, erin, "INBOX", "bob as sales"); n != 1 {
			t.Errorf("erin holds %d copies of bob's mail as sales@, want 1", n)
		}
	})

	t.Run("every accepted message lands in the shadow mailbox once", func(t *testing.T) {
		mx.WaitQueueEmpty(t, 30*time.Second)
		archived := map[string]int{}
		for _, m := range cy.Messages(t, sh, "INBOX") {
			archived[m.Subject]++
		}
		for _, subject := range accepted {
			if archived[subject] != 1 {
				t.Errorf("the shadow mailbox holds %d copies of %q, want 1", archived[subject], subject)
			}
		}
		if archived["forged"] != 0 || archived["unknown"] != 0 || archived["outage"] != 0 {
			t.Errorf("refused mail was archived: %v", archived)
		}
		if t.Failed() {
			t.Logf("archived: %v", archived)
		}
	})
}
