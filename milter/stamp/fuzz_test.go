package stamp

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// FuzzApply checks, for any message: no panic; a changed body parses with
// go-message, and every leaf that did not get the insertion is byte for byte
// the input's; stamping the output again reports "already stamped".
func FuzzApply(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(toCRLF(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		br := bufio.NewReader(bytes.NewReader(raw))
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(br)
		ins := stdIns
		ins.Placement = Placement(len(raw) % 2)
		start := time.Now()
		res, err := apply(h, bytes.NewReader(body), ins, Options{SpillSize: -1})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("apply took %v for %d bytes", d, len(raw))
		}
		if !res.Changed {
			return
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		nh := newHeader(h, res)
		if err := walkGoMessage(nh, out); err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		checkLeaves(t, h, body, nh, out)
		again, err := apply(nh, bytes.NewReader(out), ins, Options{SpillSize: -1})
		if err != nil || again.Skipped != SkipAlreadyStamped {
			t.Fatalf("second pass: %+v %v\n%q", again, err, out)
		}
	})
}

// gmLeaf is a leaf part as go-message reads it: header and raw body.
type gmLeaf struct {
	header textproto.Header
	raw    []byte
}

// gmLeaves lists the leaf parts of a message with go-message's multipart
// reader, which leaves bodies undecoded.
func gmLeaves(h textproto.Header, body []byte) ([]gmLeaf, error) {
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return []gmLeaf{{h, body}}, nil
	}
	mr := textproto.NewMultipartReader(bytes.NewReader(body), params["boundary"])
	var out []gmLeaf
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		sub, err := gmLeaves(p.Header, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
}

// checkLeaves compares input and output leaf by leaf.
func checkLeaves(t *testing.T, h textproto.Header, body []byte, nh textproto.Header, out []byte) {
	in, err := gmLeaves(h, body)
	if err != nil {
		t.Fatalf("input read by go-message but not its leaves: %v", err)
	}
	got, err := gmLeaves(nh, out)
	if err != nil {
		t.Fatalf("output leaves: %v", err)
	}
	if len(in) != len(got) {
		t.Fatalf("output has %d leaves, input %d", len(got), len(in))
	}
	for i := range in {
		if bytes.Equal(headerBytes(in[i].header), headerBytes(got[i].header)) && bytes.Equal(in[i].raw, got[i].raw) {
			continue
		}
		if !strings.Contains(decodeGM(t, got[i]), testMarker) {
			t.Fatalf("leaf %d changed without the insertion:\n%q\n%q", i, in[i].raw, got[i].raw)
		}
		for _, c := range got[i].raw {
			if c >= 0x80 {
				t.Fatalf("leaf %d not 7-bit clean", i)
			}
		}
	}
}

func headerBytes(h textproto.Header) []byte {
	var b bytes.Buffer
	textproto.WriteHeader(&b, h)
	return b.Bytes()
}

func decodeGM(t *testing.T, l gmLeaf) string {
	e, err := message.New(message.Header{Header: l.header}, bytes.NewReader(l.raw))
	if err != nil {
		t.Fatalf("changed leaf: %v", err)
	}
	b, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatalf("changed leaf: %v", err)
	}
	return string(b)
}
