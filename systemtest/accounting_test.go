package systemtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // GBK and the other charsets of the workload

	"github.com/postern-mail/postern/internal/testbench"
)

// copyOf is one delivered copy of a message: in a person's mailbox, at the external
// relay (smtp-sink) for one recipient, or in a shadow mailbox's folder.
type copyOf struct {
	where string // "alice", "sink:<addr>", "shadow@corp.example.test Outbound/2026/12"
	raw   []byte
}

// report is the accounting of a run. Every list names messages by their number and
// Message-ID; the run passes only if all the problem lists are empty.
type report struct {
	sent, accepted, refusedByRule, throttled int
	tempfails                                map[string]int    // by fault in force
	tempfailSample                           map[string]string // one reply per fault
	faults                                   []string
	submitTime                               time.Duration // from the first message to the last final reply

	// resent are copies Postfix delivered twice after it logged "message may be sent
	// more than once": the delivery agent died after the message's end but before its
	// answer, the case Postfix documents (RFC 1047). Reported, not a failure.
	resent []string

	missing, duplicated, misdelivered, bounced, leaked, damaged, unarchived, misarchived, unexpectedReplies []string
}

func (r *report) ok() bool {
	for _, l := range r.problemLists() {
		if len(l.items) > 0 {
			return false
		}
	}
	return true
}

type problemList struct {
	name  string
	items []string
}

func (r *report) problemLists() []problemList {
	return []problemList{
		{"lost (not in an intended mailbox or at the relay)", r.missing},
		{"duplicated", r.duplicated},
		{"delivered where it should not be", r.misdelivered},
		{"bounced (status=bounced in the mail log)", r.bounced},
		{"leaked a Bcc address or archive headers", r.leaked},
		{"damaged (body token or disclaimer wrong)", r.damaged},
		{"not archived with its full envelope", r.unarchived},
		{"archived where it should not be", r.misarchived},
		{"answered with a code the rules do not call for", r.unexpectedReplies},
	}
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "postern system test: %d messages sent, %d accepted, %d refused by the interns rule, %d held by the rate limit\n",
		r.sent, r.accepted, r.refusedByRule, r.throttled)
	b.WriteString("faults (each held, then repaired):\n")
	for _, f := range r.faults {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	b.WriteString("4xx replies seen by the clients, by the fault in force (retried):\n")
	names := make([]string, 0, len(r.tempfails))
	for k := range r.tempfails {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  %5d  %s, e.g. %s\n", r.tempfails[k], k, r.tempfailSample[k])
	}
	fmt.Fprintf(&b, "%d copies delivered again after Postfix logged \"may be sent more than once\" (allowed)\n", len(r.resent))
	for _, item := range r.resent {
		fmt.Fprintf(&b, "  %s\n", item)
	}
	for _, l := range r.problemLists() {
		fmt.Fprintf(&b, "%d %s\n", len(l.items), l.name)
		for i, item := range l.items {
			if i == 20 {
				fmt.Fprintf(&b, "  … and %d more\n", len(l.items)-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", item)
		}
	}
	return b.String()
}

// account reads every mailbox, the relay's dumps, the shadow mailboxes and the mail log,
// and checks each message against what the rules say must become of it.
func account(t testing.TB, st *stack, msgs []*letter, results []*result) *report {
	rep := &report{sent: len(msgs), tempfails: map[string]int{}, tempfailSample: map[string]string{}}
	copies := map[string][]copyOf{} // by Message-ID
	for _, p := range st.company.people {
		ms, err := st.cyrus.ReadMessages(p.addr, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			copies[m.MessageID] = append(copies[m.MessageID], copyOf{where: p.login, raw: m.Raw})
		}
	}
	for _, sm := range st.postfix.SinkMessages(t) {
		for _, rcpt := range sm.To {
			copies[sm.MessageID] = append(copies[sm.MessageID], copyOf{where: "sink:" + strings.ToLower(rcpt), raw: sm.Raw})
		}
	}
	months := []string{time.Now().UTC().Format("2006/01")}
	for _, mailbox := range []string{"shadow@corp.example.test", "shadow@other.example.test"} {
		for _, folder := range []string{inbound, outbound, internal, "Unjournaled"} {
			for _, month := range months {
				f := "INBOX/" + folder + "/" + month
				ms, err := st.cyrus.ReadMessages(mailbox, f)
				if errors.Is(err, testbench.ErrNoFolder) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					copies[m.MessageID] = append(copies[m.MessageID], copyOf{where: mailbox + " " + folder, raw: m.Raw})
				}
			}
		}
	}
	maillog, err := os.ReadFile(st.postfix.MailLog)
	if err != nil {
		t.Fatal(err)
	}
	st.resent = mayBeSentTwice(string(maillog))
	known := map[string]bool{}
	for i, m := range msgs {
		known[m.id] = true
		res := results[i]
		for _, tf := range res.tempfails {
			cut := strings.LastIndex(tf, " [")
			fault := tf[cut+2 : len(tf)-1]
			if fault == "" {
				fault = "(none in force)"
			}
			rep.tempfails[fault]++
			if rep.tempfailSample[fault] == "" {
				rep.tempfailSample[fault] = tf[:cut]
			}
		}
		for _, p := range res.problems {
			rep.unexpectedReplies = append(rep.unexpectedReplies, fmt.Sprintf("#%d %s: %s", m.n, m.id, p))
		}
		switch {
		case res.accepted:
			rep.accepted++
			st.checkDelivered(rep, m, copies[m.id])
		case m.throttled && res.refused != "":
			rep.throttled++
			st.checkNowhere(rep, m, copies[m.id])
		case res.refused != "":
			rep.refusedByRule++
			st.checkNowhere(rep, m, copies[m.id])
		}
	}
	for id, cs := range copies {
		if !known[id] {
			rep.misdelivered = append(rep.misdelivered, fmt.Sprintf("a message the test did not send (%s) in %s", id, cs[0].where))
		}
	}
	throttledAccepted := 0
	throttledSent := 0
	for i, m := range msgs {
		if m.throttled {
			throttledSent++
			if results[i].accepted {
				throttledAccepted++
			}
		}
	}
	if throttledAccepted > throttleLimit {
		rep.unexpectedReplies = append(rep.unexpectedReplies, fmt.Sprintf("%s sent %d messages, over its limit of %d per hour",
			throttledLogin, throttledAccepted, throttleLimit))
	}
	if throttledSent > throttleLimit && rep.throttled == 0 {
		rep.unexpectedReplies = append(rep.unexpectedReplies, fmt.Sprintf("%s sent %d messages and none was held by its limit of %d",
			throttledLogin, throttledSent, throttleLimit))
	}
	for _, line := range strings.Split(string(maillog), "\n") {
		if strings.Contains(line, "status=bounced") {
			rep.bounced = append(rep.bounced, line)
		}
	}
	return rep
}

// checkNowhere: a refused message must not have gone anywhere.
func (st *stack) checkNowhere(rep *report, m *letter, cs []copyOf) {
	for _, c := range cs {
		rep.misdelivered = append(rep.misdelivered, fmt.Sprintf("#%d %s was refused but is in %s", m.n, m.id, c.where))
	}
}

// checkDelivered compares the copies of an accepted message with its envelope.
func (st *stack) checkDelivered(rep *report, m *letter, cs []copyOf) {
	name := fmt.Sprintf("#%d %s", m.n, m.id)
	want := map[string]int{}       // person login or "sink:addr" -> copies expected
	shadows := map[string]bool{}   // shadow mailboxes expected
	bccOwners := map[string]bool{} // copies that may name a Bcc: the Bcc recipients' own
	if s := st.company.shadowOf(m.mail.From); s != "" {
		shadows[s] = true
	}
	for _, rcpt := range m.mail.To {
		ps := st.company.resolve(rcpt)
		if ps == nil {
			want["sink:"+strings.ToLower(rcpt)]++
		}
		for _, p := range ps {
			want[p.login]++
		}
		if s := st.company.shadowOf(rcpt); s != "" {
			shadows[s] = true
		}
		for _, b := range m.bcc {
			if b == rcpt {
				bccOwners["sink:"+strings.ToLower(rcpt)] = true
				for _, p := range ps {
					bccOwners[p.login] = true
				}
			}
		}
	}
	got := map[string]int{}
	archived := map[string]int{}
	sentHeader := strings.ToLower(string(headerOf(m.mail.Data))) // a Bcc to oneself is in From anyway
	for _, c := range cs {
		if mailbox, folder, ok := strings.Cut(c.where, " "); ok && strings.HasPrefix(mailbox, "shadow@") {
			archived[mailbox]++
			st.checkArchiveCopy(rep, m, name, mailbox, folder, shadows[mailbox], c.raw)
			continue
		}
		got[c.where]++
		text, err := bodyText(c.raw)
		if err != nil || !strings.Contains(text, m.token) {
			rep.damaged = append(rep.damaged, fmt.Sprintf("%s in %s: body token not found (%v)", name, c.where, err))
		}
		stamped := strings.Contains(text, disclaimer)
		if wantStamp := m.direction == outbound; stamped != wantStamp {
			rep.damaged = append(rep.damaged, fmt.Sprintf("%s (%s) in %s: disclaimer present %v, want %v", name, m.direction, c.where, stamped, wantStamp))
		}
		header := strings.ToLower(string(headerOf(c.raw)))
		if strings.Contains(header, "x-postern-envelope") || strings.Contains(header, "x-postern-expanded") {
			rep.leaked = append(rep.leaked, fmt.Sprintf("%s in %s carries archive headers", name, c.where))
		}
		if !bccOwners[c.where] {
			for _, b := range m.bcc {
				if strings.Contains(header, strings.ToLower(b)) && !strings.Contains(sentHeader, strings.ToLower(b)) {
					rep.leaked = append(rep.leaked, fmt.Sprintf("%s in %s names the Bcc %s", name, c.where, b))
				}
			}
		}
	}
	for where, n := range want {
		switch g := got[where]; {
		case g == 0:
			rep.missing = append(rep.missing, fmt.Sprintf("%s not in %s", name, where))
		case g > n:
			st.duplicate(rep, m, fmt.Sprintf("%s %d times in %s", name, g, where), st.whereAddr(where, m))
		}
	}
	for where := range got {
		if want[where] == 0 {
			rep.misdelivered = append(rep.misdelivered, fmt.Sprintf("%s in %s, not a recipient", name, where))
		}
	}
	for mailbox := range shadows {
		switch archived[mailbox] {
		case 0:
			rep.unarchived = append(rep.unarchived, fmt.Sprintf("%s not in %s", name, mailbox))
		case 1:
		default:
			st.duplicate(rep, m, fmt.Sprintf("%s archived %d times in %s", name, archived[mailbox], mailbox), []string{mailbox})
		}
	}
}

// duplicate files a duplicated copy as resent when Postfix logged that one of the
// addresses it was delivered to may have received it twice, else as a problem.
func (st *stack) duplicate(rep *report, m *letter, what string, addrs []string) {
	for _, a := range addrs {
		if st.resent[m.id+" "+strings.ToLower(a)] {
			rep.resent = append(rep.resent, what)
			return
		}
	}
	rep.duplicated = append(rep.duplicated, what)
}

// whereAddr is the addresses a copy in where may have been delivered for: the sink's
// recipient, or the person's address and the envelope recipients.
func (st *stack) whereAddr(where string, m *letter) []string {
	if a, ok := strings.CutPrefix(where, "sink:"); ok {
		return []string{a}
	}
	return append([]string{st.company.byLogin[where].addr}, m.mail.To...)
}

// mayBeSentTwice reads Postfix's mail log and returns "<message-id> <recipient>" for
// every delivery that Postfix deferred with "message may be sent more than once".
func mayBeSentTwice(maillog string) map[string]bool {
	ids := map[string]string{} // queue id -> Message-ID
	out := map[string]bool{}
	for _, line := range strings.Split(maillog, "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if strings.HasSuffix(w, ":") && i+1 < len(f) && strings.HasPrefix(f[i+1], "message-id=") {
				ids[strings.TrimSuffix(w, ":")] = strings.TrimPrefix(f[i+1], "message-id=")
			}
		}
		if !strings.Contains(line, "may be sent more than once") {
			continue
		}
		var qid, rcpt string
		for i, w := range f {
			if strings.HasPrefix(w, "to=<") {
				rcpt = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(w, "to=<"), ">,"))
				if i > 0 {
					qid = strings.TrimSuffix(f[i-1], ":")
				}
			}
		}
		if id := ids[qid]; id != "" && rcpt != "" {
			out[id+" "+rcpt] = true
		}
	}
	return out
}

// checkArchiveCopy: the copy is in the direction's folder and names the real envelope,
// Bcc recipients included.
func (st *stack) checkArchiveCopy(rep *report, m *letter, name, mailbox, folder string, expected bool, raw []byte) {
	if !expected {
		rep.misarchived = append(rep.misarchived, fmt.Sprintf("%s in %s, whose domain is not party to it", name, mailbox))
	}
	if folder != m.direction {
		rep.misarchived = append(rep.misarchived, fmt.Sprintf("%s in %s %s, want %s", name, mailbox, folder, m.direction))
	}
	header := string(headerOf(raw))
	wants := []string{"X-Postern-Archive: v=1; journal=ok", "X-Postern-Envelope-From: <" + m.mail.From + ">"}
	for _, rcpt := range m.mail.To {
		wants = append(wants, "X-Postern-Envelope-To: <"+rcpt+">")
	}
	for _, w := range wants {
		if !strings.Contains(header, w) {
			rep.unarchived = append(rep.unarchived, fmt.Sprintf("%s in %s lacks %q", name, mailbox, w))
		}
	}
	if text, err := bodyText(raw); err != nil || !strings.Contains(text, m.token) {
		rep.damaged = append(rep.damaged, fmt.Sprintf("%s in %s: body token not found (%v)", name, mailbox, err))
	}
}

// headerOf is the header section of a raw message.
func headerOf(raw []byte) []byte {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i+1]
	}
	return raw
}

// bodyText is the decoded text of every text part, as a mail client would show it.
func bodyText(raw []byte) (string, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return "", err
	}
	var b strings.Builder
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		if t, _, _ := part.Header.ContentType(); strings.HasPrefix(t, "text/") {
			body, err := io.ReadAll(part.Body)
			if err != nil {
				return err
			}
			b.Write(body)
			b.WriteString("\n")
		}
		return nil
	})
	return b.String(), err
}
