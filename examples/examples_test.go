// Package examples holds tests that keep the shipped examples true: the example
// configuration is valid and documents every section; and (prometheus_test.go) the alert
// rules pass promtool, use only metrics and labels postern exposes, a real Prometheus
// scrapes every daemon, and every dashboard query is valid PromQL against it.
package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/postern-mail/postern/internal/config"
	"github.com/postern-mail/postern/internal/testbench"
)

func TestExampleConfigurationIsValid(t *testing.T) {
	out, err := exec.Command(testbench.Postern(t), "-c", "postern.yaml", "check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("examples/postern.yaml: %v\n%s", err, out)
	}
}

// TestExampleHasEverySection keeps the example complete: every top-level key of
// config.Config is set in it, so a new section cannot ship undocumented.
func TestExampleHasEverySection(t *testing.T) {
	b, err := os.ReadFile("postern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		if name := yamlName(typ.Field(i)); name != "" {
			if _, ok := top[name]; !ok {
				t.Errorf("examples/postern.yaml has no %s: section", name)
			}
		}
	}
}

// TestExampleMentionsEveryKey: every key of the configuration, at any depth, appears in
// the example, set or in a comment ("# helo_name: …").
func TestExampleMentionsEveryKey(t *testing.T) {
	b, err := os.ReadFile("postern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlKeys(reflect.TypeFor[config.Config](), "") {
		name := key[strings.LastIndex(key, ".")+1:]
		if !regexp.MustCompile(`(?m)^[ #]*` + regexp.QuoteMeta(name) + `:|[{,] *` + regexp.QuoteMeta(name) + `:`).Match(b) {
			t.Errorf("examples/postern.yaml does not mention %s", key)
		}
	}
}

// TestExampleOptionalFeaturesAreValid turns on what the example shows commented out
// because it needs a secret that cannot ship (the milter's disclaimer and signature,
// lmtp-shadow into Cyrus), with stand-in secrets, and checks that it loads: the shipped
// templates exist and parse, and the commented keys are spelt right.
func TestExampleOptionalFeaturesAreValid(t *testing.T) {
	b, err := os.ReadFile("postern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secrets := strings.NewReplacer("/etc/postern/milter-marker.key", filepath.Join(dir, "marker.key"),
		"/etc/postern/cyrus.secret", filepath.Join(dir, "cyrus.secret"))
	for _, f := range []string{"marker.key", "cyrus.secret"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("stand-in\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	y := secrets.Replace(uncomment(string(b), "milter", "lmtp_shadow"))
	abs, _ := filepath.Abs("postern.yaml")
	c, err := config.Parse(abs, []byte(y))
	if err != nil {
		t.Fatalf("examples/postern.yaml with the milter's and lmtp-shadow's commented keys set: %v\n%s", err, y)
	}
	m := c.Milter
	if m.MarkerKey.IsZero() || m.Disclaimer.IsZero() || !m.Signature.Enabled() {
		t.Errorf("the disclaimer, the signature or the marker key did not come on: %+v", m)
	}
	if d, ok := m.Disclaimer.Domains["other.example.test"]; !ok || len(d.Markers) == 0 {
		t.Errorf("the per-domain disclaimer did not come on: %+v", m.Disclaimer.Domains)
	}
	if s := c.LMTPShadow; !s.Enabled() || s.Store.AdminPassword.IsZero() {
		t.Errorf("lmtp-shadow did not come on: %+v", s)
	}
}

// commentedKey is a commented-out key in the example: "  # html_file: milter/…".
var commentedKey = regexp.MustCompile(`^( +)# ( *[A-Za-z0-9_.-]+:)( |$)`)

// uncomment removes the "# " of the commented-out keys in the named top-level sections.
func uncomment(text string, sections ...string) string {
	lines := strings.Split(text, "\n")
	in := false
	for i, line := range lines {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			key, _, _ := strings.Cut(line, ":")
			in = slices.Contains(sections, key)
			continue
		}
		if in {
			lines[i] = commentedKey.ReplaceAllString(line, "$1$2$3")
		}
	}
	return strings.Join(lines, "\n")
}

// yamlKeys lists the dotted keys of a configuration type; types that decode themselves
// (durations, sizes, listeners, networks) are leaves.
func yamlKeys(typ reflect.Type, prefix string) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || reflect.PointerTo(typ).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil
	}
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if strings.HasSuffix(f.Tag.Get("yaml"), ",inline") {
			keys = append(keys, yamlKeys(f.Type, prefix)...)
			continue
		}
		if name := yamlName(f); name != "" {
			keys = append(keys, prefix+name)
			keys = append(keys, yamlKeys(f.Type, prefix+name+".")...)
		}
	}
	return keys
}

// yamlName is a field's key, "" for fields that are not read from the file.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}
