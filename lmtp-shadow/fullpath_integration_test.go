package lmtpshadow

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// TestWholePathArchivesTheRealEnvelope runs the archive path as an operator wires it:
// real Postfix configured from the shipped examples, postern tcptable + milter +
// lmtp-shadow in one `postern run`, the seeded Samba AD and Cyrus. A message to a To, a
// Cc, a Bcc and a list reaches every mailbox and exactly one archive copy, which alone
// names the Bcc recipient and the list's members; inbound (through a relay standing in
// for PMG) and internal mail is archived in its own folder. (A recipient addressed both
// directly and through a list gets two copies from Postfix when enable_original_recipient
// is on, its default; Cyrus's duplicate suppression, on for the users' mailboxes, folds
// them. The recipients here do not overlap, so every count below is Postfix's own.)
func TestWholePathArchivesTheRealEnvelope(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	cy := testbench.StartCyrus(t)
	for _, u := range []string{"alice", "bob", "carol", "erin", "shadow"} {
		cy.CreateMailbox(t, "user/"+u+"@corp.example.test")
	}
	dir := testbench.Dir(t)
	pw := filepath.Join(dir, "cyrus.secret")
	os.WriteFile(pw, []byte(cy.AdminPassword), 0o600)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t)) }
	tables, milter, shadow := port(), port(), port()
	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, []byte(testbench.CorpConfig(s, dir, fmt.Sprintf(`internal_networks: [127.0.0.0/8]
trusted_relays: [192.0.2.10/32]
telemetry: {listen: %[1]s}
journal: {store: file, path: %[2]s/journal}
tcptable: {socketmap: inet:%[3]s}
milter: {listen: inet:%[4]s, journal: {enabled: true}}
lmtp_shadow:
  listen: inet:%[5]s
  store: {kind: cyrus, lmtp: inet:%[6]s, imap: inet:%[7]s, admin_user: %[8]s, admin_password_file: %[9]s}
`, port(), dir, tables, milter, shadow, cy.LMTPAddr, cy.IMAPAddr, cy.Admin, pw))), 0o600)
	testbench.StartPostern(t, cfg, "run")
	for _, a := range []string{tables, milter, shadow} {
		if err := testbench.WaitTCP(a, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Postfix from the shipped fragments, socket paths pointed at this test's ports.
	settings := map[string]string{}
	for _, f := range []string{"tcptable-main.cf", "milter-main.cf", "lmtp-shadow.cf"} {
		for k, v := range testbench.PostfixExample(t, f) {
			settings[k] = v
		}
	}
	transport := filepath.Join(dir, "shadow_transport.regexp")
	ex, _ := os.ReadFile("../examples/postfix/shadow_transport.regexp")
	os.WriteFile(transport, []byte(strings.ReplaceAll(string(ex), "lmtp:unix:postern/shadow.sock", "lmtp:inet:"+shadow)), 0o644)
	r := strings.NewReplacer("socketmap:unix:postern/tables.sock:", "socketmap:inet:"+tables+":",
		"unix:postern/milter.sock", "inet:"+milter, "regexp:/etc/postfix/shadow_transport.regexp", "regexp:"+transport,
		"lmtp:inet:127.0.0.1:24", "lmtp:inet:"+cy.LMTPAddr)
	for k, v := range settings {
		settings[k] = r.Replace(v)
	}
	mx := testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: settings})

	send := func(m testbench.Mail) {
		t.Helper()
		if code, text, err := testbench.SendMail(mx.SMTPAddr, m); err != nil || code != 250 {
			t.Fatalf("send %q: %d %s %v", m.To, code, text, err)
		}
	}
	outbound := []byte("From: Alice <alice@corp.example.test>\r\nTo: bob@corp.example.test, interns@corp.example.test\r\nCc: x@partner.example\r\nSubject: board pack\r\nMessage-ID: <board-pack@corp.example.test>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nThe board pack.\r\n")
	send(testbench.Mail{From: "alice@corp.example.test", XClientLogin: "alice", Data: outbound,
		To: []string{"bob@corp.example.test", "interns@corp.example.test", "x@partner.example", "erin@corp.example.test"}})
	send(testbench.Mail{From: "bob@corp.example.test", XClientLogin: "bob", To: []string{"carol@corp.example.test"},
		Data: []byte("From: bob@corp.example.test\r\nTo: carol@corp.example.test\r\nSubject: lunch\r\nMessage-ID: <lunch@corp.example.test>\r\n\r\nLunch?\r\n")})
	send(testbench.Mail{From: "news@partner.example", XClientAddr: "192.0.2.10", To: []string{"erin@corp.example.test"},
		Data: []byte("From: news@partner.example\r\nTo: erin@corp.example.test\r\nSubject: newsletter\r\nMessage-ID: <news@partner.example>\r\n\r\nNews.\r\n")})
	mx.WaitQueueEmpty(t, 2*time.Minute)

	// Every recipient has the board pack once; none of their copies names the Bcc.
	for _, u := range []string{"bob", "carol", "erin"} { // To, through the list, Bcc
		n := 0
		for _, m := range cy.Messages(t, u+"@corp.example.test", "INBOX") {
			if m.MessageID == "<board-pack@corp.example.test>" {
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
	for _, sm := range mx.SinkMessages(t) {
		if sm.MessageID == "<board-pack@corp.example.test>" && strings.Contains(strings.ToLower(string(sm.Raw)), "erin@") {
			t.Errorf("the external copy names the Bcc recipient:\n%s", sm.Raw)
		}
	}

	month := time.Now().UTC().Format("2006/01")
	archived := func(folder, id string) []string {
		var out []string
		for _, m := range cy.Messages(t, "shadow@corp.example.test", "INBOX/"+folder+"/"+month) {
			if m.MessageID == id {
				out = append(out, string(m.Raw))
			}
		}
		return out
	}
	copies := archived("Outbound", "<board-pack@corp.example.test>")
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
	if n := len(archived("Internal", "<lunch@corp.example.test>")); n != 1 {
		t.Errorf("the internal message is archived %d times in Internal/, want once", n)
	}
	if n := len(archived("Inbound", "<news@partner.example>")); n != 1 {
		t.Errorf("the inbound message is archived %d times in Inbound/, want once", n)
	}
}
