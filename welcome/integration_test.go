package welcome

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
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

// TestAgainstSambaAndPostfix runs the scenario against a real Samba AD DC and a
// real Postfix, whose relayhost is an smtp-sink that keeps every message.
func TestAgainstSambaAndPostfix(t *testing.T) {
	samba := testbench.StartSamba(t)
	samba.LDIF(t, testbench.SeedCorp(samba))
	postfix := testbench.StartPostfix(t, testbench.PostfixOptions{})

	ex := examples(t)
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "postern.yaml")
	yml := testbench.CorpConfig(samba, filepath.Join(cfgDir, "state"), fmt.Sprintf(`welcome:
  from: "IT Service Desk <it@corp.example.test>"
  subject: "Welcome to Corp, {{.DisplayName}} · 欢迎加入"
  html_template_file: %s/welcome.html
  text_template_file: %s/welcome.txt
  smtp: {server: %q, allow_plaintext: true, timeout: 10s}
`, ex, ex, postfix.SMTPAddr))
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	opts, err := directory.OptionsFrom(c, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.StateFile = ""
	var out bytes.Buffer
	job, err := New(Options{Config: c.Welcome, Directory: directory.New(opts), Log: log, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
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
