package testbench

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

const dovecotShadow = "shadow@corp.example.test"

func TestDovecot(t *testing.T) {
	d := StartDovecot(t)
	msg := []byte("From: erin@corp.example.test\nSubject: over lmtp\nMessage-ID: <lmtp-1@test>\n\nhello\n")
	replies, err := DeliverLMTP(d.LMTPAddr, Mail{
		From: "erin@corp.example.test",
		To:   []string{dovecotShadow, "shadow+Outbound/2026/11@corp.example.test", "nobody@corp.example.test"},
		Data: msg,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		code     int
		enhanced string
	}{{250, "2.0.0"}, {250, "2.0.0"}, {550, "5.1.1"}} {
		if r := replies[i]; r.Code != want.code || !strings.Contains(r.Text, want.enhanced) {
			t.Errorf("recipient %d: %s, want %d %s", i, r, want.code, want.enhanced)
		}
	}
	for _, folder := range []string{"INBOX", "Outbound/2026/11"} {
		got := d.Messages(t, dovecotShadow, folder)
		if len(got) != 1 || got[0].Subject != "over lmtp" || got[0].MessageID != "<lmtp-1@test>" {
			t.Fatalf("%s: %d messages %+v", folder, len(got), got)
		}
		if raw := string(got[0].Raw); !strings.HasSuffix(raw, "\r\n\r\nhello\r\n") || strings.Contains(strings.ReplaceAll(raw, "\r\n", ""), "\n") {
			t.Errorf("%s: not CRLF throughout, or the body changed:\n%q", folder, raw)
		}
	}

	t.Run("the shipped settings are in, but not their port", func(t *testing.T) {
		out, err := d.doveadm("config", "-h", "lmtp_save_to_detail_mailbox")
		if err != nil || strings.TrimSpace(string(out)) != "yes" {
			t.Errorf("lmtp_save_to_detail_mailbox: %q %v", out, err)
		}
		if listensOn(d.master.Pid(), "127.0.0.1:24") {
			t.Error("the bench listens on the example's port 24")
		}
	})

	t.Run("the detail folder is nested, created and subscribed", func(t *testing.T) {
		for args, want := range map[string]string{
			"mailbox list -u " + dovecotShadow:    "Outbound\nOutbound/2026\nOutbound/2026/11\nINBOX\n",
			"mailbox list -s -u " + dovecotShadow: "Outbound/2026/11\n", // lda_mailbox_autosubscribe
		} {
			out, err := d.doveadm(strings.Fields(args)...)
			if err != nil || string(out) != want {
				t.Errorf("doveadm %s:\n%s(%v), want\n%s", args, out, err, want)
			}
		}
	})

	t.Run("a missing folder fails the test that reads it", func(t *testing.T) {
		if _, err := d.doveadm("mailbox", "status", "-u", dovecotShadow, "messages", "Nowhere"); err == nil {
			t.Error("doveadm mailbox status found a folder that does not exist")
		}
	})

	t.Run("users have their password; one added while Dovecot runs too", func(t *testing.T) {
		if _, err := d.doveadm("auth", "test", "bob@corp.example.test", DovecotPassword); err != nil {
			t.Error(err)
		}
		if _, err := d.doveadm("auth", "test", "bob@corp.example.test", "wrong"); err == nil {
			t.Error("a wrong password was accepted")
		}
		d.AddUser(t, "carol@corp.example.test", "carol-pw")
		if r, err := DeliverLMTP(d.LMTPAddr, Mail{From: "x@y", To: []string{"carol+Inbound@corp.example.test"}, Data: msg}); err != nil || r[0].Code != 250 {
			t.Fatalf("LMTP to a user added while Dovecot runs: %v, %v", r, err)
		}
		if got := d.Messages(t, "carol@corp.example.test", "Inbound"); len(got) != 1 {
			t.Errorf("carol's Inbound has %d messages, want 1", len(got))
		}
	})

	t.Run("stop refuses, start keeps the mail", func(t *testing.T) {
		d.Stop()
		if _, err := DeliverLMTP(d.LMTPAddr, Mail{From: "x@y", To: []string{dovecotShadow}, Data: msg}); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("LMTP to a stopped Dovecot: %v, want connection refused", err)
		}
		d.Start(t)
		// the same Message-ID again: LMTP keeps no duplicate database, so it lands a second time
		if r, err := DeliverLMTP(d.LMTPAddr, Mail{From: "x@y", To: []string{dovecotShadow}, Data: msg}); err != nil || r[0].Code != 250 {
			t.Fatalf("LMTP after restart: %v, %v", r, err)
		}
		if got := d.Messages(t, dovecotShadow, "INBOX"); len(got) != 2 {
			t.Errorf("INBOX after restart has %d messages, want 2", len(got))
		}
	})
}
