package stamp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
)

// spool holds a body in memory until it grows past a limit, then in a temp
// file, so a 50 MB attachment never sits in the heap.
type spool struct {
	dir   string
	spill int64 // < 0: never spill
	buf   []byte
	file  *os.File
	w     *bufio.Writer
	size  int64
}

func newSpool(opt Options) *spool {
	spill := opt.SpillSize
	if spill == 0 {
		spill = DefaultSpillSize
	}
	return &spool{dir: opt.TempDir, spill: spill}
}

// readSpool copies body into a new spool; tooLarge reports a body above
// opt.MaxSize, in which case reading stopped early.
func readSpool(body io.Reader, opt Options) (s *spool, tooLarge bool, err error) {
	s = newSpool(opt)
	r := body
	if opt.MaxSize > 0 {
		r = io.LimitReader(body, opt.MaxSize+1)
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Close()
		return nil, false, err
	}
	if err := s.finish(); err != nil {
		s.Close()
		return nil, false, err
	}
	return s, opt.MaxSize > 0 && s.size > opt.MaxSize, nil
}

// ReadFrom fills the spool from r without an intermediate buffer.
func (s *spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if s.file != nil {
			n, err := io.Copy(s.w, r)
			s.size += n
			return total + n, err
		}
		if len(s.buf) == cap(s.buf) {
			s.buf = slices.Grow(s.buf, max(4096, len(s.buf)))
		}
		n, err := r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf, s.size, total = s.buf[:len(s.buf)+n], s.size+int64(n), total+int64(n)
		if s.spill >= 0 && s.size > s.spill {
			if err := s.toFile(); err != nil {
				return total, err
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// reserve makes room in memory for n bytes when they will stay there.
func (s *spool) reserve(n int64) {
	if s.file == nil && (s.spill < 0 || n <= s.spill) && int64(cap(s.buf)) < n {
		s.buf = append(make([]byte, 0, n), s.buf...)
	}
}

// Write appends p, moving the content to a temp file once it passes the limit.
func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && s.spill >= 0 && s.size+int64(len(p)) > s.spill {
		if err := s.toFile(); err != nil {
			return 0, err
		}
	}
	s.size += int64(len(p))
	if s.file != nil {
		return s.w.Write(p)
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

func (s *spool) toFile() error {
	f, err := os.CreateTemp(s.dir, "postern-stamp-*")
	if err != nil {
		return err
	}
	s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
	_, err = s.w.Write(s.buf)
	s.buf = nil
	return err
}

// finish flushes buffered writes; the spool is then read through readerAt.
func (s *spool) finish() error {
	if s.w != nil {
		return s.w.Flush()
	}
	return nil
}

func (s *spool) readerAt() io.ReaderAt {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.buf)
}

// lineReader reads the spool line by line.
func (s *spool) lineReader() *lineReader {
	if s.file == nil {
		return newMemLineReader(s.buf)
	}
	return newLineReader(s.section(0, s.size))
}

// copyTo writes the bytes [off, end) to w; buf is scratch space for a temp file.
func (s *spool) copyTo(w io.Writer, off, end int64, buf []byte) error {
	if s.file == nil {
		_, err := w.Write(s.buf[off:end])
		return err
	}
	_, err := io.CopyBuffer(w, s.section(off, end), buf)
	return err
}

// section returns the bytes [off, end) of the spool as a reader.
func (s *spool) section(off, end int64) *io.SectionReader {
	return io.NewSectionReader(s.readerAt(), off, end-off)
}

// bytes reads [off, end) into memory.
func (s *spool) bytes(off, end int64) ([]byte, error) {
	if s.file == nil {
		return s.buf[off:end], nil
	}
	b := make([]byte, end-off)
	_, err := s.file.ReadAt(b, off)
	return b, err
}

// Close releases the spool and removes its temp file.
func (s *spool) Close() error {
	s.buf = nil
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	s.file = nil
	return errors.Join(err, os.Remove(name))
}

// body returns the spool as the Result body, which removes the temp file on Close.
func (s *spool) body() io.ReadCloser {
	return &spoolBody{Reader: s.section(0, s.size), s: s}
}

type spoolBody struct {
	io.Reader
	s *spool
}

func (b *spoolBody) Close() error { return b.s.Close() }
