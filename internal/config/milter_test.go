package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// milterFiles writes the files a milter section points at and returns their folder.
func milterFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"d.html": "<p>Confidential.</p>\n", "d.txt": "Confidential.\n", "empty.txt": " \n",
		"s.html": "<b>{{.displayName}}</b>\n", "s.txt": "{{.displayName}}\n", "bad.txt": "{{.displayName\n",
		"key": "k3y\n", "directory.yaml": "users: []\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func parseMilter(t *testing.T, dir, section string) (*Config, error) {
	t.Helper()
	y := fmt.Sprintf("domains: [corp.example.test]\nstate_dir: %s\ndirectory: {backend: static, static: {file: directory.yaml}}\n%s", dir, section)
	return Parse(filepath.Join(dir, "postern.yaml"), []byte(y))
}

func TestMilterDefaults(t *testing.T) {
	dir := milterFiles(t)
	c, err := parseMilter(t, dir, "milter: {listen: inet:127.0.0.1:10030}\n")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Milter
	if !m.Enabled() || m.MaxBodySize != 50<<20 || m.SpillSize != 1<<20 || m.Journal.OnStoreError != "tempfail" ||
		m.Signature.Placement != "bottom" || fmt.Sprint(m.Disclaimer.Directions) != "[outbound]" ||
		fmt.Sprint(m.Signature.Directions) != "[outbound internal]" {
		t.Errorf("defaults: %+v", m)
	}
	j := c.Journal
	if j.Store != "file" || j.Path != filepath.Join(dir, "journal") || j.Retention.D() != 30*24*time.Hour {
		t.Errorf("journal defaults: %+v", j)
	}
	if !strings.Contains(c.Effective(), "max_body_size: 50MB") {
		t.Errorf("effective configuration does not show the size in MB:\n%s", c.Effective())
	}
}

func TestMilterFull(t *testing.T) {
	dir := milterFiles(t)
	c, err := parseMilter(t, dir, `
redis: {addrs: [127.0.0.1:6379]}
journal: {store: redis, retention: 7d}
milter:
  listen: unix:/var/spool/postfix/postern/milter.sock
  marker_key_file: key
  disclaimer:
    html_file: d.html
    text_file: d.txt
    directions: [outbound, internal]
    groups: [Staff]
    domains:
      Other.Example.Test.: {html_file: d.html, text_file: d.txt, markers: [Confidential]}
  signature: {html_template_file: s.html, text_template_file: s.txt, directions: [outbound], placement: above_quote}
  journal: {enabled: true, on_store_error: accept}
  max_body_size: 30MB
  traffic_log: {file: traffic.jsonl, addresses: true}
`)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Milter
	if m.MarkerKey.Reveal() != "k3y" || m.MaxBodySize != 30<<20 || m.Disclaimer.TextFile != filepath.Join(dir, "d.txt") ||
		m.Signature.Placement != "above_quote" || m.Journal.OnStoreError != "accept" || !m.TrafficLog.Addresses {
		t.Errorf("parsed: %+v", m)
	}
	if _, ok := m.Disclaimer.Domains["other.example.test"]; !ok {
		t.Errorf("domain key not normalised: %v", m.Disclaimer.Domains)
	}
	if strings.Contains(c.Effective(), "k3y") {
		t.Error("the marker key shows in the effective configuration")
	}
}

func TestMilterErrors(t *testing.T) {
	dir := milterFiles(t)
	tests := []struct {
		name    string
		section string
		want    string // in the error's text
	}{
		{"direction", "milter: {disclaimer: {directions: [outgoing]}}", "milter.disclaimer.directions.0: \"outgoing\""},
		{"placement", "milter: {signature: {placement: top}}", "milter.signature.placement"},
		{"only one disclaimer version", "milter: {marker_key_file: key, disclaimer: {text_file: d.txt}}", "set both html_file and text_file"},
		{"missing file", "milter: {marker_key_file: key, disclaimer: {text_file: d.txt, html_file: nope.html}}", "nope.html"},
		{"empty file", "milter: {marker_key_file: key, disclaimer: {text_file: empty.txt, html_file: d.html}}", "is empty"},
		{"bad template", "milter: {marker_key_file: key, signature: {text_template_file: bad.txt, html_template_file: s.html}}", "milter.signature.text_template_file"},
		{"marker key needed", "milter: {disclaimer: {text_file: d.txt, html_file: d.html}}", "milter.marker_key_file: required"},
		{"on_store_error", "milter: {journal: {on_store_error: drop}}", "use tempfail or accept"},
		{"size", "milter: {max_body_size: 50 parsecs}", "bad size"},
		{"non-loopback listener", "milter: {listen: inet:0.0.0.0:10030}", "can be reached from other hosts"},
		{"redis journal without redis", "journal: {store: redis}", "journal.store: redis needs the top-level redis section"},
		{"unknown store", "journal: {store: bbolt}", "use file or redis"},
		{"short retention", "journal: {retention: 10m}", "too short"},
		{"domain", "milter: {marker_key_file: key, disclaimer: {domains: {'not a domain': {text_file: d.txt, html_file: d.html}}}}", "is not a domain name"},
		{"traffic log folder", "milter: {traffic_log: {file: /nonexistent/dir/t.jsonl}}", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseMilter(t, dir, tt.section+"\n")
			var ce *Errors
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"50MB": 50 << 20, "50 mb": 50 << 20, "512K": 512 << 10, "1GB": 1 << 30,
		"123": 123, "10B": 10, "0": 0} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "-1MB", "1.5MB", "1TB", "99999999999GB"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
	for size, want := range map[ByteSize]string{50 << 20: "50MB", 1536: "1536", 3 << 10: "3KB", 1 << 30: "1GB"} {
		b, _ := yaml.Marshal(size)
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("marshal %d = %q, want %q", size, got, want)
		}
	}
}
