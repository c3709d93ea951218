package testbench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const alice = "alice@corp.example.test"

func TestCyrus(t *testing.T) {
	c := StartCyrus(t)
	c.CreateMailbox(t, "user/alice@corp.example.test")
	c.CreateMailbox(t, "user/alice/Folder@corp.example.test")
	c.SetACL(t, "user/alice/Folder@corp.example.test", "anyone", "p")

	msg := []byte("From: erin@corp.example.test\nSubject: over lmtp\nMessage-ID: <lmtp-1@test>\n\nhello\n")
	replies, err := DeliverLMTP(c.LMTPAddr, Mail{
		From: "erin@corp.example.test",
		To:   []string{alice, "alice+Folder@corp.example.test", "nobody@corp.example.test"},
		Data: msg,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		code     int
		enhanced string
	}{{250, "2.1.5"}, {250, "2.1.5"}, {550, "5.1.1"}} {
		if r := replies[i]; r.Code != want.code || !strings.Contains(r.Text, want.enhanced) {
			t.Errorf("recipient %d: %s, want %d %s", i, r, want.code, want.enhanced)
		}
	}
	for _, folder := range []string{"INBOX", "INBOX/Folder"} {
		got := c.Messages(t, alice, folder)
		if len(got) != 1 || got[0].Subject != "over lmtp" || got[0].MessageID != "<lmtp-1@test>" {
			t.Errorf("%s: %d messages %+v", folder, len(got), got)
		}
	}

	t.Run("SASL user logs in over IMAP", func(t *testing.T) {
		c.AddUser(t, alice, "alice-pw")
		if err := imapLogin(c.IMAPAddr, alice, "alice-pw"); err != nil {
			t.Error(err)
		}
	})

	t.Run("stop refuses, start keeps the mail", func(t *testing.T) {
		c.Stop()
		if _, err := DeliverLMTP(c.LMTPAddr, Mail{From: "x@y", To: []string{alice}, Data: msg}); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("LMTP to a stopped Cyrus: %v, want connection refused", err)
		}
		c.Start(t)
		again := []byte("From: erin@corp.example.test\nSubject: after the restart\nMessage-ID: <lmtp-2@test>\n\nhello\n")
		if r, err := DeliverLMTP(c.LMTPAddr, Mail{From: "x@y", To: []string{alice}, Data: again}); err != nil || r[0].Code != 250 {
			t.Fatalf("LMTP after restart: %v, %v", r, err)
		}
		if got := c.Messages(t, alice, "INBOX"); len(got) != 2 {
			t.Errorf("INBOX after restart has %d messages, want 2", len(got))
		}
	})

	// Cyrus's default: a Message-ID already in a mailbox is dropped there (with a 250),
	// except in a mailbox whose duplicatedeliver annotation an admin set to "true".
	t.Run("duplicate suppression is on, off per mailbox with duplicatedeliver", func(t *testing.T) {
		const dd = "/shared/vendor/cmu/cyrus-imapd/duplicatedeliver"
		folder := "user/alice/Folder@corp.example.test"
		if v := c.Metadata(t, folder, dd); v != "false" {
			t.Errorf("%s of a new mailbox: %q, want \"false\"", dd, v)
		}
		c.AdminCommand(t, "SETMETADATA "+imapQuote(folder)+" ("+dd+` "true")`)
		if v := c.Metadata(t, folder, dd); v != "true" {
			t.Fatalf("%s after SETMETADATA: %q, want \"true\"", dd, v)
		}
		// One message twice to both mailboxes, after the restart above: Cyrus's record of
		// what it delivered before a restart is not what this is about.
		twice := []byte("From: erin@corp.example.test\nSubject: twice\nMessage-ID: <lmtp-twice@test>\n\nhello\n")
		inbox, inFolder := len(c.Messages(t, alice, "INBOX")), len(c.Messages(t, alice, "INBOX/Folder"))
		for range 2 {
			r, err := DeliverLMTP(c.LMTPAddr, Mail{From: "x@y", To: []string{alice, "alice+Folder@corp.example.test"}, Data: twice})
			if err != nil || r[0].Code != 250 || r[1].Code != 250 {
				t.Fatalf("LMTP: %v, %v", r, err)
			}
		}
		if got := len(c.Messages(t, alice, "INBOX")) - inbox; got != 1 {
			t.Errorf("INBOX gained %d messages, want 1: the repeated Message-ID is suppressed", got)
		}
		if got := len(c.Messages(t, alice, "INBOX/Folder")) - inFolder; got != 2 {
			t.Errorf("INBOX/Folder gained %d messages, want 2: duplicatedeliver keeps the repeated Message-ID", got)
		}
	})

	t.Run("syslog lines are filed in the log dir", func(t *testing.T) {
		devlog.Lock()
		ours := devlog.conn != nil
		devlog.Unlock()
		if !ours {
			t.Skip("another process serves /dev/log")
		}
		path := filepath.Join(c.logDir, "syslog")
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "Delivered:") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no Delivered: line:\n%s", path, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestPostfixToCyrus is the delivery leg postern sits beside: Postfix's virtual transport
// handing mail to Cyrus over LMTP.
func TestPostfixToCyrus(t *testing.T) {
	c := StartCyrus(t)
	c.CreateMailbox(t, "user/alice@corp.example.test")
	c.CreateMailbox(t, "user/alice/Folder@corp.example.test")
	c.SetACL(t, "user/alice/Folder@corp.example.test", "anyone", "p")
	p := StartPostfix(t, PostfixOptions{MainCF: map[string]string{
		"virtual_transport":       "lmtp:inet:" + c.LMTPAddr,
		"virtual_mailbox_domains": "corp.example.test",
		"virtual_mailbox_maps":    "inline:{ alice@corp.example.test=ok }",
		"recipient_delimiter":     "+",
	}})

	send := func(to, subject string) (int, string) {
		code, text, err := SendMail(p.SMTPAddr, Mail{
			From: "erin@corp.example.test", To: []string{to},
			Data: []byte(fmt.Sprintf("Subject: %s\nMessage-ID: <%s@test>\n\nbody\n", subject, strings.ReplaceAll(subject, " ", "-"))),
		})
		if err != nil {
			t.Fatal(err)
		}
		return code, text
	}
	if code, text := send(alice, "via postfix"); code != 250 {
		t.Fatalf("to alice: %d %s", code, text)
	}
	if code, text := send("alice+Folder@corp.example.test", "via postfix to a folder"); code != 250 {
		t.Fatalf("to alice+Folder: %d %s", code, text)
	}
	if code, text := send("bob@corp.example.test", "unknown"); code != 550 || !strings.HasPrefix(text, "5.1.1") {
		t.Errorf("to an unknown user: %d %s, want 550 5.1.1", code, text)
	}
	p.WaitQueueEmpty(t, 10*time.Second)
	for folder, subject := range map[string]string{"INBOX": "via postfix", "INBOX/Folder": "via postfix to a folder"} {
		if got := c.Messages(t, alice, folder); len(got) != 1 || got[0].Subject != subject {
			t.Errorf("%s: %+v, want one message %q", folder, got, subject)
		}
	}

	t.Run("Cyrus down: deferred, then delivered by Flush", func(t *testing.T) {
		c.Stop()
		if code, text := send(alice, "while cyrus was down"); code != 250 {
			t.Fatalf("to alice: %d %s", code, text)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if q, _ := p.Queue(); strings.Contains(q, "connect to 127.0.0.1") {
				break // deferred: the queue says why
			}
			if time.Now().After(deadline) {
				q, _ := p.Queue()
				t.Fatalf("message not deferred while Cyrus is down; queue:\n%s", q)
			}
		}
		c.Start(t)
		p.Flush(t)
		p.WaitQueueEmpty(t, 10*time.Second)
		if got := c.Messages(t, alice, "INBOX"); len(got) != 2 || got[1].Subject != "while cyrus was down" {
			t.Errorf("INBOX: %+v", got)
		}
	})
}

// imapLogin tries a plain IMAP LOGIN, as a mail client would.
func imapLogin(addr, user, password string) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	conn := &imapConn{addr: addr, conn: nc, r: bufio.NewReader(nc)}
	defer conn.logout()
	if _, err := conn.read(); err != nil {
		return err
	}
	_, err = conn.do("LOGIN " + imapQuote(user) + " " + imapQuote(password))
	return err
}
