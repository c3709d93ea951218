package policyd

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-mail/postern/internal/service/servicetest"
	"github.com/postern-mail/postern/internal/testbench"
)

// runPolicyd starts a policyd from a configuration file's text, as `postern policyd`
// would, with the directory synced once (a failed sync is left as it is: its lookups are
// temporary failures), and stops it when the test ends.
func runPolicyd(t *testing.T, yaml string) (*Daemon, *prometheus.Registry) {
	t.Helper()
	deps := servicetest.Deps(t, t.TempDir(), yaml)
	return servicetest.Start(t, deps, New), deps.Registry.(*prometheus.Registry) // servicetest.Deps gives each a new one
}

// policyRestrictions wires Postfix to a policyd the way examples/postfix/policyd-main.cf
// does: relay control first (smtpd_relay_restrictions), then the policy before any
// permit, and the policy last at end of data.
func policyRestrictions(addr string) map[string]string {
	return map[string]string{
		"postern_policy":                 "check_policy_service { inet:" + addr + ", { default_action = 451 4.3.5 policy service unavailable } }",
		"smtpd_recipient_restrictions":   "$postern_policy, permit_mynetworks, reject",
		"smtpd_end_of_data_restrictions": "$postern_policy",
	}
}

func message(from, subject string) []byte {
	return fmt.Appendf(nil, "From: %s\nSubject: %s\nMessage-ID: <%s@test>\n\nbody\n", from, subject, strings.ReplaceAll(subject, " ", "-"))
}

type smtpCase struct {
	name       string
	login      string // XCLIENT LOGIN=, "" for none
	from, to   string
	wantCode   int
	wantInText string
}

func (c smtpCase) run(t *testing.T, smtpAddr string) {
	t.Helper()
	code, text, err := testbench.SendMail(smtpAddr, testbench.Mail{From: c.from, To: []string{c.to}, XClientLogin: c.login, Data: message(c.from, c.name)})
	if err != nil { // Postfix itself broke: every later case would wait for the same timeout
		t.Fatalf("%s: %v", c.name, err)
	}
	if code != c.wantCode || !strings.Contains(text, c.wantInText) {
		t.Errorf("%s: %s -> %s as %q: %d %s; want %d %q", c.name, c.from, c.to, c.login, code, text, c.wantCode, c.wantInText)
	}
}

// TestThroughPostfixWithSamba: interns and the sender/login match through a real Postfix
// (XCLIENT LOGIN= stands in for SASL), the real Samba AD and a real Redis.
func TestThroughPostfixWithSamba(t *testing.T) {
	s := testbench.StartSamba(t)
	s.LDIF(t, testbench.SeedCorp(s))
	r := testbench.StartRedis(t)
	policydYAML := func(port int) string {
		return fmt.Sprintf(`internal_networks: [127.0.0.0/8]
redis: {addrs: [%s]}
policyd:
  listen: inet:127.0.0.1:%d
  internal_only: {groups: [Interns], reject_text: "interns may only send to internal addresses"}
  rate_limits: [{name: everyone-hourly, window: 1h, messages: 300}]
`, r.Addr, port)
	}
	d, _ := runPolicyd(t, testbench.CorpConfig(s, filepath.Join(t.TempDir(), "state"), policydYAML(testbench.FreePort(t))))
	p := testbench.StartPostfix(t, testbench.PostfixOptions{MainCF: policyRestrictions(d.Addr())})

	const intern = "interns may only send to internal addresses"
	const notOwned = "sender address not owned by your login"
	delivered := 0
	for _, c := range []smtpCase{
		{"intern to a colleague", "carol", "carol@corp.example.test", "bob@corp.example.test", 250, "queued"},
		{"intern to an external address", "carol", "carol@corp.example.test", "someone@external.example", 554, "5.7.1"},
		{"intern to a list with an external member", "carol", "carol@corp.example.test", "partners@corp.example.test", 554, "5.7.1 <partners@corp.example.test>: Recipient address rejected: " + intern},
		{"intern to a contact", "carol", "carol@corp.example.test", "partner@corp.example.test", 554, "5.7.1"},
		{"intern to a look-alike domain", "carol", "carol@corp.example.test", "bob@corp.example.test.evil.example", 554, "5.7.1"},
		{"staff to the list with an external member", "erin", "erin@corp.example.test", "partners@corp.example.test", 250, "queued"},
		{"webmail without SASL: the intern by envelope sender", "", "carol@corp.example.test", "someone@external.example", 554, intern},
		{"sending as someone else's address", "carol", "erin@corp.example.test", "bob@corp.example.test", 554, notOwned},
		{"sending as one's own secondary address", "carol", "c.clark@corp.example.test", "bob@corp.example.test", 250, "queued"},
		{"sending as a group one belongs to", "carol", "interns@corp.example.test", "bob@corp.example.test", 250, "queued"},
	} {
		c.run(t, p.SMTPAddr)
		if c.wantCode == 250 {
			delivered++
		}
	}
	msgs := p.WaitSinkMessages(t, delivered, 30*time.Second)
	if len(msgs) != delivered {
		t.Errorf("smtp-sink got %d messages, want %d", len(msgs), delivered)
	}

	t.Run("Samba stopped before the first sync: the intern waits", func(t *testing.T) {
		s.Stop()
		down, _ := runPolicyd(t, testbench.CorpConfig(s, filepath.Join(t.TempDir(), "state"), policydYAML(testbench.FreePort(t))))
		p.Postconf(t, policyRestrictions(down.Addr()))
		for _, c := range []smtpCase{
			{"intern", "carol", "carol@corp.example.test", "bob@corp.example.test", 451, "4.3.0"},
			{"intern to an external address", "carol", "carol@corp.example.test", "someone@external.example", 451, "4.3.0 <someone@external.example>: Recipient address rejected: directory temporarily unavailable"},
			{"staff: not known not to be an intern", "erin", "erin@corp.example.test", "someone@external.example", 451, "4.3.0"},
		} {
			c.run(t, p.SMTPAddr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := down.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		smtpCase{"policyd itself down: Postfix's default_action", "erin", "erin@corp.example.test", "bob@corp.example.test", 451, "4.3.5"}.run(t, p.SMTPAddr)
	})
}

// TestRateLimitThroughPostfix: a limit of N messages per window lets exactly N through
// Postfix and defers the next at RCPT, two policyd instances on one Redis share the
// budget, a retried request is counted once, and with Redis stopped mail flows and the
// metric says so.
func TestRateLimitThroughPostfix(t *testing.T) {
	r := testbench.StartRedis(t)
	dirFile, _ := filepath.Abs("testdata/directory.yaml")
	yaml := func(port int) string {
		return fmt.Sprintf(`domains: [corp.example.test, other.example.test]
state_dir: %s
directory: {backend: static, static: {file: %s}}
redis: {addrs: [%s], timeout: 1s}
policyd:
  listen: inet:127.0.0.1:%d
  rate_limits: [{name: five-an-hour, window: 1h, messages: 5}]
`, filepath.Join(t.TempDir(), "state"), dirFile, r.Addr, port)
	}
	a, regA := runPolicyd(t, yaml(testbench.FreePort(t)))
	b, _ := runPolicyd(t, yaml(testbench.FreePort(t)))
	smtpB := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(t))
	main := policyRestrictions(a.Addr())
	main["policy_b"] = "check_policy_service inet:" + b.Addr()
	// The second smtpd asks the second policyd.
	p := testbench.StartPostfix(t, testbench.PostfixOptions{
		MainCF:   main,
		MasterCF: []string{smtpB + " inet n - n - - smtpd -o smtpd_recipient_restrictions=$policy_b -o smtpd_end_of_data_restrictions=$policy_b"},
	})
	if err := testbench.WaitTCP(smtpB, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	send := func(via string) (int, string) {
		code, text, err := testbench.SendMail(via, testbench.Mail{From: "bob@corp.example.test", To: []string{"x@external.example"},
			XClientLogin: "bob", Data: message("bob@corp.example.test", "rate")})
		if err != nil {
			t.Fatal(err)
		}
		return code, text
	}
	for i, via := range []string{p.SMTPAddr, smtpB, p.SMTPAddr, smtpB, p.SMTPAddr} {
		if code, text := send(via); code != 250 {
			t.Fatalf("message %d of 5 (via %s): %d %s", i+1, via, code, text)
		}
	}
	for _, via := range []string{p.SMTPAddr, smtpB} {
		if code, text := send(via); code != 450 || !strings.Contains(text, "4.7.1 <x@external.example>: Recipient address rejected: sending limit reached: 5 messages per 1h") {
			t.Errorf("6th message via %s: %d %s; want 450 4.7.1 at RCPT", via, code, text)
		}
	}
	if msgs := p.WaitSinkMessages(t, 5, 30*time.Second); len(msgs) != 5 {
		t.Errorf("smtp-sink got %d messages, want exactly 5", len(msgs))
	}

	t.Run("a retried request is counted once, on either instance", func(t *testing.T) {
		ca, cb := dialPolicy(t, "tcp", a.Addr()), dialPolicy(t, "tcp", b.Addr())
		ask := func(c *policyClient, instance string) string {
			got, err := c.ask(eom("alice", instance, 1, 500))
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		for _, c := range []*policyClient{ca, cb, ca} {
			if got := ask(c, "retried.1"); got != "DUNNO" {
				t.Fatalf("the same message again: %q", got)
			}
		}
		for i := 2; i <= 5; i++ {
			if got := ask([]*policyClient{ca, cb}[i%2], fmt.Sprint("other.", i)); got != "DUNNO" {
				t.Fatalf("message %d: %q", i, got)
			}
		}
		if got := ask(ca, "other.6"); !strings.HasPrefix(got, "DEFER_IF_PERMIT 4.7.1") {
			t.Fatalf("message 6: %q; want deferred", got)
		}
	})

	t.Run("Redis stopped: mail flows, and the metric shows it", func(t *testing.T) {
		r.Stop()
		if code, text := send(p.SMTPAddr); code != 250 {
			t.Fatalf("bob (over his limit) with Redis stopped: %d %s; want 250 (on_redis_failure: dunno)", code, text)
		}
		if n := counter(t, a.metrics.storeErrors, "redis", "dunno"); n < 2 { // RCPT and END-OF-MESSAGE
			t.Errorf("postern_policyd_rate_limit_store_errors_total{store=redis,action=dunno} = %v, want >= 2", n)
		}
		if !gathered(t, regA, "postern_policyd_rate_limit_store_errors_total") {
			t.Error("the store error metric is not in the registry /metrics serves")
		}
	})
}

// gathered reports whether the registry has a series of the family with a value > 0.
func gathered(t *testing.T, reg *prometheus.Registry, name string) bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetCounter().GetValue() > 0 {
				return true
			}
		}
	}
	return false
}
