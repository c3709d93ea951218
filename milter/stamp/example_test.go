package stamp_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/postern-mail/postern/milter/stamp"
)

// The milter collects the header fields and body it was sent, stamps the
// body and, when it changed, replaces the body and the top-level fields.
func ExampleApply() {
	fields := [][2]string{
		{"From", "jane@example.com"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "8bit"},
	}
	var h textproto.Header
	for i := len(fields) - 1; i >= 0; i-- { // Add inserts at the top
		h.Add(fields[i][0], fields[i][1])
	}
	body := strings.NewReader("Hello Bob,\r\n\r\nsee you at 10.\r\n")

	res, err := stamp.Apply(h, body, stamp.Insertion{
		Text:    "-- \r\nJane Doe, Example Ltd\r\n[disclaimer-v1] Confidential.",
		HTML:    "<p>Jane Doe, Example Ltd</p><p>[disclaimer-v1] Confidential.</p>",
		Markers: []string{"[disclaimer-v1]"},
	}, stamp.Options{MaxSize: 50 << 20, SpillSize: 1 << 20})
	if err != nil {
		fmt.Println("tempfail:", err) // I/O trouble: answer 4xx, never lose the message
		return
	}
	if !res.Changed {
		fmt.Println("untouched:", res.Skipped)
		return
	}
	defer res.Body.Close()
	newBody, _ := io.ReadAll(res.Body) // a milter would send it in chunks (ReplaceBody)
	fmt.Printf("Content-Transfer-Encoding: %s\n\n%s", res.ContentTransferEncoding,
		strings.ReplaceAll(string(newBody), "\r\n", "\n"))
	// Output:
	// Content-Transfer-Encoding: quoted-printable
	//
	// Hello Bob,
	//
	// see you at 10.
	//
	// --=20
	// Jane Doe, Example Ltd
	// [disclaimer-v1] Confidential.
}
