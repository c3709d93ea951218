package systemtest

import (
	"strings"
	"testing"
)

// The accounting finds each message's token in the decoded text of every variant the
// workload writes (UTF-8, GBK, HTML alternative, attachments), so a missing token in a
// delivered copy means the copy was damaged, not that the reader failed.
func TestWorkloadTokensReadBack(t *testing.T) {
	for _, m := range workload(newCompany(), 200, 1) {
		text, err := bodyText(m.mail.Data)
		if err != nil || !strings.Contains(text, m.token) {
			t.Fatalf("#%d: token %q not in the decoded text (%v):\n%s", m.n, m.token, err, text)
		}
	}
}
