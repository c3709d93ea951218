package milter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// markerHeader marks a message postern has stamped. Its value is an HMAC of the
// Message-ID under a secret key, so a message that comes back (a loop through PMG) is
// recognised and left alone, while nobody outside can forge the mark onto other mail to
// suppress a disclaimer.
const markerHeader = "X-Postern-Stamp"

const markerVersion = "v1 "

// markerValue binds the mark to a message: its Message-ID, or, for a message without one,
// its queue id (Postfix adds a Message-ID after the milter, which the next pass then
// sees; the text markers catch that case).
func markerValue(key []byte, messageID, queueID string) string {
	mac := hmac.New(sha256.New, key)
	bind := strings.TrimSpace(messageID)
	if bind == "" {
		bind = "queue-id:" + queueID
	}
	mac.Write([]byte("postern-stamp\x00" + bind))
	return markerVersion + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// validMarker reports whether a marker header value belongs to this message.
func validMarker(key []byte, value, messageID, queueID string) bool {
	if len(key) == 0 {
		return false
	}
	want := markerValue(key, messageID, queueID)
	return hmac.Equal([]byte(strings.TrimSpace(value)), []byte(want))
}
