package testbench

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// PostfixExample reads the settings of a shipped main.cf fragment in examples/postfix/
// (comments skipped, continuation lines joined), so tests configure Postfix the way
// the examples tell operators to, and the examples cannot rot.
func PostfixExample(t testing.TB, name string) map[string]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", "examples", "postfix", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string]string{}
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "":
		case line[0] == ' ' || line[0] == '\t':
			settings[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a main.cf line: %q", name, line)
			}
			last = strings.TrimSpace(k)
			settings[last] = strings.TrimSpace(v)
		}
	}
	return settings
}
