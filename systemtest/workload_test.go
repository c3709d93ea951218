package systemtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/postern-mail/postern/internal/testbench"
)

// Directions as the milter names them and lmtp-shadow files them.
const (
	inbound  = "Inbound"
	outbound = "Outbound"
	internal = "Internal"
)

// pmgAddr is the relay standing in for PMG: a trusted_relays network, not mynetworks.
const pmgAddr = "192.0.2.10"

// letter is one message of the workload and what the rules say must become of it.
type letter struct {
	n         int
	id        string // Message-ID, with <>
	token     string // a line in the body: its presence in a copy shows the body is intact
	direction string
	mail      testbench.Mail
	bcc       []string // envelope recipients named in no header
	// refusal is the enhanced code the rules answer with ("5.7.1" interns to external);
	// "" when the message must be accepted. throttled messages may go either way.
	refusal   string
	throttled bool
	large     bool
}

// workload generates n messages shaped like a company's day: inbound through the relay,
// outbound and internal submissions with a SASL login, lists, Bcc, plus-addresses,
// aliases, interns, a sender over a rate limit, large attachments, GBK and UTF-8 bodies.
func workload(c *company, n int, seed uint64) []*letter {
	rng := rand.New(rand.NewPCG(seed, 1))
	msgs := make([]*letter, 0, n)
	var (
		interns, staff []*person
		throttled      = c.byLogin[throttledLogin]
	)
	for _, p := range c.people {
		if p.intern {
			interns = append(interns, p)
		} else if p != throttled {
			staff = append(staff, p)
		}
	}
	pick := func(ps []*person) *person { return ps[rng.IntN(len(ps))] }
	external := func() string {
		return fmt.Sprintf("contact%d@partner%d.example", rng.IntN(500), rng.IntN(20))
	}
	for i := 0; i < n; i++ {
		m := &letter{n: i, id: fmt.Sprintf("<sys-%05d.%x@systemtest.postern>", i, rng.Uint32()),
			token: fmt.Sprintf("token sys-%05d %x", i, rng.Uint64())}
		r := newRecipients(c, rng)
		var from, login, addr string
		switch k := rng.IntN(100); {
		case i%50 == 25: // the sender over its hourly limit
			m.direction = internal
			from, login = throttled.addr, throttled.login
			r.internal(1)
			m.throttled = true
		case k < 45: // inbound through the relay
			m.direction = inbound
			from, addr = external(), pmgAddr
			r.internal(1 + rng.IntN(3))
		case k < 70: // outbound: external recipients, maybe internal ones too
			m.direction = outbound
			p := pick(staff)
			from, login = c.senderAddress(p, rng), p.login
			r.add(external())
			if rng.IntN(3) == 0 {
				r.add(external())
			}
			r.internal(rng.IntN(3))
		case k < 98: // internal, interns included
			m.direction = internal
			p := pick(append(staff, interns...))
			from, login = c.senderAddress(p, rng), p.login
			r.internal(1 + rng.IntN(3))
		default: // an intern writes outside: refused at RCPT
			m.direction = outbound
			p := pick(interns)
			from, login = p.addr, p.login
			r.add(external())
			m.refusal = "5.7.1"
		}
		headers := r.to
		if rng.IntN(7) == 0 && len(headers) > 1 { // the last recipient is a Bcc
			m.bcc = headers[len(headers)-1:]
			headers = headers[:len(headers)-1]
		}
		m.large = i%97 == 50
		m.mail = testbench.Mail{From: from, To: r.to, XClientLogin: login, XClientAddr: addr,
			Data: m.build(from, headers, rng)}
		msgs = append(msgs, m)
	}
	return msgs
}

// senderAddress is mostly p's primary address, sometimes an alias p owns.
func (c *company) senderAddress(p *person, rng *rand.Rand) string {
	if rng.IntN(10) == 0 {
		for alias, owner := range c.aliases {
			if owner == p && !strings.HasSuffix(alias, "@alias.example.test") {
				return alias
			}
		}
	}
	return p.addr
}

// recipients collects envelope recipients whose final mailboxes do not overlap: Postfix
// delivers a second copy to a person addressed both directly and through a list.
type recipients struct {
	c    *company
	rng  *rand.Rand
	to   []string
	seen map[*person]bool
}

func newRecipients(c *company, rng *rand.Rand) *recipients {
	return &recipients{c: c, rng: rng, seen: map[*person]bool{}}
}

func (r *recipients) add(addr string) bool {
	ps := r.c.resolve(addr)
	for _, p := range ps {
		if r.seen[p] {
			return false
		}
	}
	for _, p := range ps {
		r.seen[p] = true
	}
	r.to = append(r.to, addr)
	return true
}

// internal adds n internal recipients: people by primary address mostly, and
// plus-addresses, aliases, the alias domain and lists.
func (r *recipients) internal(n int) {
	for added, tries := 0, 0; added < n && tries < 20; tries++ {
		p := r.c.people[r.rng.IntN(len(r.c.people))]
		addr := p.addr
		switch k := r.rng.IntN(20); {
		case k == 0:
			addr = []string{"sales@corp.example.test", "interns@corp.example.test", "all@corp.example.test"}[r.rng.IntN(3)]
		case k == 1:
			local, domain, _ := strings.Cut(p.addr, "@")
			addr = local + "+newsletter@" + domain
		case k == 2:
			for alias, owner := range r.c.aliases {
				if owner == p {
					addr = alias
				}
			}
		}
		if r.add(addr) {
			added++
		}
	}
}

// build writes the message: one of a UTF-8 text, a GBK text, an HTML alternative, or a
// message with an attachment (a large one now and then).
func (m *letter) build(from string, to []string, rng *rand.Rand) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("Report %d", m.n)
	if m.n%3 == 0 {
		subject = mime.QEncoding.Encode("utf-8", fmt.Sprintf("Bericht %d · 报告", m.n))
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		from, strings.Join(to, ", "), subject, m.id, time.Now().UTC().Format(time.RFC1123Z))
	text := m.token + "\r\nGrüße aus dem Büro, 来自办公室的问候.\r\n"
	switch variant := m.n % 4; {
	case m.large || variant == 3:
		size := 20 << 10
		if m.large {
			size = 2 << 20
		}
		blob := make([]byte, size)
		for i := range blob {
			blob[i] = byte(rng.IntN(256))
		}
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--b1\r\n"+
			"Content-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n", text)
		enc := base64.StdEncoding.EncodeToString(blob)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--b1--\r\n")
	case variant == 1:
		gbk, err := simplifiedchinese.GBK.NewEncoder().String(m.token + "\r\n来自办公室的问候，祝一切顺利。\r\n")
		if err != nil {
			panic(err) // the text above is GBK
		}
		b.WriteString("Content-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + gbk)
	case variant == 2:
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"a1\"\r\n\r\n--a1\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--a1\r\n"+
			"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
			"<html><body><p>%s</p></body></html>\r\n--a1--\r\n", text, strings.ReplaceAll(text, "\r\n", "<br>"))
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text)
	}
	return b.Bytes()
}
