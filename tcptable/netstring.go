package tcptable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// errFraming is a request whose framing cannot be trusted; the connection is closed,
// since where the next request starts is unknown.
var errFraming = errors.New("malformed request")

// readNetstring reads one netstring, "5:hello," (http://cr.yp.to/proto/netstrings.txt),
// whose payload is at most max bytes. A length with a leading zero, a missing ',' or a
// payload longer than max is errFraming; a client that hangs up between requests is io.EOF.
func readNetstring(r *bufio.Reader, max int) ([]byte, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ':' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || (digits == 1 && n == 0) {
			return nil, fmt.Errorf("%w: netstring length is not a decimal number without leading zeros", errFraming)
		}
		n, digits = n*10+int(c-'0'), digits+1
		if n > max {
			return nil, fmt.Errorf("%w: netstring longer than %d bytes", errFraming, max)
		}
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("%w: netstring does not end in ','", errFraming)
	}
	return buf[:n], nil
}

// appendNetstring appends payload as a netstring.
func appendNetstring(dst []byte, payload string) []byte {
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, ':')
	dst = append(dst, payload...)
	return append(dst, ',')
}
