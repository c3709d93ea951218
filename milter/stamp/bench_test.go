package stamp

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// benchMessage builds a typical Outlook-shaped message: a reply in
// multipart/alternative (text and HTML, quoted-printable), an inline logo
// and an attachment of attachSize random bytes, base64-encoded.
func benchMessage(attachSize int) (textproto.Header, []byte) {
	var h textproto.Header
	h.Add("MIME-Version", "1.0")
	h.Add("Content-Type", `multipart/mixed; boundary="mixed-b"`)
	para := "Hello Bob, here are the figures for the second quarter, as discussed on Monday. "
	text := strings.Repeat(para+"\n", 40)
	html := "<html><body>" + strings.Repeat("<p>"+para+"</p>\n", 70) + "</body></html>\n"
	rng := rand.New(rand.NewSource(1))
	attach := make([]byte, attachSize)
	rng.Read(attach)
	logo := make([]byte, 1500)
	rng.Read(logo)
	var b bytes.Buffer
	fmt.Fprintf(&b, "--mixed-b\r\nContent-Type: multipart/alternative; boundary=\"alt-b\"\r\n\r\n")
	fmt.Fprintf(&b, "--alt-b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", encodeQP([]byte(text), "\r\n", nil))
	fmt.Fprintf(&b, "--alt-b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", encodeQP([]byte(html), "\r\n", nil))
	fmt.Fprintf(&b, "--alt-b--\r\n\r\n")
	fmt.Fprintf(&b, "--mixed-b\r\nContent-Type: image/png; name=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n", encodeBase64(logo, "\r\n"))
	if attachSize > 0 {
		fmt.Fprintf(&b, "--mixed-b\r\nContent-Type: application/pdf; name=report.pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n", encodeBase64(attach, "\r\n"))
	}
	fmt.Fprintf(&b, "--mixed-b--\r\n")
	return h, b.Bytes()
}

func BenchmarkApply(b *testing.B) {
	cases := []struct {
		name   string
		attach int
		opt    Options
	}{
		{"20KB", 0, Options{}},
		{"10MB", 7_500_000, Options{}}, // spills to temp files (default 1 MiB)
		{"10MB-in-memory", 7_500_000, Options{SpillSize: -1}},
	}
	for _, tc := range cases {
		h, body := benchMessage(tc.attach)
		opt := tc.opt
		opt.TempDir = b.TempDir()
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				res, err := Apply(h, bytes.NewReader(body), stdIns, opt)
				if err != nil || !res.Changed {
					b.Fatalf("%+v %v", res, err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}
