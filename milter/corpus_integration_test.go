package milter

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/testbench"
)

// The signature and disclaimer as the testdata files render them for alice.
const (
	disclaimerPhrase = "This message is confidential"
	signatureName    = "Alice Anderson"
)

// testCorpus sends every corpus message as alice to an external recipient, checks what
// smtp-sink got, then sends what came out through the milter again: nothing may change.
func testCorpus(t *testing.T, s *testbench.Samba) {
	// smtp_line_length_limit 0: Postfix's own smtp client would otherwise fold lines
	// over 998 bytes on the way to the sink, which is not postern's doing.
	b := startMilterBench(t, s, benchOptions{mainCF: map[string]string{"smtp_line_length_limit": "0"}})
	msgs := corpus(t)
	for _, m := range msgs {
		b.send(t, []string{"x@ext.example"}, m.data)
	}
	first := byMessageID(b.pf.WaitSinkMessages(t, len(msgs), 3*time.Minute))
	for _, m := range msgs {
		t.Run(m.name, func(t *testing.T) {
			out, ok := first[messageIDOf(m.data)]
			if !ok {
				t.Fatalf("message not delivered; have %d", len(first))
			}
			checkDelivered(t, m, out)
		})
	}

	// Second pass: the delivered messages again (their Received lines and all).
	clearSink(t, b)
	for _, m := range msgs {
		b.send(t, []string{"x@ext.example"}, first[messageIDOf(m.data)])
	}
	second := byMessageID(b.pf.WaitSinkMessages(t, len(msgs), 3*time.Minute))
	for _, m := range msgs {
		t.Run(m.name+"/again", func(t *testing.T) {
			id := messageIDOf(m.data)
			_, body1 := splitMessage(first[id])
			_, body2 := splitMessage(second[id])
			if !bytes.Equal(body1, body2) {
				t.Errorf("the second pass changed the body (%d -> %d bytes)", len(body1), len(body2))
			}
			if a, b := headerOf(first[id], markerHeader), headerOf(second[id], markerHeader); a != b {
				t.Errorf("%s changed: %q -> %q", markerHeader, a, b)
			}
			if strings.Count(string(body2), disclaimerPhrase) > strings.Count(string(body1), disclaimerPhrase) {
				t.Error("disclaimer added twice")
			}
		})
	}

	t.Run("reply quoting the disclaimer", func(t *testing.T) {
		clearSink(t, b)
		reply := "From: alice@corp.example.test\nTo: x@ext.example\nSubject: Re: corpus text-only\n" +
			"Message-ID: <reply-1@corp.example.test>\nIn-Reply-To: <corpus-text-only@corp.example.test>\n\n" +
			"Thanks!\n\nOn Sunday Xavier wrote:\n> Hello\n> --\n> Corp Example GmbH, Berlin. This message is confidential and meant\n> for its addressees only.\n"
		b.send(t, []string{"x@ext.example"}, []byte(reply))
		raw := b.pf.WaitSinkMessages(t, 1, 30*time.Second)[0].Raw
		ls, err := leaves(raw)
		if err != nil || len(ls) != 1 {
			t.Fatalf("leaves: %v (%d)", err, len(ls))
		}
		text, _ := ls[0].decoded()
		if n := strings.Count(text, disclaimerPhrase); n != 1 {
			t.Errorf("disclaimer %d times in a reply that quotes it, want 1 (the quoted one):\n%s", n, text)
		}
		if !strings.Contains(text, signatureName) {
			t.Errorf("the reply lost its signature:\n%s", text)
		}
	})

	t.Run("domain disclaimer with umlauts", func(t *testing.T) {
		clearSink(t, b)
		code, text, err := testbench.SendMail(b.pf.SMTPAddr, testbench.Mail{From: "alice@other.example.test",
			To: []string{"x@ext.example"}, XClientLogin: "alice",
			Data: []byte("From: alice@other.example.test\nSubject: other\n\nHallo.\n")})
		if err != nil || code != 250 {
			t.Fatalf("send: %d %s %v", code, text, err)
		}
		raw := b.pf.WaitSinkMessages(t, 1, 30*time.Second)[0].Raw
		ls, err := leaves(raw)
		if err != nil || len(ls) != 1 {
			t.Fatalf("leaves: %v (%d)", err, len(ls))
		}
		text, err = ls[0].decoded()
		if err != nil || !strings.Contains(text, "nur für ihre Empfänger bestimmt") || strings.Contains(text, disclaimerPhrase) {
			t.Errorf("want the other.example.test disclaimer, decoded (%v):\n%s\nraw:\n%s", err, text, raw)
		}
	})

	t.Run("signature from AD", func(t *testing.T) {
		clearSink(t, b)
		code, text, err := testbench.SendMail(b.pf.SMTPAddr, testbench.Mail{From: "erin@corp.example.test",
			To: []string{"x@ext.example"}, XClientLogin: "erin", Data: []byte(
				"From: erin@corp.example.test\nSubject: sig\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n" +
					"--b\nContent-Type: text/plain\n\nHi\n--b\nContent-Type: text/html\n\n<html><body>Hi</body></html>\n--b--\n")})
		if err != nil || code != 250 {
			t.Fatalf("send: %d %s %v", code, text, err)
		}
		raw := b.pf.WaitSinkMessages(t, 1, 30*time.Second)[0].Raw
		ls, err := leaves(raw)
		if err != nil || len(ls) != 2 {
			t.Fatalf("leaves: %v (%d)", err, len(ls))
		}
		plain, _ := ls[0].decoded()
		html, _ := ls[1].decoded()
		for _, want := range []string{"Erin Engel", "Head of Sales & <Partners> | Sales", "Mobile: +49 170 5550100"} {
			if !strings.Contains(plain, want) {
				t.Errorf("text part lacks %q:\n%s", want, plain)
			}
		}
		if !strings.Contains(html, "Head of Sales &amp; &lt;Partners&gt;") || strings.Contains(html, "<Partners>") {
			t.Errorf("html part does not escape the AD title:\n%s", html)
		}
		if strings.Contains(plain, "Phone:") {
			t.Errorf("the Phone line of a user without a telephone number was not dropped:\n%s", plain)
		}
	})
}

// checkDelivered judges one delivered message against what was sent.
func checkDelivered(t *testing.T, m corpusMessage, out []byte) {
	t.Helper()
	if err := parseable(out); err != nil {
		t.Fatalf("delivered message does not parse: %v", err)
	}
	inHdr, inBody := splitMessage(m.data)
	outHdr, outBody := splitMessage(out)
	stamped := headerOf(out, markerHeader) != ""
	outFields := headerFields(outHdr)
	for _, f := range headerFields(inHdr) {
		mimeField := slices.Contains([]string{"content-type", "content-transfer-encoding", "mime-version"}, fieldName(f))
		if !slices.Contains(outFields, f) && !(stamped && mimeField) {
			t.Errorf("header field changed or lost: %q", f)
		}
	}
	if m.identical {
		if stamped || !bytes.Equal(inBody, outBody) {
			t.Errorf("body must pass byte-identical (stamped %v, %d -> %d bytes)", stamped, len(inBody), len(outBody))
		}
		return
	}
	if !stamped {
		t.Fatalf("not stamped; delivered:\n%.3000s", out)
	}
	in, err := leaves(m.data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := leaves(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != len(got) {
		t.Fatalf("%d parts became %d", len(in), len(got))
	}
	disclaimers, signatures := 0, 0
	for i := range in {
		if bytes.Equal(in[i].raw, got[i].raw) {
			continue
		}
		p := got[i]
		if !in[i].textBody() {
			t.Errorf("part %s (%s) changed; only message text may", p.path, in[i].mediaType)
			continue
		}
		before, err1 := in[i].decoded()
		after, err2 := p.decoded()
		if err1 != nil || err2 != nil {
			t.Errorf("part %s: decode: %v %v", p.path, err1, err2)
			continue
		}
		if n := strings.Count(after, disclaimerPhrase); n != 1 {
			t.Errorf("part %s (%s) has the disclaimer %d times:\n%s", p.path, p.mediaType, n, after)
		}
		disclaimers++
		if strings.Contains(after, signatureName) {
			signatures++
		}
		if strings.Contains(after, "Mobile:") {
			t.Errorf("part %s: the Mobile line of a user without a mobile number was not dropped", p.path)
		}
		checkPlacement(t, p, before, after)
	}
	if disclaimers == 0 || signatures == 0 {
		t.Errorf("disclaimer in %d parts, signature in %d; want both somewhere", disclaimers, signatures)
	}
}

// checkPlacement: in text the original comes first and the insertion after it; in HTML the
// insertion is inside the body.
func checkPlacement(t *testing.T, p leaf, before, after string) {
	t.Helper()
	if p.mediaType == "text/plain" {
		if !strings.HasPrefix(after, strings.TrimRight(before, " \n")) {
			t.Errorf("part %s: the original text is not kept in front:\nbefore %q\nafter  %q", p.path, before, after)
		}
		return
	}
	at := strings.Index(after, disclaimerPhrase)
	if end := strings.LastIndex(strings.ToLower(after), "</body>"); end >= 0 && at > end {
		t.Errorf("part %s: disclaimer after </body>", p.path)
	}
}

func byMessageID(ms []testbench.SinkMessage) map[string][]byte {
	out := map[string][]byte{}
	for _, m := range ms {
		out[m.MessageID] = m.Raw
	}
	return out
}

func messageIDOf(raw []byte) string { return headerOf(raw, "Message-ID") }

func clearSink(t *testing.T, b *milterBench) {
	t.Helper()
	entries, err := os.ReadDir(b.pf.SinkDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		os.Remove(filepath.Join(b.pf.SinkDir, e.Name()))
	}
}
