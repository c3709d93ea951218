package tcptable

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadNetstring(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // payloads read before the error
		err      error
	}{
		{"one", "5:hello,", []string{"hello"}, io.EOF},
		{"pipelined", "3:a b,0:,4:x@y.,", []string{"a b", "", "x@y."}, io.EOF},
		{"binary payload", "3:\x00,:,", []string{"\x00,:"}, io.EOF},
		{"leading zero", "05:hello,", nil, errFraming},
		{"no digits", ":x,", nil, errFraming},
		{"not a number", "5x:hello,", nil, errFraming},
		{"missing comma", "5:hello;", nil, errFraming},
		{"too long", "16385:", nil, errFraming},
		{"absurd length", "99999999999999999999:", nil, errFraming},
		{"cut in the length", "12", nil, io.ErrUnexpectedEOF},
		{"cut in the payload", "5:hel", nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			var got []string
			for {
				p, err := readNetstring(r, maxRequest)
				if err != nil {
					if !errors.Is(err, tt.err) {
						t.Fatalf("error %v, want %v", err, tt.err)
					}
					break
				}
				got = append(got, string(p))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("read %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendNetstring(t *testing.T) {
	if got := string(appendNetstring(nil, "OK alice@corp.example.test")); got != "26:OK alice@corp.example.test," {
		t.Fatal(got)
	}
	if got := string(appendNetstring(nil, "")); got != "0:," {
		t.Fatal(got)
	}
}

func TestTCPCodec(t *testing.T) {
	tests := []struct{ plain, encoded string }{
		{"alice@corp.example.test", "alice@corp.example.test"},
		{"with space", "with%20space"},
		{"100%", "100%25"},
		{"tab\tnewline\n", "tab%09newline%0A"},
		{"anna@bücher.example.test", "anna@b%C3%BCcher.example.test"},
		{"del\x7f", "del%7F"},
		{"a,b", "a,b"},
	}
	for _, tt := range tests {
		if got := encodeTCP(tt.plain); got != tt.encoded {
			t.Errorf("encode %q = %q, want %q", tt.plain, got, tt.encoded)
		}
		if got, err := decodeTCP(tt.encoded); err != nil || got != tt.plain {
			t.Errorf("decode %q = %q, %v", tt.encoded, got, err)
		}
	}
	if got, err := decodeTCP("b%c3%bccher"); err != nil || got != "bücher" {
		t.Errorf("lower-case hex: %q %v", got, err)
	}
	for _, bad := range []string{"%", "%4", "%zz", "x%4g", "abc%"} {
		if _, err := decodeTCP(bad); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}

func TestParseTCPRequest(t *testing.T) {
	tests := []struct {
		line, key string
		bad       Status // -1: a request to look up
	}{
		{"get alice@corp.example.test", "alice@corp.example.test", -1},
		{"get with%20space", "with space", -1},
		{"get ", "", -1},
		{"get", "", -1},
		{"get bad%zz", "", NotFound},
		{"put k v", "", Permanent},
		{"GET x", "", Permanent},
	}
	for _, tt := range tests {
		key, bad := parseTCPRequest(tt.line)
		switch {
		case tt.bad < 0 && (bad != nil || key != tt.key):
			t.Errorf("%q: key %q bad %+v, want key %q", tt.line, key, bad, tt.key)
		case tt.bad >= 0 && (bad == nil || bad.Status != tt.bad):
			t.Errorf("%q: bad %+v, want status %v", tt.line, bad, tt.bad)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("get a\nget b\r\n"+"get "+strings.Repeat("x", maxRequest)+"\n"), 16)
	for _, want := range []string{"get a", "get b"} {
		if got, err := readLine(r, maxRequest); err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	if _, err := readLine(r, maxRequest); !errors.Is(err, errFraming) {
		t.Fatalf("a line over %d bytes: %v, want errFraming", maxRequest, err)
	}
	if _, err := readLine(bufio.NewReader(strings.NewReader("get cut")), maxRequest); err != io.ErrUnexpectedEOF {
		t.Fatalf("a line cut short: %v", err)
	}
}

// FuzzNetstring: the reader never panics or reads past its limit, and what it accepts
// re-encodes to exactly the bytes it consumed.
func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"5:hello,", "0:,", "3:a b,4:x@y.,", "05:hello,", "12", "5:hel", "16385:", "2:\x00\xff,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		consumed := 0
		for {
			p, err := readNetstring(r, maxRequest)
			if err != nil {
				return
			}
			if len(p) > maxRequest {
				t.Fatalf("payload of %d bytes, over the limit", len(p))
			}
			enc := appendNetstring(nil, string(p))
			if !bytes.Equal(enc, in[consumed:consumed+len(enc)]) {
				t.Fatalf("accepted %q but it re-encodes as %q", in[consumed:consumed+len(enc)], enc)
			}
			consumed += len(enc)
		}
	})
}

// FuzzTCPCodec: decoding an encoding gives the original back, the encoding is one
// whitespace-free line, and arbitrary input either decodes to something that survives a
// round trip or is refused.
func FuzzTCPCodec(f *testing.F) {
	for _, s := range []string{"alice@corp.example.test", "with space", "100%", "b%C3%BCcher", "%zz", "%", "a\nb", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := encodeTCP(s)
		if strings.ContainsAny(enc, " \t\r\n") {
			t.Fatalf("encoding %q holds white space: %q", s, enc)
		}
		if dec, err := decodeTCP(enc); err != nil || dec != s {
			t.Fatalf("round trip of %q: %q, %v", s, dec, err)
		}
		if dec, err := decodeTCP(s); err == nil {
			if again, err := decodeTCP(encodeTCP(dec)); err != nil || again != dec {
				t.Fatalf("decoded %q to %q, which does not survive a round trip", s, dec)
			}
		}
	})
}
