package milter

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"unicode"

	"github.com/postern-mail/postern/internal/directory"
)

// signatureTemplates are a signature's two versions: HTML rendered with html/template,
// which escapes every directory value for its context, and text with text/template.
type signatureTemplates struct {
	html, text *lineTemplate
}

// rendered is one user's signature or one disclaimer, ready for insertion.
type rendered struct {
	Text, HTML string
}

func loadSignature(htmlFile, textFile string) (*signatureTemplates, error) {
	h, err := loadLineTemplate(htmlFile, func(src string) (executor, error) {
		return htmltemplate.New("signature").Option("missingkey=zero").Parse(src)
	})
	if err != nil {
		return nil, err
	}
	t, err := loadLineTemplate(textFile, func(src string) (executor, error) {
		return texttemplate.New("signature").Option("missingkey=zero").Parse(src)
	})
	if err != nil {
		return nil, err
	}
	return &signatureTemplates{html: h, text: t}, nil
}

// render fills both versions from a user's directory entry.
func (s *signatureTemplates) render(u *directory.Object) (rendered, error) {
	data := signatureData(u)
	h, err := s.html.render(data)
	if err != nil {
		return rendered{}, err
	}
	t, err := s.text.render(data)
	if err != nil {
		return rendered{}, err
	}
	return rendered{Text: t, HTML: h}, nil
}

// signatureData is what a template sees: the person attributes by their LDAP names
// ({{.title}}, {{.mobile}}) plus mail and login, each cleaned of control characters so a
// directory value cannot add lines or headers of its own.
func signatureData(u *directory.Object) map[string]string {
	data := make(map[string]string, len(u.Attrs)+2)
	for k, v := range u.Attrs {
		data[k] = cleanValue(v)
	}
	data["mail"] = cleanValue(u.Primary)
	data["login"] = cleanValue(u.Login)
	return data
}

// cleanValue turns line breaks and tabs into spaces, drops other control and format
// characters, and trims.
func cleanValue(v string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t' || r == '\u2028' || r == '\u2029':
			return ' '
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, v))
}

// executor is what html/template and text/template have in common.
type executor interface {
	Execute(w io.Writer, data any) error
}

// lineTemplate drops a template line whose fields all render empty, so that
// "Mobile: {{.mobile}}" disappears for a user without a mobile number. A line can be
// dropped only if every action on it is a plain field ({{.mobile}}, also piped to a
// function); lines with control actions ({{if}}, {{range}}, {{end}}, …) always stay.
type lineTemplate struct {
	lines  []string
	fields [][]string // per line: the fields it prints, nil when it is never dropped
	parse  func(string) (executor, error)
	full   executor

	mu       sync.Mutex
	variants map[string]executor // by the set of dropped lines
}

const maxVariants = 64

func loadLineTemplate(path string, parse func(string) (executor, error)) (*lineTemplate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signature template: %w", err)
	}
	t, err := newLineTemplate(string(b), parse)
	if err != nil {
		return nil, fmt.Errorf("signature template %s: %w", path, err)
	}
	return t, nil
}

func newLineTemplate(src string, parse func(string) (executor, error)) (*lineTemplate, error) {
	full, err := parse(src)
	if err != nil {
		return nil, err
	}
	t := &lineTemplate{lines: strings.SplitAfter(src, "\n"), parse: parse, full: full, variants: map[string]executor{}}
	t.fields = droppableFields(t.lines)
	return t, nil
}

var fieldAction = regexp.MustCompile(`^\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*(\|\s*[A-Za-z_][A-Za-z0-9_]*\s*)*-?\}\}$`)

// droppableFields finds, for each line, the fields of its actions when all of them are
// plain field actions contained in the line.
func droppableFields(lines []string) [][]string {
	out := make([][]string, len(lines))
	spanning := false // inside an action that began on an earlier line
	for i, line := range lines {
		rest, ok := line, !spanning
		var fields []string
		if spanning {
			end := strings.Index(rest, "}}")
			if end < 0 {
				continue
			}
			rest, spanning = rest[end+2:], false
		}
		for {
			start := strings.Index(rest, "{{")
			if start < 0 {
				break
			}
			end := strings.Index(rest[start:], "}}")
			if end < 0 {
				spanning, ok = true, false
				break
			}
			m := fieldAction.FindStringSubmatch(rest[start : start+end+2])
			if m == nil {
				ok = false
			} else {
				fields = append(fields, m[1])
			}
			rest = rest[start+end+2:]
		}
		if ok && len(fields) > 0 {
			out[i] = fields
		}
	}
	return out
}

// render executes the template without the lines whose fields are all empty in data.
func (t *lineTemplate) render(data map[string]string) (string, error) {
	var drop []int
	for i, fields := range t.fields {
		if fields == nil {
			continue
		}
		empty := true
		for _, f := range fields {
			if data[f] != "" {
				empty = false
				break
			}
		}
		if empty {
			drop = append(drop, i)
		}
	}
	ex, err := t.variant(drop)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := ex.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// variant returns the template with the given lines removed, parsed once and cached.
func (t *lineTemplate) variant(drop []int) (executor, error) {
	if len(drop) == 0 {
		return t.full, nil
	}
	var key strings.Builder
	for _, i := range drop {
		key.WriteString(strconv.Itoa(i) + ",")
	}
	t.mu.Lock()
	ex := t.variants[key.String()]
	t.mu.Unlock()
	if ex != nil {
		return ex, nil
	}
	var src strings.Builder
	next := 0
	for i, line := range t.lines {
		if next < len(drop) && drop[next] == i {
			next++
			continue
		}
		src.WriteString(line)
	}
	ex, err := t.parse(src.String())
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.variants) < maxVariants {
		t.variants[key.String()] = ex
	}
	t.mu.Unlock()
	return ex, nil
}

// loadDisclaimer reads a disclaimer's two versions and works out its markers.
func loadDisclaimer(htmlFile, textFile string, markers []string) (*disclaimerText, error) {
	h, err := os.ReadFile(htmlFile)
	if err != nil {
		return nil, fmt.Errorf("disclaimer: %w", err)
	}
	t, err := os.ReadFile(textFile)
	if err != nil {
		return nil, fmt.Errorf("disclaimer: %w", err)
	}
	d := &disclaimerText{rendered: rendered{Text: string(t), HTML: string(h)}, markers: markers}
	if len(d.markers) == 0 {
		if m := longestLine(d.Text); m != "" {
			d.markers = []string{m}
		}
	}
	return d, nil
}

// disclaimerText is one disclaimer and the strings that show a message already has it.
type disclaimerText struct {
	rendered
	markers []string
}

// longestLine is the default marker: the start of the most distinctive line of the text
// version, cut at a word boundary so that a mail program rewrapping a quoted reply is
// unlikely to break it.
func longestLine(s string) string {
	best := ""
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); len(line) > len(best) {
			best = line
		}
	}
	const maxMarker = 48
	if len(best) > maxMarker {
		if i := strings.LastIndexByte(best[:maxMarker], ' '); i >= 16 {
			return best[:i]
		}
		return strings.ToValidUTF8(best[:maxMarker], "")
	}
	return best
}
