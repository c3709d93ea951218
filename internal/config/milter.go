package config

import (
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"

	"go.yaml.in/yaml/v3"

	"github.com/postern-mail/postern/internal/address"
)

// Milter configures `postern milter`: the disclaimer and the personal signature, the
// envelope journal and the traffic statistics, in Postfix's smtpd_milters.
type Milter struct {
	// Listen is where Postfix connects (smtpd_milters = inet:127.0.0.1:10030).
	Listen     Listen        `yaml:"listen"`
	Disclaimer Disclaimer    `yaml:"disclaimer"`
	Signature  Signature     `yaml:"signature"`
	Journal    MilterJournal `yaml:"journal"`
	TrafficLog MilterTraffic `yaml:"traffic_log"`
	// MarkerKeyFile holds the key of the header that marks a message as stamped, bound to
	// its Message-ID, so a message that loops back is not stamped twice. Required when a
	// disclaimer or signature is configured.
	MarkerKeyFile string `yaml:"marker_key_file"`
	MarkerKey     Secret `yaml:"-"`
	// MaxBodySize: a larger message passes unchanged (it is still journalled and counted).
	MaxBodySize ByteSize `yaml:"max_body_size"`
	// SpillSize: a body larger than this is kept in a temporary file, not in memory.
	SpillSize ByteSize `yaml:"spill_size"`
	// TempDir holds spilled bodies; default the system's temporary folder.
	TempDir string `yaml:"temp_dir"`
}

// Disclaimer is the legal text added per sender domain, in an HTML and a text version.
type Disclaimer struct {
	DisclaimerText `yaml:",inline"`
	// Domains override the default text for senders of a domain (or an alias of it).
	Domains map[string]DisclaimerText `yaml:"domains"`
	// Directions are the message directions that get it: outbound, inbound, internal.
	Directions []string `yaml:"directions"`
	// Groups, when set, limit it to senders in one of these directory groups.
	Groups []string `yaml:"groups"`
}

// DisclaimerText is one disclaimer's files and the strings that show it is present.
type DisclaimerText struct {
	HTMLFile string `yaml:"html_file"`
	TextFile string `yaml:"text_file"`
	// Markers: a message whose text already holds one of these (a reply quoting the
	// disclaimer) is not stamped again. Default: the longest line of the text version.
	Markers []string `yaml:"markers"`
}

// IsZero reports whether no disclaimer files are set.
func (d DisclaimerText) IsZero() bool { return d.HTMLFile == "" && d.TextFile == "" }

// Signature is the per-user signature, rendered from directory attributes.
type Signature struct {
	HTMLTemplateFile string   `yaml:"html_template_file"`
	TextTemplateFile string   `yaml:"text_template_file"`
	Directions       []string `yaml:"directions"`
	Groups           []string `yaml:"groups"`
	// Placement is bottom (after everything) or above_quote (before a quoted reply).
	Placement string `yaml:"placement"`
}

// Enabled reports whether a signature is configured.
func (s Signature) Enabled() bool { return s.HTMLTemplateFile != "" || s.TextTemplateFile != "" }

// MilterJournal says whether the milter records envelopes, and what a store failure does.
type MilterJournal struct {
	Enabled bool `yaml:"enabled"`
	// OnStoreError is tempfail (the client retries: an incomplete archive is worse than
	// a delayed mail) or accept (the message goes on without a journal entry).
	OnStoreError string `yaml:"on_store_error"`
}

// MilterTraffic is the optional JSON-lines traffic log, one line per message.
type MilterTraffic struct {
	File string `yaml:"file"`
	// Addresses adds the sender and recipient addresses; off, only domains and counts.
	Addresses bool `yaml:"addresses"`
}

// Enabled reports whether the configuration gives the milter anything to listen on.
func (m Milter) Enabled() bool { return !m.Listen.IsZero() }

// Milter defaults, applied to keys the file leaves out.
const (
	defaultMaxBodySize = ByteSize(50 << 20)
	defaultSpillSize   = ByteSize(1 << 20)
)

// Directions a message can have.
var directions = []string{"outbound", "inbound", "internal"}

func (l *loader) validateMilter(c *Config) {
	m := &c.Milter
	l.checkListen("milter.listen", m.Listen, c.AllowNonLoopback)
	if m.MaxBodySize == 0 {
		m.MaxBodySize = defaultMaxBodySize
	}
	if m.SpillSize == 0 {
		m.SpillSize = defaultSpillSize
	}
	if m.MaxBodySize < 0 || m.SpillSize < 0 {
		l.add("milter.max_body_size", "sizes must be positive, e.g. 50MB")
	}
	if m.TempDir != "" {
		m.TempDir = l.path(m.TempDir)
		if fi, err := os.Stat(m.TempDir); err != nil || !fi.IsDir() {
			l.add("milter.temp_dir", "%s is not a folder", m.TempDir)
		}
	}
	l.validateDisclaimer(&m.Disclaimer)
	l.validateSignature(&m.Signature)
	if !m.Disclaimer.IsZero() || len(m.Disclaimer.Domains) > 0 || m.Signature.Enabled() {
		l.readSecret("milter.marker_key_file", &m.MarkerKeyFile, &m.MarkerKey)
	}
	switch m.Journal.OnStoreError {
	case "":
		m.Journal.OnStoreError = "tempfail"
	case "tempfail", "accept":
	default:
		l.add("milter.journal.on_store_error", "%q: use tempfail or accept", m.Journal.OnStoreError)
	}
	if f := m.TrafficLog.File; f != "" {
		m.TrafficLog.File = l.path(f)
		if fi, err := os.Stat(filepath.Dir(m.TrafficLog.File)); err != nil || !fi.IsDir() {
			l.add("milter.traffic_log.file", "the folder of %s does not exist", m.TrafficLog.File)
		}
	}
}

func (l *loader) validateDisclaimer(d *Disclaimer) {
	const k = "milter.disclaimer."
	if d.Directions == nil {
		d.Directions = []string{"outbound"}
	}
	l.checkDirections(k+"directions", d.Directions)
	l.checkDisclaimerText(k, &d.DisclaimerText)
	domains := make(map[string]DisclaimerText, len(d.Domains))
	for name, t := range d.Domains {
		key := k + "domains." + name
		n, err := address.Domain(name)
		if err != nil {
			l.add(key, "%q is not a domain name", name)
			continue
		}
		if t.IsZero() {
			l.add(key, "set html_file and text_file")
			continue
		}
		l.checkDisclaimerText(key+".", &t)
		domains[n] = t
	}
	d.Domains = domains
}

func (l *loader) checkDisclaimerText(k string, t *DisclaimerText) {
	if t.IsZero() {
		return
	}
	if t.HTMLFile == "" || t.TextFile == "" {
		l.add(k+"html_file", "set both html_file and text_file: each part of a message gets the version of its type")
		return
	}
	t.HTMLFile, t.TextFile = l.path(t.HTMLFile), l.path(t.TextFile)
	for key, f := range map[string]string{"html_file": t.HTMLFile, "text_file": t.TextFile} {
		if b, err := os.ReadFile(f); err != nil {
			l.add(k+key, "%v", err)
		} else if strings.TrimSpace(string(b)) == "" {
			l.add(k+key, "%s is empty", f)
		}
	}
}

func (l *loader) validateSignature(s *Signature) {
	const k = "milter.signature."
	if s.Directions == nil {
		s.Directions = []string{"outbound", "internal"}
	}
	l.checkDirections(k+"directions", s.Directions)
	switch s.Placement {
	case "":
		s.Placement = "bottom"
	case "bottom", "above_quote":
	default:
		l.add(k+"placement", "%q: use bottom or above_quote", s.Placement)
	}
	if !s.Enabled() {
		return
	}
	if s.HTMLTemplateFile == "" || s.TextTemplateFile == "" {
		l.add(k+"html_template_file", "set both html_template_file and text_template_file")
		return
	}
	s.HTMLTemplateFile, s.TextTemplateFile = l.path(s.HTMLTemplateFile), l.path(s.TextTemplateFile)
	if b, err := os.ReadFile(s.HTMLTemplateFile); err != nil {
		l.add(k+"html_template_file", "%v", err)
	} else if _, err := htmltemplate.New("signature").Parse(string(b)); err != nil {
		l.add(k+"html_template_file", "%v", err)
	}
	if b, err := os.ReadFile(s.TextTemplateFile); err != nil {
		l.add(k+"text_template_file", "%v", err)
	} else if _, err := texttemplate.New("signature").Parse(string(b)); err != nil {
		l.add(k+"text_template_file", "%v", err)
	}
}

func (l *loader) checkDirections(key string, ds []string) {
	for i, d := range ds {
		if !slices.Contains(directions, d) {
			l.add(fmt.Sprintf("%s.%d", key, i), "%q: use outbound, inbound or internal", d)
		}
	}
}

// ByteSize is a size written as "50MB", "512KB", "1GB" or a number of bytes; the units
// are binary (1MB = 1048576 bytes), as Postfix's message_size_limit users expect.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GB", 30}, {"G", 30}, {"MB", 20}, {"M", 20}, {"KB", 10}, {"K", 10}, {"B", 0}}

// UnmarshalYAML parses a size with an optional unit.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return typeError(n, "bad size %q (use e.g. 50MB, 512KB or a number of bytes)", n.Value)
	}
	*s = v
	return nil
}

// MarshalYAML writes the size with the largest unit that divides it.
func (s ByteSize) MarshalYAML() (any, error) {
	for _, u := range sizeUnits {
		if len(u.suffix) == 2 && s != 0 && s%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", s>>u.shift, u.suffix), nil
		}
	}
	return int64(s), nil
}

func parseByteSize(raw string) (ByteSize, error) {
	s := strings.ToUpper(strings.TrimSpace(raw))
	shift := uint(0)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("bad size %q", raw)
	}
	return ByteSize(n << shift), nil
}
