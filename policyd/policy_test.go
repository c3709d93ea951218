package policyd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/postern-mail/postern/internal/ratelimit"
)

const rejectIntern = "REJECT 5.7.1 interns may only send to internal addresses"
const rejectSender = "REJECT 5.7.1 sender address not owned by your login"

// neverOK checks DESIGN.md rule 4 on every verdict a test sees.
func neverOK(t *testing.T, v Verdict) {
	t.Helper()
	a := v.Answer()
	for _, ok := range []string{"DUNNO", "DEFER_IF_PERMIT ", "DEFER ", "REJECT ", "4", "5"} {
		if strings.HasPrefix(a, ok) {
			return
		}
	}
	t.Errorf("answer %q is not one of DUNNO, DEFER_IF_PERMIT, DEFER, REJECT or a 4xx/5xx text", a)
}

func TestInternalOnly(t *testing.T) {
	d := newTestDaemon(t, basePolicyd)
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"intern to a colleague", rcpt("carol", "carol@corp.example.test", "bob@corp.example.test"), "DUNNO"},
		{"intern, recipient in upper case", rcpt("carol", "carol@corp.example.test", "BOB@Corp.Example.TEST"), "DUNNO"},
		{"intern to an extension", rcpt("carol", "carol@corp.example.test", "bob+q3@corp.example.test"), "DUNNO"},
		{"intern to a second domain", rcpt("carol", "carol@corp.example.test", "erin@other.example.test"), "DUNNO"},
		{"intern to an alias domain", rcpt("carol", "carol@corp.example.test", "bob@alias.example.test"), "DUNNO"},
		{"intern to an internal nested list", rcpt("carol", "carol@corp.example.test", "all@corp.example.test"), "DUNNO"},
		{"intern to an external address", rcpt("carol", "carol@corp.example.test", "x@external.example"), rejectIntern},
		{"intern to a list with an external member", rcpt("carol", "carol@corp.example.test", "partners@corp.example.test"), rejectIntern},
		{"intern to a contact", rcpt("carol", "carol@corp.example.test", "partner@corp.example.test"), rejectIntern},
		{"intern to a forwarding mailbox", rcpt("carol", "carol@corp.example.test", "frank@corp.example.test"), rejectIntern},
		{"intern to a percent route", rcpt("carol", "carol@corp.example.test", "x%evil.example@corp.example.test"), rejectIntern},
		{"intern to a bang route", rcpt("carol", "carol@corp.example.test", "evil.example!x@corp.example.test"), rejectIntern},
		{"intern to a quoted local part", rcpt("carol", "carol@corp.example.test", `"bob"@corp.example.test`), rejectIntern},
		{"intern to a look-alike domain", rcpt("carol", "carol@corp.example.test", "bob@corp.example.test.evil.example"), rejectIntern},
		{"intern to an IDN look-alike", rcpt("carol", "carol@corp.example.test", "bob@corp.exаmple.test"), rejectIntern},
		{"intern to an unknown internal user", rcpt("carol", "carol@corp.example.test", "nobody@corp.example.test"), rejectIntern},
		{"intern to a disabled user", rcpt("carol", "carol@corp.example.test", "dave@corp.example.test"), rejectIntern},
		{"intern to a malformed address", rcpt("carol", "carol@corp.example.test", "not an address"), rejectIntern},
		{"nested-group intern to an external address", rcpt("ivan", "ivan@corp.example.test", "x@external.example"), rejectIntern},
		{"intern logged in as DOMAIN\\login", rcpt(`CORP\carol`, "carol@corp.example.test", "x@external.example"), rejectIntern},
		{"intern logged in by UPN", rcpt("Carol@corp.example.test", "carol@corp.example.test", "x@external.example"), rejectIntern},
		{"staff to an external address", rcpt("alice", "alice@corp.example.test", "x@external.example"), "DUNNO"},
		{"staff to the list with an external member", rcpt("erin", "erin@corp.example.test", "partners@corp.example.test"), "DUNNO"},
		{"webmail without SASL: intern by envelope sender", at("RCPT", "127.0.0.1", "", "carol@corp.example.test", "x@external.example"), rejectIntern},
		{"webmail without SASL: intern by secondary address", at("RCPT", "127.0.0.1", "", "c.clark@corp.example.test", "x@external.example"), rejectIntern},
		{"webmail without SASL: staff", at("RCPT", "127.0.0.1", "", "alice@corp.example.test", "x@external.example"), "DUNNO"},
		{"no SASL from outside: the envelope sender is not believed", at("RCPT", outside, "", "carol@corp.example.test", "x@external.example"), "DUNNO"},
		{"exempt network", at("RCPT", "192.0.2.10", "carol", "carol@corp.example.test", "x@external.example"), "DUNNO"},
		{"trusted relay", at("RCPT", "192.0.2.25", "carol", "carol@corp.example.test", "x@external.example"), "DUNNO"},
		{"not at MAIL", at("MAIL", outside, "carol", "carol@corp.example.test", ""), "DUNNO"},
		{"not at END-OF-MESSAGE", at("END-OF-MESSAGE", outside, "carol", "carol@corp.example.test", ""), "DUNNO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := d.decide(tt.req)
			neverOK(t, v)
			if got := v.Answer(); got != tt.want {
				t.Fatalf("answer %q, want %q (rule %s: %s)", got, tt.want, v.Rule, v.Reason)
			}
			if v.Action == Reject && (v.Rule != ruleInternalOnly || v.Reason == "") {
				t.Errorf("rule %q, reason %q", v.Rule, v.Reason)
			}
		})
	}
}

func TestSenderLogin(t *testing.T) {
	d := newTestDaemon(t, basePolicyd)
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"own primary address", rcpt("bob", "bob@corp.example.test", "erin@corp.example.test"), "DUNNO"},
		{"own secondary address", rcpt("alice", "a.anderson@corp.example.test", "x@external.example"), "DUNNO"},
		{"own address in another domain", rcpt("alice", "alice@other.example.test", "x@external.example"), "DUNNO"},
		{"own address with an extension, upper case", rcpt("bob", "Bob+Lists@CORP.example.test", "x@external.example"), "DUNNO"},
		{"own address in an alias domain", rcpt("bob", "bob@alias.example.test", "x@external.example"), "DUNNO"},
		{"someone else's address", rcpt("bob", "alice@corp.example.test", "x@external.example"), rejectSender},
		{"someone else's secondary address", rcpt("bob", "a.anderson@corp.example.test", "x@external.example"), rejectSender},
		{"a group the user is in", rcpt("bob", "sales@corp.example.test", "x@external.example"), "DUNNO"},
		{"a group the user is in, nested", rcpt("ivan", "interns@corp.example.test", "bob@corp.example.test"), "DUNNO"},
		{"a group the user is not in", rcpt("alice", "sales@corp.example.test", "x@external.example"), rejectSender},
		{"a contact's address", rcpt("erin", "partner@corp.example.test", "x@external.example"), rejectSender},
		{"an external address", rcpt("bob", "bob@gmail.example", "x@external.example"), rejectSender},
		{"a disabled user's address", rcpt("bob", "dave@corp.example.test", "x@external.example"), rejectSender},
		{"a malformed sender", rcpt("bob", "bob@@corp", "x@external.example"), rejectSender},
		{"a login the directory does not know", rcpt("mallory", "bob@corp.example.test", "x@external.example"), rejectSender},
		{"the null sender", rcpt("bob", "", "x@external.example"), "DUNNO"},
		{"checked at MAIL too", at("MAIL", outside, "bob", "alice@corp.example.test", ""), rejectSender},
		{"no SASL: not this rule's business", at("RCPT", "127.0.0.1", "", "alice@corp.example.test", "x@external.example"), "DUNNO"},
		{"exempt login", rcpt("scanner", "alice@corp.example.test", "x@external.example"), "DUNNO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := d.decide(tt.req)
			neverOK(t, v)
			if got := v.Answer(); got != tt.want {
				t.Fatalf("answer %q, want %q (rule %s: %s)", got, tt.want, v.Rule, v.Reason)
			}
		})
	}
	t.Run("group addresses can be turned off", func(t *testing.T) {
		d := newTestDaemon(t, basePolicyd+"  sender_login: {group_addresses: false}\n")
		if v := d.decide(rcpt("bob", "sales@corp.example.test", "x@external.example")); v.Answer() != rejectSender {
			t.Fatalf("answer %q", v.Answer())
		}
	})
	t.Run("can be turned off", func(t *testing.T) {
		d := newTestDaemon(t, basePolicyd+"  sender_login: {enforce: false}\n")
		if v := d.decide(rcpt("bob", "alice@corp.example.test", "x@external.example")); v.Answer() != "DUNNO" {
			t.Fatalf("answer %q", v.Answer())
		}
	})
}

func TestDirectoryUnavailableFailsClosed(t *testing.T) {
	d := newTestDaemon(t, basePolicyd+"  rate_limits: [{name: all, window: 1h, messages: 100}]\n", testOptions{unsynced: true})
	const temp = "451 4.3.0 directory temporarily unavailable, try again later"
	for _, tt := range []struct {
		name string
		req  *Request
		want string
	}{
		{"intern", rcpt("carol", "carol@corp.example.test", "x@external.example"), temp},
		{"staff: cannot tell it is not an intern", rcpt("alice", "alice@corp.example.test", "x@external.example"), temp},
		{"webmail without SASL", at("RCPT", "127.0.0.1", "", "carol@corp.example.test", "x@external.example"), temp},
		{"rate limits without groups still count", eom("bob", "i1", 1, 100), "DUNNO"},
		{"inbound mail needs no directory", at("RCPT", outside, "", "x@external.example", "bob@corp.example.test"), "DUNNO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := d.decide(tt.req)
			neverOK(t, v)
			if v.Answer() != tt.want {
				t.Fatalf("answer %q, want %q (%s)", v.Answer(), tt.want, v.Reason)
			}
		})
	}
	t.Run("rate limits by group cannot choose", func(t *testing.T) {
		d := newTestDaemon(t, "  sender_login: {enforce: false}\n  rate_limits: [{name: interns, groups: [Interns], window: 1h, messages: 100}]\n", testOptions{unsynced: true})
		if v := d.decide(eom("carol", "i1", 1, 100)); v.Answer() != temp || v.Rule != "rate_limit:interns" {
			t.Fatalf("answer %q by %s", v.Answer(), v.Rule)
		}
	})
}

const rateYAML = `  rate_limits:
    - {name: interns-daily, groups: [Interns], window: 24h, messages: 2, recipients: 5}
    - name: everyone
      windows: [{window: 1h, messages: 3}, {window: 24h, messages: 10, bytes: 1KB}]
      overrides:
        - {logins: [alice], window: 1h, messages: 5}
        - {logins: [erin], unlimited: true}
    - {name: per-client, identity: client_address, window: 1h, messages: 20}
`

func TestRateLimits(t *testing.T) {
	const deferMsgs = "DEFER_IF_PERMIT 4.7.1 sending limit reached: %d messages per %s, try again later"
	type step struct {
		req  *Request
		want string
	}
	send := func(login string, n int) []step { // n messages: a RCPT check, then the count
		var s []step
		for i := range n {
			s = append(s, step{rcpt(login, login+"@corp.example.test", "bob@corp.example.test"), "DUNNO"},
				step{eom(login, fmt.Sprintf("%s-%d", login, i), 1, 100), "DUNNO"})
		}
		return s
	}
	then := func(s []step, more ...step) []step { return append(s, more...) }
	tests := []struct {
		name  string
		steps []step
		rule  string // the rule that deferred last, "" for none
	}{
		{"the 4th message in an hour waits at RCPT", then(send("bob", 3),
			step{rcpt("bob", "bob@corp.example.test", "erin@corp.example.test"), fmt.Sprintf(deferMsgs, 3, "1h")}),
			"rate_limit:everyone"},
		{"and at END-OF-MESSAGE", then(send("bob", 3), step{eom("bob", "bob-x", 1, 100), fmt.Sprintf(deferMsgs, 3, "1h")}), "rate_limit:everyone"},
		{"every spelling of a login shares its budget", then(send("bob", 2),
			step{eom(`CORP\bob`, "a", 1, 100), "DUNNO"},
			step{eom("BOB@corp.example.test", "b", 1, 100), fmt.Sprintf(deferMsgs, 3, "1h")}), "rate_limit:everyone"},
		{"a retried request is counted once", []step{
			{eom("bob", "same", 1, 100), "DUNNO"}, {eom("bob", "same", 1, 100), "DUNNO"}, {eom("bob", "same", 1, 100), "DUNNO"},
			{eom("bob", "other-1", 1, 100), "DUNNO"}, {eom("bob", "other-2", 1, 100), "DUNNO"},
			{eom("bob", "other-3", 1, 100), fmt.Sprintf(deferMsgs, 3, "1h")}}, "rate_limit:everyone"},
		{"a group's rule: interns get 2 a day", then(send("carol", 2),
			step{rcpt("carol", "carol@corp.example.test", "bob@corp.example.test"), fmt.Sprintf(deferMsgs, 2, "24h")}), "rate_limit:interns-daily"},
		{"recipients are counted at END-OF-MESSAGE", []step{{eom("carol", "m1", 4, 100), "DUNNO"},
			{eom("carol", "m2", 2, 100), "DEFER_IF_PERMIT 4.7.1 sending limit reached: 5 recipients per 24h, try again later"},
			{eom("carol", "m3", 1, 100), "DUNNO"}}, "rate_limit:interns-daily"},
		{"bytes, in the longer window", []step{{eom("bob", "m1", 1, 1000), "DUNNO"},
			{eom("bob", "m2", 1, 100), "DEFER_IF_PERMIT 4.7.1 sending limit reached: 1 KB per 24h, try again later"}}, "rate_limit:everyone"},
		{"an override raises the limit", then(send("alice", 5),
			step{eom("alice", "a6", 1, 100), fmt.Sprintf(deferMsgs, 5, "1h")}), "rate_limit:everyone"},
		{"an unlimited override", send("erin", 6), ""},
		{"a rule by client address counts everyone from there", then(send("erin", 12), then(send("alice", 5), then(send("bob", 3),
			step{eom("erin", "e21", 1, 100), fmt.Sprintf(deferMsgs, 20, "1h")})...)...), "rate_limit:per-client"},
		{"without SASL the client address is the identity", []step{
			{at("END-OF-MESSAGE", "203.0.113.9", "", "x@external.example", ""), "DUNNO"},
			{at("END-OF-MESSAGE", "203.0.113.9", "", "y@external.example", ""), "DUNNO"},
			{at("END-OF-MESSAGE", "203.0.113.9", "", "z@external.example", ""), "DUNNO"},
			{at("RCPT", "203.0.113.9", "", "w@external.example", "bob@corp.example.test"), fmt.Sprintf(deferMsgs, 3, "1h")},
			{at("RCPT", "203.0.113.10", "", "w@external.example", "bob@corp.example.test"), "DUNNO"}}, "rate_limit:everyone"},
		{"exempt clients are not counted", []step{
			{at("END-OF-MESSAGE", "192.0.2.25", "", "", ""), "DUNNO"}, {at("END-OF-MESSAGE", "192.0.2.25", "", "", ""), "DUNNO"},
			{at("END-OF-MESSAGE", "192.0.2.25", "", "", ""), "DUNNO"}, {at("END-OF-MESSAGE", "192.0.2.25", "", "", ""), "DUNNO"},
			{at("END-OF-MESSAGE", "192.0.2.25", "", "", ""), "DUNNO"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDaemon(t, basePolicyd+rateYAML)
			deferredBy := ""
			for i, s := range tt.steps {
				s.req.Instance = cond(s.req.Instance == "test.instance", fmt.Sprint("step-", i), s.req.Instance)
				v := d.decide(s.req)
				neverOK(t, v)
				if v.Action != Dunno {
					deferredBy = v.Rule
				}
				if v.Answer() != s.want {
					t.Fatalf("step %d (%s %s): answer %q, want %q (%s: %s)", i+1, s.req.ProtocolState, s.req.SASLUsername, v.Answer(), s.want, v.Rule, v.Reason)
				}
			}
			if deferredBy != tt.rule {
				t.Errorf("deferred by %q, want %q", deferredBy, tt.rule)
			}
		})
	}
}

func cond[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// failingStore stands in for a Redis that does not answer.
type failingStore struct{}

func (failingStore) Take(context.Context, ratelimit.Request) (ratelimit.Outcome, error) {
	return ratelimit.Outcome{}, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}
func (failingStore) Name() string { return "redis" }
func (failingStore) Close() error { return nil }

func TestStoreDown(t *testing.T) {
	for _, tt := range []struct {
		onFailure, want, action string
	}{
		{"dunno", "DUNNO", "dunno"},
		{"defer", "451 4.3.0 rate limit service temporarily unavailable, try again later", "defer"},
	} {
		t.Run(tt.onFailure, func(t *testing.T) {
			d := newTestDaemon(t, basePolicyd+rateYAML+"  on_redis_failure: "+tt.onFailure+"\n")
			d.policy.Store(NewPolicy(d.cfg, d.resolver, failingStore{}, d.failures))
			for range 3 {
				if v := d.Daemon.decide(eom("bob", "x", 1, 100)); v.Answer() != tt.want || v.Rule != ruleStoreDown {
					t.Fatalf("answer %q by %s", v.Answer(), v.Rule)
				}
			}
			if n := counter(t, d.metrics.storeErrors, "redis", tt.action); n != 3 {
				t.Errorf("postern_policyd_rate_limit_store_errors_total{store=redis,action=%s} = %v, want 3", tt.action, n)
			}
			if n := counter(t, d.metrics.decisions, ruleStoreDown, "end_of_message", strings.ToUpper(tt.action)); n != 3 {
				t.Errorf("decisions by %s: %v, want 3", ruleStoreDown, n)
			}
			if warned := d.logs.FilterMessageSnippet("rate limits cannot be counted").Len(); warned != 1 {
				t.Errorf("%d warnings for 3 failures within 10 s, want 1", warned)
			}
		})
	}
}

func TestReloadSwapsRules(t *testing.T) {
	d := newTestDaemon(t, basePolicyd)
	if v := d.decide(rcpt("alice", "alice@corp.example.test", "x@external.example")); v.Action != Dunno {
		t.Fatal(v.Answer())
	}
	next := *d.cfg
	next.Policyd.InternalOnly.Groups = []string{"AllStaff"}
	if err := d.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if v := d.decide(rcpt("alice", "alice@corp.example.test", "x@external.example")); v.Answer() != rejectIntern {
		t.Fatalf("after the reload: %q", v.Answer())
	}
}
