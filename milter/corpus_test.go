package milter

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// corpusMessage is one message of the integration corpus and what must happen to it.
type corpusMessage struct {
	name string
	data []byte // LF line ends
	// identical: the body must come out byte for byte as it went in (signed, calendar);
	// otherwise the disclaimer and signature must be in its text.
	identical bool
}

// corpus builds the messages the issue lists. Each is a complete message from alice.
func corpus(t testing.TB) []corpusMessage {
	t.Helper()
	hdr := func(name, extra string) string {
		return "From: Alice Anderson <alice@corp.example.test>\nTo: Xavier <x@ext.example>\n" +
			"Subject: corpus " + name + "\nDate: Sun, 22 Nov 2026 08:00:00 +0100\n" +
			"Message-ID: <corpus-" + name + "@corp.example.test>\n" + extra
	}
	qp := func(s string) string {
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return strings.ReplaceAll(b.String(), "\r\n", "\n")
	}
	b64 := func(b []byte) string {
		s := base64.StdEncoding.EncodeToString(b)
		var out strings.Builder
		for len(s) > 76 {
			out.WriteString(s[:76] + "\n")
			s = s[76:]
		}
		return out.String() + s + "\n"
	}
	gbk, err1 := simplifiedchinese.GBK.NewEncoder().Bytes([]byte("你好，\n这是一封测试邮件。\n祝好\n"))
	big5, err2 := traditionalchinese.Big5.NewEncoder().Bytes([]byte("您好，\n這是一封測試郵件。\n敬祝 安好\n"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")
	pdf := bytes.Repeat([]byte("%PDF-1.4 fake attachment with bytes \x00\x01\x02\xff\n"), 200)
	big := make([]byte, 30<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	const html = "<html><head><meta charset=\"utf-8\"></head><body><p>Hello Xavier,</p><p>see the figures.</p></body></html>\n"
	msgs := []corpusMessage{
		{name: "text-only", data: []byte(hdr("text-only", "") + "\nHello Xavier,\n\nthe figures are attached.\n\nAlice\n")},
		{name: "html-only", data: []byte(hdr("html-only", "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n") + "\n" + html)},
		{name: "alternative", data: []byte(hdr("alternative", "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"alt-1\"\n") +
			"\nThis is a multi-part message in MIME format.\n--alt-1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
			qp("Hello Xavier, grüße aus Berlin.\nSee the figures.\n") + "\n--alt-1\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
			qp(html) + "\n--alt-1--\n")},
		{name: "related", data: []byte(hdr("related", "MIME-Version: 1.0\nContent-Type: multipart/related; boundary=\"rel-1\"; type=\"text/html\"\n") +
			"\n--rel-1\nContent-Type: text/html; charset=utf-8\n\n<html><body><p>Logo:</p><img src=\"cid:logo@corp\"></body></html>\n" +
			"--rel-1\nContent-Type: image/png\nContent-Transfer-Encoding: base64\nContent-ID: <logo@corp>\nContent-Disposition: inline\n\n" +
			b64(png) + "--rel-1--\n")},
		{name: "mixed-attachments", data: []byte(hdr("mixed-attachments", "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"mix-1\"\n") +
			"\n--mix-1\nContent-Type: text/plain; charset=us-ascii\n\nThe report and the logo are attached.\n" +
			"--mix-1\nContent-Type: application/pdf; name=\"report.pdf\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"report.pdf\"\n\n" +
			b64(pdf) + "--mix-1\nContent-Type: text/plain; charset=utf-8; name=\"notes.txt\"\nContent-Disposition: attachment; filename=\"notes.txt\"\n\nnotes stay as they are\n" +
			"--mix-1\nContent-Type: image/png; name=\"logo.png\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"logo.png\"\n\n" +
			b64(png) + "--mix-1--\n")},
		{name: "base64-text", data: []byte(hdr("base64-text", "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n") +
			"\n" + b64([]byte("Hello Xavier,\nthis body is base64 encoded: äöü ß €.\n")))},
		{name: "quoted-printable", data: []byte(hdr("quoted-printable", "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n") +
			"\nGr=FC=DFe aus K=F6ln,\nein sehr langer Absatz der weich umbrochen wurde, damit die Zeile nicht zu la=\nng wird.\n")},
		{name: "gbk", data: []byte(hdr("gbk", "MIME-Version: 1.0\nContent-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n") + "\n" + b64(gbk))},
		{name: "big5", data: []byte(hdr("big5", "MIME-Version: 1.0\nContent-Type: text/plain; charset=big5\nContent-Transfer-Encoding: 8bit\n") + "\n" + string(big5))},
		{name: "lowercase-headers-8bit", data: []byte(hdr("lowercase-headers-8bit", "mime-version: 1.0\ncontent-type: text/plain; charset=iso-8859-1\ncontent-transfer-encoding: 8bit\n") +
			"\nGr\xfc\xdfe aus M\xfcnchen.\n")},
		{name: "long-line", data: []byte(hdr("long-line", "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n") +
			"\nshort line\n" + strings.Repeat("word ", 4000) + "\nend\n")},
		{name: "apple-mail", data: []byte(hdr("apple-mail", "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))\n"+
			"Content-Type: multipart/alternative;\n\tboundary=\"Apple-Mail=_8F6B4C2E-1C1D-4A0B-9E5E-3A2B1C0D9E8F\"\nX-Mailer: Apple Mail (2.3774.600.62)\n") +
			"\n\n--Apple-Mail=_8F6B4C2E-1C1D-4A0B-9E5E-3A2B1C0D9E8F\nContent-Transfer-Encoding: quoted-printable\nContent-Type: text/plain;\n\tcharset=utf-8\n\n" +
			qp("Hi Xavier,\n\nsee the sketch.\n\nAlice") + "\n--Apple-Mail=_8F6B4C2E-1C1D-4A0B-9E5E-3A2B1C0D9E8F\nContent-Type: multipart/related;\n\ttype=\"text/html\";\n\tboundary=\"Apple-Mail=_0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9\"\n\n\n" +
			"--Apple-Mail=_0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9\nContent-Transfer-Encoding: 7bit\nContent-Type: text/html;\n\tcharset=us-ascii\n\n" +
			"<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=us-ascii\"></head><body style=\"overflow-wrap: break-word; -webkit-nbsp-mode: space; line-break: after-white-space;\">Hi Xavier,<div><br></div><div>see the sketch.</div><div><img apple-inline=\"yes\" id=\"ABC\" src=\"cid:sketch@apple\"></div><div><br></div><div>Alice</div></body></html>\n" +
			"--Apple-Mail=_0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9\nContent-Transfer-Encoding: base64\nContent-Disposition: inline;\n\tfilename=sketch.png\nContent-Type: image/png;\n\tx-unix-mode=0644;\n\tname=\"sketch.png\"\nContent-Id: <sketch@apple>\n\n" +
			b64(png) + "\n--Apple-Mail=_0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9--\n\n--Apple-Mail=_8F6B4C2E-1C1D-4A0B-9E5E-3A2B1C0D9E8F--\n")},
		{name: "smime-signed", identical: true, data: []byte(hdr("smime-signed", "MIME-Version: 1.0\n"+
			"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig-1\"\n") +
			"\nThis is an S/MIME signed message\n\n--sig-1\nContent-Type: text/plain; charset=us-ascii\n\nSigned text: any change breaks the signature.\n\n" +
			"--sig-1\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\n" +
			b64(bytes.Repeat([]byte{0x30, 0x82, 0x01, 0x0a}, 100)) + "\n--sig-1--\n")},
		{name: "calendar", identical: true, data: []byte(hdr("calendar", "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"cal-1\"\n") +
			"\n--cal-1\nContent-Type: text/plain; charset=utf-8\n\nYou are invited: budget review, Monday 10:00.\n" +
			"--cal-1\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\nContent-Transfer-Encoding: 7bit\n\n" +
			"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Corp//SOGo//EN\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:budget-1@corp.example.test\n" +
			"DTSTART:20261123T090000Z\nDTEND:20261123T100000Z\nSUMMARY:Budget review\nORGANIZER:mailto:alice@corp.example.test\n" +
			"ATTENDEE;RSVP=TRUE:mailto:x@ext.example\nEND:VEVENT\nEND:VCALENDAR\n--cal-1--\n")},
		{name: "30MB", data: []byte(hdr("30MB", "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"big-1\"\n") +
			"\n--big-1\nContent-Type: text/plain; charset=utf-8\n\nThe archive is attached (30 MB).\n" +
			"--big-1\nContent-Type: application/octet-stream; name=\"archive.bin\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"archive.bin\"\n\n" +
			b64(big) + "--big-1--\n")},
	}
	for i := range msgs {
		msgs[i].data = bytes.ReplaceAll(msgs[i].data, []byte("\r\n"), []byte("\n"))
	}
	return msgs
}
