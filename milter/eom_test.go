package milter

import (
	"bytes"
	"strings"
	"testing"

	gm "github.com/emersion/go-milter"
)

// packets records SMFIR_REPLBODY payloads the way go-milter sends them: CRLF turned
// into LF within each packet.
type packets [][]byte

func (p *packets) ReplaceBody(b []byte) error {
	*p = append(*p, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	return nil
}

func replBodyPackets(t *testing.T, body string) [][]byte {
	t.Helper()
	var p packets
	if err := replaceBody(&p, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplaceBodyChunks(t *testing.T) {
	long := strings.Repeat("y", 100_000)
	tests := []struct {
		name string
		body string
	}{
		{"small", "a\r\nb\r\n"},
		{"many lines", strings.Repeat(strings.Repeat("x", 77)+"\r\n", 5000)},
		{"line longer than a packet", "start\r\n" + long + "\r\n" + long + "\r\nend\r\n"},
		{"CR at a packet border", strings.Repeat("z", gm.MaxBodyChunk-1) + "\r\n" + "tail\r\n"},
		{"no final line end", strings.Repeat("w", 70_000)},
		{"lone CR kept", "a\rb\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			packets := replBodyPackets(t, tt.body)
			var got bytes.Buffer
			for i, p := range packets {
				if len(p) > gm.MaxBodyChunk {
					t.Errorf("packet %d has %d bytes, over %d", i, len(p), gm.MaxBodyChunk)
				}
				if i < len(packets)-1 && !bytes.HasSuffix(p, []byte("\n")) && len(p) < gm.MaxBodyChunk-1 {
					t.Errorf("packet %d (%d bytes) is cut inside a line although a line end was in reach", i, len(p))
				}
				got.Write(p)
			}
			want := strings.ReplaceAll(tt.body, "\r\n", "\n")
			if got.String() != want {
				t.Errorf("reassembled body differs: %d bytes, want %d", got.Len(), len(want))
			}
		})
	}
}
