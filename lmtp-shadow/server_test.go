package lmtpshadow

import (
	"strings"
	"testing"

	"github.com/postern-mail/postern/internal/testbench"
)

// A copy over lmtp_shadow.max_message_size is deferred with 4.3.4 (a 4xx) for every
// recipient: a 5xx would bounce to the sender and tell them of the archive.
func TestOversizedCopyIsDeferredNotBounced(t *testing.T) {
	_, addr := startShadowDaemon(t, "{kind: dovecot, lmtp: inet:127.0.0.1:9}", "max_message_size: 1KB")
	data := "From: alice@corp.example.test\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 256)
	replies, err := testbench.DeliverLMTP(addr, testbench.Mail{From: "alice@corp.example.test",
		To: []string{"shadow@corp.example.test", "shadow@other.example.test"}, Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies {
		if r.Code/100 != 4 || !strings.HasPrefix(r.Text, "4.3.4") {
			t.Errorf("recipient %d: %s, want 4xx 4.3.4", i, r)
		}
	}
	// The session stays usable: the next transaction is answered, not garbled.
	if _, err := testbench.DeliverLMTP(addr, testbench.Mail{From: "alice@corp.example.test",
		To: []string{"shadow@corp.example.test"}, Data: []byte("Subject: small\r\n\r\nhi\r\n")}); err != nil {
		t.Errorf("a small copy after the oversized one: %v", err)
	}
}
