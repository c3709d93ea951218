package policyd

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the server and log sections of testdata/golden/*.golden")

// goldenPolicyd is the configuration of every golden dialog.
const goldenPolicyd = basePolicyd + `  rate_limits: [{name: hourly, window: 1h, messages: 2}]
`

// TestGoldenDialogs plays each testdata/golden/*.golden file's client bytes to a policyd
// on a unix socket in one connection, closes the client's sending side, and compares
// what the server sent back until it closed, and what it logged, with the file.
//
// A golden file is a comment, then sections starting with a line "-- client --",
// "-- server --" or "-- log --"; a section is every byte up to the next one. Rewrite the
// server and log sections with: go test ./policyd -run Golden -update
func TestGoldenDialogs(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.golden")
	if len(files) == 0 {
		t.Fatal("no testdata/golden/*.golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".golden"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			g := parseGolden(raw)
			d := newTestDaemon(t, goldenPolicyd)
			d.start(t)
			server := talk(t, d, g.sections["client"])
			log := goldenLog(d)
			if *update {
				g.sections["server"], g.sections["log"] = server, log
				if err := os.WriteFile(file, g.bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if server != g.sections["server"] {
				t.Errorf("server sent:\n%s\nwant:\n%s", server, g.sections["server"])
			}
			if log != g.sections["log"] {
				t.Errorf("server logged:\n%s\nwant:\n%s", log, g.sections["log"])
			}
		})
	}
}

// talk sends client over one connection and returns everything the server sends back
// before it closes the connection.
func talk(t *testing.T, d *testDaemon, client string) string {
	t.Helper()
	c, err := net.Dial("unix", d.listen.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		// The server may close early (a malformed request); what it did not read is lost.
		_, _ = io.WriteString(c, client)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	// Closing with unread input resets the connection: the replies before it were read.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the replies: %v (got %q)", err, got)
	}
	// The connection is closed and its goroutine gone once the daemon has no connections.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		n := len(d.conns)
		d.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
	}
	return string(got)
}

// goldenLog renders the verdict and malformed-request log lines, one per line.
func goldenLog(d *testDaemon) string {
	var b strings.Builder
	for _, e := range d.logs.All() {
		if e.Message != "policy verdict" && !strings.Contains(e.Message, "malformed") {
			continue
		}
		fields := e.ContextMap()
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s %q", e.Level, e.Message)
		for _, k := range keys {
			if k != "remote" {
				fmt.Fprintf(&b, " %s=%q", k, fmt.Sprint(fields[k]))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

type golden struct {
	comment  string
	order    []string
	sections map[string]string
}

func parseGolden(raw []byte) golden {
	g := golden{sections: map[string]string{}}
	name := ""
	var cur bytes.Buffer
	flush := func() {
		if name == "" {
			g.comment = cur.String()
		} else {
			g.sections[name] = cur.String()
			g.order = append(g.order, name)
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if s := strings.TrimRight(string(line), "\n"); strings.HasPrefix(s, "-- ") && strings.HasSuffix(s, " --") {
			flush()
			name = strings.TrimSuffix(strings.TrimPrefix(s, "-- "), " --")
			continue
		}
		cur.Write(line)
	}
	flush()
	for _, s := range []string{"client", "server", "log"} {
		if _, ok := g.sections[s]; !ok {
			g.order = append(g.order, s)
		}
	}
	return g
}

func (g golden) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(g.comment)
	for _, name := range g.order {
		fmt.Fprintf(&b, "-- %s --\n%s", name, g.sections[name])
	}
	return b.Bytes()
}
