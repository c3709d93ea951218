package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one configuration error: where it is and what to do about it.
type Problem struct {
	Line int    // 0 when the key is absent from the file
	Key  string // dotted path, e.g. "directory.ldap.urls"
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem found in a configuration file, reported at once.
type Errors struct {
	File     string
	Problems []Problem
}

func (e *Errors) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("configuration %s has %d error(s):", e.File, len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes, validates and completes the configuration at path. On failure the
// error is an *Errors listing every problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Errors{File: path, Problems: []Problem{{Msg: fmt.Sprintf("%v (start from the commented example in /usr/share/doc/postern/postern.yaml)", err)}}}
	}
	return Parse(path, data)
}

// Parse is Load for a configuration already in memory; path names it in errors and
// anchors relative paths.
func Parse(path string, data []byte) (*Config, error) {
	l := &loader{file: path, baseDir: filepath.Dir(path)}
	cfg := Defaults()
	if err := yaml.Unmarshal(data, &l.root); err != nil {
		l.addYAML(err)
		return nil, l.result()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		l.addYAML(err)
	}
	l.validate(&cfg)
	if err := l.result(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

type loader struct {
	file     string
	baseDir  string
	root     yaml.Node
	problems []Problem
}

func (l *loader) result() error {
	if len(l.problems) == 0 {
		return nil
	}
	sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Line < l.problems[j].Line })
	return &Errors{File: l.file, Problems: l.problems}
}

// add records a problem with the key at path (dotted), finding its line in the file.
func (l *loader) add(key, format string, args ...any) {
	l.problems = append(l.problems, Problem{Line: l.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// addYAML turns the YAML library's messages into problems naming the key and line.
func (l *loader) addYAML(err error) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		p := Problem{Msg: strings.TrimPrefix(m, "yaml: ")}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			p.Line, _ = strconv.Atoi(g[1])
			p.Msg = g[2]
			if u := unknownField.FindStringSubmatch(g[2]); u != nil {
				p.Key = l.keyAt(p.Line, u[1])
				p.Msg = "unknown key (check its spelling and indentation against the example configuration)"
			} else {
				p.Key = l.keyAt(p.Line, "")
			}
		}
		l.problems = append(l.problems, p)
	}
}

// lineOf finds the line of a dotted key in the file, or 0 when it is absent.
func (l *loader) lineOf(key string) int {
	n := docNode(&l.root)
	line := 0
	for _, part := range strings.Split(key, ".") {
		if n == nil {
			break
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line, next = n.Content[i].Line, n.Content[i+1]
				}
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(part)
			if err != nil || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// keyAt returns the dotted path of the mapping key on line (named name, if given).
func (l *loader) keyAt(line int, name string) string {
	var found string
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := append(append([]string(nil), path...), k.Value)
				if (k.Line == line || v.Line == line) && (name == "" || k.Value == name) && found == "" {
					found = strings.Join(p, ".")
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(append([]string(nil), path...), strconv.Itoa(i)))
			}
		}
	}
	if d := docNode(&l.root); d != nil {
		walk(d, nil)
	}
	return found
}

func docNode(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	if n.Kind == 0 {
		return nil
	}
	return n
}

// path makes a file path from the configuration absolute, relative to the file's folder.
func (l *loader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.baseDir, p)
}
