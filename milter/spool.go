package milter

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// spool holds a message body: in memory up to limit bytes, beyond that in a temporary
// file that is unlinked as soon as it is created, so memory stays bounded whatever the
// size and nothing is left on disk if the process dies mid-message.
type spool struct {
	limit int64
	dir   string
	mem   []byte
	file  *os.File
	size  int64
}

func newSpool(limit int64, dir string) *spool { return &spool{limit: limit, dir: dir} }

// Write appends p, moving everything to the temporary file once limit is passed.
func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && s.size+int64(len(p)) > s.limit {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.size += int64(n)
		if err != nil {
			return n, fmt.Errorf("spool body: %w (check milter.temp_dir)", err)
		}
		return n, nil
	}
	s.mem = append(s.mem, p...)
	s.size += int64(len(p))
	return len(p), nil
}

func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, "postern-milter-*")
	if err != nil {
		return fmt.Errorf("spool body: %w (check milter.temp_dir)", err)
	}
	os.Remove(f.Name()) // unlinked: the space returns when the file is closed
	if _, err := f.Write(s.mem); err != nil {
		f.Close()
		return fmt.Errorf("spool body: %w (check milter.temp_dir)", err)
	}
	s.file, s.mem = f, nil
	return nil
}

// Size is the number of bytes written.
func (s *spool) Size() int64 { return s.size }

// Spilled reports whether the body went to a file.
func (s *spool) Spilled() bool { return s.file != nil }

// Reader returns a new reader over everything written so far; several may be used one
// after the other.
func (s *spool) Reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.mem)
}

// Close releases the memory and the file.
func (s *spool) Close() error {
	s.mem = nil
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
