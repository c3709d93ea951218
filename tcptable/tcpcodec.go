package tcptable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// errBadEscape is a '%' not followed by two hex digits.
var errBadEscape = errors.New("bad %XX escape")

const hexDigits = "0123456789ABCDEF"

// encodeTCP encodes s as tcp_table(5) ENCODING asks: '%', each non-printing and each
// whitespace character become %XX. Bytes of UTF-8 sequences count as non-printing, as
// they do for Postfix's own client.
func encodeTCP(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// decodeTCP undoes %XX encoding; the hex digits may be in either case.
func decodeTCP(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errBadEscape
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errBadEscape
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// readLine reads one request line of at most max bytes, without its newline (and a
// carriage return before it, for people testing with telnet). A longer line is
// errFraming; a client that hangs up between requests is io.EOF.
func readLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return "", fmt.Errorf("%w: request line longer than %d bytes", errFraming, max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = line[:len(line)-1]
			return strings.TrimSuffix(string(line), "\r"), nil
		case err == io.EOF && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		case err != bufio.ErrBufferFull:
			return "", err
		}
	}
}

// parseTCPRequest reads "get KEY" (tcp_table(5) REQUEST FORMAT) and returns the decoded
// key. Any other command is not supported; a key with a bad escape is no key at all.
func parseTCPRequest(line string) (key string, bad *Answer) {
	cmd, arg, _ := strings.Cut(line, " ")
	if cmd != "get" {
		a := permanent("unsupported request", fmt.Sprintf("tcp_table request %q is not \"get KEY\"", truncate(line, 64)))
		return "", &a
	}
	key, err := decodeTCP(arg)
	if err != nil {
		a := notFound()
		return "", &a
	}
	return key, nil
}

// truncate shortens s for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
