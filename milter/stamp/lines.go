package stamp

import (
	"bufio"
	"bytes"
	"io"
)

// lineReader reads the spooled body line by line, keeping byte offsets:
// straight from memory, or through a buffer from the temp file. Either way
// a line longer than lineBufSize is "long" and only its head is seen.
type lineReader struct {
	br      *bufio.Reader // nil when reading mem
	mem     []byte
	off     int64  // offset of the next unread byte
	scratch []byte // head of the current line when it is longer than the buffer
	lastEOL int    // terminator length of the line returned last
}

// line is one line of the body. head holds its first bytes (all of them
// unless long) and is valid until the next call to next.
type line struct {
	start int64
	head  []byte
	n     int64 // length, terminator included
	eol   int   // terminator length: 2 (CRLF), 1 (LF) or 0 (last line, unterminated)
	long  bool  // head is only the beginning of the line
}

const lineBufSize = 64 << 10

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, lineBufSize)}
}

func newMemLineReader(b []byte) *lineReader {
	return &lineReader{mem: b}
}

// next returns the next line, or io.EOF after the last one.
func (lr *lineReader) next() (line, error) {
	if lr.br == nil {
		return lr.nextMem()
	}
	b, err := lr.br.ReadSlice('\n')
	l := line{start: lr.off, head: b, n: int64(len(b))}
	last := b
	if err == bufio.ErrBufferFull {
		l.long = true
		lr.scratch = append(lr.scratch[:0], b[:min(len(b), 1024)]...)
		l.head = lr.scratch
		var prev byte
		for err == bufio.ErrBufferFull {
			prev = last[len(last)-1]
			last, err = lr.br.ReadSlice('\n')
			l.n += int64(len(last))
		}
		if len(last) == 1 && last[0] == '\n' && prev == '\r' {
			l.eol = 2
		}
	}
	lr.off += l.n
	if err != nil && err != io.EOF {
		return line{}, err
	}
	if l.n == 0 {
		return line{}, io.EOF
	}
	if l.eol == 0 {
		l.eol = eolLen(last)
	}
	lr.lastEOL = l.eol
	return l, nil
}

func (lr *lineReader) nextMem() (line, error) {
	rest := lr.mem[lr.off:]
	if len(rest) == 0 {
		return line{}, io.EOF
	}
	n := bytes.IndexByte(rest, '\n') + 1
	if n == 0 {
		n = len(rest)
	}
	l := line{start: lr.off, head: rest[:n], n: int64(n), eol: eolLen(rest[:n])}
	if n > lineBufSize {
		l.long, l.head = true, rest[:1024]
	}
	lr.off += int64(n)
	lr.lastEOL = l.eol
	return l, nil
}

// eolLen is the length of the line terminator at the end of b.
func eolLen(b []byte) int {
	n := len(b)
	switch {
	case n >= 2 && b[n-2] == '\r' && b[n-1] == '\n':
		return 2
	case n >= 1 && b[n-1] == '\n':
		return 1
	}
	return 0
}

// content is the line's head without its terminator (when not long).
func (l line) content() []byte {
	if l.long {
		return l.head
	}
	return l.head[:len(l.head)-l.eol]
}

// blank reports an empty line: the end of a header.
func (l line) blank() bool { return !l.long && l.eol > 0 && len(l.head) == l.eol }
