package lmtpshadow

import (
	"encoding/base64"
	"mime"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/journal"
)

// The archive headers, prepended to the message. ASCII only (RFC 2047 for anything
// else) because Cyrus rewrites 8-bit header bytes. Documented in README.md.
const (
	hdrArchive    = "X-Postern-Archive"       // v=1; journal=ok|missing; id=…
	hdrFrom       = "X-Postern-Envelope-From" // <sender>
	hdrTo         = "X-Postern-Envelope-To"   // <recipient>, one header per recipient
	hdrExpanded   = "X-Postern-Expanded-To"   // <recipient>: <target>, <target>, …
	hdrDirection  = "X-Postern-Direction"     // outbound | inbound | internal
	hdrLogin      = "X-Postern-Sasl-Login"    // the SASL login
	hdrClient     = "X-Postern-Client"        // name [address]
	hdrHelo       = "X-Postern-Helo"          // the client's HELO
	hdrQueueID    = "X-Postern-Queue-Id"      // Postfix's queue id
	hdrReceivedAt = "X-Postern-Received-At"   // RFC 3339, when the milter saw the message
	hdrArchivedAt = "X-Postern-Archived-At"   // RFC 3339, when lmtp-shadow stored it
	journalHeader = "X-Postern-Journal"       // the milter's id in the message
)

// headerBlock renders the archive headers for a copy: from the journal entry when there
// is one, else from the LMTP envelope alone, marked journal=missing.
func headerBlock(env *journal.Entry, id, lmtpSender string, expanded map[string][]string, now time.Time) string {
	var b strings.Builder
	add := func(name, value string) {
		if value != "" {
			b.WriteString(fold(name + ": " + encode(value)))
		}
	}
	if env == nil {
		add(hdrArchive, "v=1; journal=missing"+idParam(id))
		add(hdrFrom, "<"+lmtpSender+">")
		add(hdrArchivedAt, now.UTC().Format(time.RFC3339))
		return b.String()
	}
	add(hdrArchive, "v=1; journal=ok"+idParam(id))
	add(hdrFrom, "<"+env.Sender+">")
	for _, r := range env.Recipients {
		add(hdrTo, "<"+r+">")
	}
	for _, r := range env.Recipients {
		if targets := expanded[r]; len(targets) > 0 {
			add(hdrExpanded, "<"+r+">: "+strings.Join(targets, ", "))
		}
	}
	add(hdrDirection, env.Direction)
	add(hdrLogin, env.Login)
	if env.ClientAddr != "" {
		add(hdrClient, strings.TrimSpace(env.ClientName+" ["+env.ClientAddr+"]"))
	}
	add(hdrHelo, env.Helo)
	add(hdrQueueID, env.QueueID)
	if !env.Time.IsZero() {
		add(hdrReceivedAt, env.Time.UTC().Format(time.RFC3339))
	}
	add(hdrArchivedAt, now.UTC().Format(time.RFC3339))
	return b.String()
}

func idParam(id string) string {
	if id == "" {
		return ""
	}
	return "; id=" + id
}

// encode keeps printable ASCII values as they are and encodes anything else as RFC 2047
// words: 8-bit bytes, control characters (CR and LF too, so a journalled HELO cannot
// start a header of its own, and DEL) and ASCII that would itself decode as an encoded
// word ("=?"), so every value decodes back to exactly what the journal holds.
func encode(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x7f || (v[i] < 0x20 && v[i] != '\t') {
			return mime.QEncoding.Encode("utf-8", v)
		}
	}
	if strings.Contains(v, "=?") {
		return bWords(v) // mime's encoders leave printable ASCII as it is
	}
	return v
}

// bWords encodes an ASCII value as RFC 2047 B words of at most 75 characters (45
// bytes each: 60 of base64), separated by spaces. Only for values mime's encoder leaves
// as they are because they are printable ASCII.
func bWords(v string) string {
	var words []string
	for len(v) > 0 {
		n := min(45, len(v))
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(v[:n]))+"?=")
		v = v[n:]
	}
	return strings.Join(words, " ")
}

// fold wraps a header line at spaces so no line exceeds 78 characters when it can be
// helped (RFC 5322 2.1.1), and ends it with CRLF.
func fold(line string) string {
	var b strings.Builder
	for len(line) > 78 {
		cut := strings.LastIndexByte(line[:78], ' ')
		if cut <= 0 {
			if next := strings.IndexByte(line[78:], ' '); next >= 0 {
				cut = 78 + next
			} else {
				break
			}
		}
		b.WriteString(line[:cut] + "\r\n ")
		line = strings.TrimLeft(line[cut:], " ")
	}
	b.WriteString(line + "\r\n")
	return b.String()
}

// folderData is what the folder template sees.
type folderData struct {
	Direction string // "Outbound", "Inbound", "Internal"
	Domain    string
	Time      time.Time
}

func directionTitle(d string) string {
	if d == "" {
		return "Unknown"
	}
	return strings.ToUpper(d[:1]) + strings.ToLower(d[1:])
}
