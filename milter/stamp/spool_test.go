package stamp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestSpillToTempFile(t *testing.T) {
	dir := t.TempDir()
	h, body := loadEML(t, "mixed-attachments.eml", true)
	res, err := Apply(h, bytes.NewReader(body), stdIns, Options{SpillSize: 512, TempDir: dir})
	if err != nil || !res.Changed {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if n := countFiles(t, dir); n != 1 {
		t.Errorf("%d temp files while the body is open, want 1 (the input's is gone)", n)
	}
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d temp files after Close", n)
	}
	_, inMemory := runApply(t, h, body, stdIns, Options{SpillSize: -1})
	if !bytes.Equal(out, inMemory) {
		t.Error("spilled and in-memory results differ")
	}
}

func TestSkipLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	h, body := loadEML(t, "calendar.eml", true)
	res, err := Apply(h, bytes.NewReader(body), stdIns, Options{SpillSize: 64, TempDir: dir})
	if err != nil || res.Skipped != SkipCalendar || res.Body != nil {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d temp files left", n)
	}
}

func TestIOErrorsAreErrors(t *testing.T) {
	h, body := loadEML(t, "plain.eml", true)
	_, err := Apply(h, bytes.NewReader(body), stdIns, Options{SpillSize: 16, TempDir: filepath.Join(t.TempDir(), "missing")})
	if err == nil {
		t.Error("no error for an unusable temp dir")
	}
	broken := io.MultiReader(bytes.NewReader(body[:20]), errReader{})
	if _, err := Apply(h, broken, stdIns, Options{}); !errors.Is(err, errBroken) {
		t.Errorf("read error: %v", err)
	}
}

func TestMaxSizeStopsReading(t *testing.T) {
	h, body := loadEML(t, "plain.eml", true)
	r := &countingReader{r: bytes.NewReader(bytes.Repeat(body, 100))}
	res, err := Apply(h, r, stdIns, Options{MaxSize: 100})
	if err != nil || res.Skipped != SkipTooLarge {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if r.n > 101 {
		t.Errorf("read %d bytes of a body over the 100-byte cap", r.n)
	}
}

var errBroken = errors.New("connection reset")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
