package welcome

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/testbench"
)

// newAccount is an LDIF add of an enabled (544) or disabled (514) user with a mailbox;
// the display name goes base64-encoded, as LDIF wants for UTF-8.
func newAccount(base, login, display string, uac int) string {
	return fmt.Sprintf(`
		dn: CN=%[2]s,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: %[2]s
		userPrincipalName: %[2]s@corp.example.test
		displayName:: %[3]s
		department: Engineering
		mail: %[2]s@corp.example.test
		proxyAddresses: SMTP:%[2]s@corp.example.test
		userAccountControl: %[4]d
	`, base, login, base64.StdEncoding.EncodeToString([]byte(display)), uac)
}

// welcomeAccount is the SASL account the letters are submitted with, as on a real site.
const welcomeAccount, welcomePassword = "welcome@corp.example.test", "Welcome-Passw0rd"

// TestAgainstSambaAndPostfix runs the scenario against a real Samba AD DC and a
// real Postfix, whose relayhost is an smtp-sink that keeps every message. The letters go
// through Postfix's submission service as at a real site: STARTTLS with the certificate
// verified against ca_file for server_name, then AUTH with the password from
// password_file (that service relays for nobody else); once over implicit TLS; and once
// with a wrong password, which must fail the run for the operator and record nothing.
func TestAgainstSambaAndPostfix(t *testing.T) {
	samba := testbench.StartSamba(t)
	samba.LDIF(t, testbench.SeedCorp(samba))
	postfix := testbench.StartPostfix(t, testbench.PostfixOptions{
		Submission: &testbench.PostfixSubmission{User: welcomeAccount, Password: welcomePassword},
	})

	ex := examples(t)
	cfgDir := t.TempDir()
	for name, password := range map[string]string{"smtp.secret": welcomePassword, "wrong.secret": "Welcome-Passw0rd-old"} {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// configure writes NAME.yaml with this welcome.smtp (all share the state directory, so
	// one ledger) and loads it as `postern -c` would.
	configure := func(name, smtp string) (string, *config.Config) {
		t.Helper()
		path := filepath.Join(cfgDir, name+".yaml")
		yml := testbench.CorpConfig(samba, filepath.Join(cfgDir, "state"), fmt.Sprintf(`welcome:
  from: "IT Service Desk <it@corp.example.test>"
  subject: "Welcome to Corp, {{.DisplayName}} · 欢迎加入"
  html_template_file: %s/welcome.html
  text_template_file: %s/welcome.txt
  smtp: {%s, ca_file: %q, server_name: %s, username: %s, timeout: 10s}
`, ex, ex, smtp, postfix.CAFile, postfix.ServerName, welcomeAccount))
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, c
	}
	log := zaptest.NewLogger(t)
	newJob := func(c *config.Config) *Job {
		t.Helper()
		opts, err := directory.OptionsFrom(c, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		opts.StateFile = ""
		job, err := New(Options{Config: c.Welcome, Directory: directory.New(opts), Log: log, Out: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	cfgPath, c := configure("postern", fmt.Sprintf("server: %q, starttls: true, password_file: smtp.secret", postfix.SubmissionAddr))
	job := newJob(c)
	run := func(req Request) Report {
		t.Helper()
		rep, err := job.Run(context.Background(), req)
		if err != nil {
			t.Fatalf("run %+v: %v", req, err)
		}
		return rep
	}

	if rep := run(Request{}); !rep.FirstRun || len(rep.Sent) != 0 || rep.Baseline < 5 {
		t.Fatalf("first run: %+v; want the seeded users recorded and nothing sent", rep)
	}

	samba.LDIF(t, newAccount(samba.BaseDN, "zhang", "张伟", 544)+newAccount(samba.BaseDN, "greta", "Greta Groß", 544)+
		newAccount(samba.BaseDN, "hank", "Hank Hill", 544)+newAccount(samba.BaseDN, "ivan", "Ivan Inactive", 514))
	rep := run(Request{})
	sort.Strings(rep.Sent)
	if !slices.Equal(rep.Sent, []string{"greta", "hank", "zhang"}) {
		t.Fatalf("three new users (and one disabled): sent %v", rep.Sent)
	}
	msgs := postfix.WaitSinkMessages(t, 3, 30*time.Second)
	for _, m := range msgs {
		raw := bytes.ReplaceAll(m.Raw, []byte("\n"), []byte("\r\n"))
		p := parseLetter(t, raw)
		if !slices.Equal(p.Types, []string{"multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"}) {
			t.Errorf("%v: MIME structure %v", m.To, p.Types)
		}
		logo, _ := os.ReadFile(filepath.Join(ex, "logo.png"))
		if !bytes.Equal(p.Images["logo.png@welcome"], logo) {
			t.Errorf("%v: the inline image did not arrive intact", m.To)
		}
		if m.To[0] == "zhang@corp.example.test" {
			if p.Subject != "Welcome to Corp, 张伟 · 欢迎加入" || !strings.Contains(p.Text, "欢迎加入，张伟！") ||
				!strings.Contains(p.HTML, "欢迎加入，张伟！") || p.To[0].Name != "张伟" {
				t.Errorf("zhang's letter: subject %q, To %v, text:\n%s", p.Subject, p.To, p.Text)
			}
		}
		checkWire(t, raw)
	}

	if rep := run(Request{}); len(rep.Sent) != 0 {
		t.Fatalf("the second run sent %v", rep.Sent)
	}

	// Renamed and moved: the objectGUID is the same, so no second letter.
	samba.LDIF(t, fmt.Sprintf(`
		dn: CN=hank,OU=Staff,%[1]s
		changetype: modify
		replace: sAMAccountName
		sAMAccountName: henry
		-

		dn: CN=hank,OU=Staff,%[1]s
		changetype: modrdn
		newrdn: CN=Henry Hill
		deleteoldrdn: 1
	`, samba.BaseDN))
	samba.LDIF(t, newAccount(samba.BaseDN, "jade", "Jade Jones", 544))
	dry := t.TempDir()
	if rep := run(Request{DryRun: true, OutDir: dry}); len(rep.Letters) != 1 || rep.Letters[0].Recipient.Login != "jade" {
		t.Fatalf("dry run before the fourth letter: %+v", rep)
	}
	if rep := run(Request{}); !slices.Equal(rep.Sent, []string{"jade"}) {
		t.Fatalf("a fourth user and a renamed one: sent %v, want exactly jade", rep.Sent)
	}
	msgs = postfix.WaitSinkMessages(t, 4, 30*time.Second)
	var to []string
	for _, m := range msgs {
		to = append(to, m.To...)
	}
	sort.Strings(to)
	if !slices.Equal(to, []string{"greta@corp.example.test", "hank@corp.example.test", "jade@corp.example.test", "zhang@corp.example.test"}) {
		t.Fatalf("smtp-sink received letters for %v", to)
	}
	eml, err := os.ReadFile(filepath.Join(dry, "jade.eml"))
	if err != nil {
		t.Fatal(err)
	}
	sent := msgs[len(msgs)-1]
	if got, want := comparable(sent.Raw), comparable(bytes.ReplaceAll(eml, []byte("\r\n"), []byte("\n"))); got != want {
		t.Errorf("what Postfix delivered differs from the dry run:\n--- dry run\n%s\n--- delivered\n%s", want, got)
	}
	if ledger, _ := os.ReadFile(c.Welcome.LedgerFile()); !bytes.Contains(ledger, []byte(`"guid:`)) {
		t.Errorf("the ledger is not keyed by objectGUID:\n%s", ledger)
	}

	// Two `postern welcome` processes started at the same moment, as a timer and an
	// operator might: each new letter goes out once, and both exit 0.
	samba.LDIF(t, newAccount(samba.BaseDN, "kai", "Kai Kim", 544)+newAccount(samba.BaseDN, "lou", "Lou 陆", 544))
	bin := testbench.Postern(t)
	codes := make(chan string, 2)
	for range 2 {
		go func() {
			out, err := exec.Command(bin, "-c", cfgPath, "welcome").CombinedOutput()
			codes <- fmt.Sprintf("%v %s", err, out)
		}()
	}
	for range 2 {
		if res := <-codes; !strings.HasPrefix(res, "<nil>") {
			t.Errorf("a concurrent run failed: %s", res)
		}
	}
	// Both runs have ended, so a duplicate would be in Postfix's queue: waiting for the
	// queue to empty waits for it too.
	to = nil
	for _, m := range postfix.WaitSinkMessages(t, 6, 30*time.Second) {
		to = append(to, m.To...)
	}
	sort.Strings(to)
	if len(to) != 6 || len(slices.Compact(slices.Clone(to))) != 6 {
		t.Fatalf("after two concurrent runs smtp-sink holds letters for %v; want kai and lou once each", to)
	}

	// Implicit TLS (tls: true, port 465): the certificate verified the same way, then AUTH.
	samba.LDIF(t, newAccount(samba.BaseDN, "mia", "Mia Moreau", 544))
	_, smtps := configure("smtps", fmt.Sprintf("server: %q, tls: true, password_file: smtp.secret", postfix.SMTPSAddr))
	if rep, err := newJob(smtps).Run(context.Background(), Request{}); err != nil || !slices.Equal(rep.Sent, []string{"mia"}) {
		t.Fatalf("over implicit TLS: sent %v, %v; want mia", rep.Sent, err)
	}
	if msgs := postfix.WaitSinkMessages(t, 7, 30*time.Second); !slices.Equal(msgs[6].To, []string{"mia@corp.example.test"}) {
		t.Fatalf("the letter sent over implicit TLS reached smtp-sink for %v", msgs[6].To)
	}

	// A password_file with an old password, as the timer would run it: Postfix answers 535,
	// the run exits 2 (the operator's to fix, not retried as temporary) saying which keys to
	// check, nothing is submitted, and ned is not recorded as sent, so the next run with the
	// right password sends his letter.
	samba.LDIF(t, newAccount(samba.BaseDN, "ned", "Ned Nakamura", 544))
	wrongPath, _ := configure("wrong", fmt.Sprintf("server: %q, starttls: true, password_file: wrong.secret", postfix.SubmissionAddr))
	res, err := exec.Command(bin, "-c", wrongPath, "welcome").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("postern welcome with a wrong password: %v, want exit status 2; output:\n%s", err, res)
	}
	for _, words := range []string{"AUTH as " + welcomeAccount, "535", "check welcome.smtp.username and password_file"} {
		if !strings.Contains(string(res), words) {
			t.Errorf("postern welcome with a wrong password says %q; want it to say %q", res, words)
		}
	}
	t.Logf("as expected, postern welcome with a wrong password: %v\n%s", err, res)
	postfix.WaitQueueEmpty(t, 10*time.Second)
	if n := len(postfix.SinkMessages(t)); n != 7 {
		t.Errorf("smtp-sink has %d letters after the refused AUTH, want still 7", n)
	}
	led, err := loadLedger(c.Welcome.LedgerFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range led.Entries {
		if e.Login == "ned" {
			t.Errorf("after the refused AUTH the ledger has ned as %q", e.Status)
		}
	}
	if rep := run(Request{}); !slices.Equal(rep.Sent, []string{"ned"}) {
		t.Fatalf("with the right password again: sent %v, want ned", rep.Sent)
	}
	if msgs := postfix.WaitSinkMessages(t, 8, 30*time.Second); !slices.Equal(msgs[7].To, []string{"ned@corp.example.test"}) {
		t.Fatalf("the retried letter reached smtp-sink for %v", msgs[7].To)
	}
}

// comparable drops what Postfix adds or what changes between a dry run and a send: the
// Received: field (with its continuation lines) and Date:.
func comparable(raw []byte) string {
	header, body, _ := bytes.Cut(raw, []byte("\n\n"))
	var keep []string
	skipping := false
	for _, line := range strings.Split(string(header), "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			if !skipping {
				keep = append(keep, line)
			}
			continue
		}
		skipping = strings.HasPrefix(line, "Received:") || strings.HasPrefix(line, "Date:")
		if !skipping {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n") + "\n\n" + string(body)
}
