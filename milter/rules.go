package milter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/postern-mail/postern/internal/config"
)

// rules is the compiled configuration a message is judged by. It is built whole before
// it is used and swapped as a whole on reload, so a message never sees half of one
// configuration and a reload that fails keeps the running one.
type rules struct {
	nets       networks
	disclaimer disclaimerRules
	signature  *signatureRules // nil: no signature
	markerKey  []byte
	maxBody    int64
	spill      int64
	tempDir    string

	journal       bool
	acceptOnStore bool // on_store_error: accept
	logAddresses  bool // traffic_log.addresses
}

type disclaimerRules struct {
	def        *disclaimerText // nil: none
	byDomain   map[string]*disclaimerText
	directions []Direction
	groups     []string
}

type signatureRules struct {
	templates  *signatureTemplates
	directions []Direction
	groups     []string
	aboveQuote bool
}

// compile reads the disclaimer files and parses the signature templates.
func compile(c *config.Config) (*rules, error) {
	m := c.Milter
	r := &rules{
		nets:          networks{Internal: c.InternalNetworks, Trusted: c.TrustedRelays},
		markerKey:     []byte(m.MarkerKey.Reveal()),
		maxBody:       int64(m.MaxBodySize),
		spill:         int64(m.SpillSize),
		tempDir:       m.TempDir,
		journal:       m.Journal.Enabled,
		acceptOnStore: m.Journal.OnStoreError == "accept",
		logAddresses:  m.TrafficLog.Addresses,
	}
	d := m.Disclaimer
	r.disclaimer = disclaimerRules{byDomain: map[string]*disclaimerText{},
		directions: toDirections(d.Directions), groups: d.Groups}
	var err error
	if !d.DisclaimerText.IsZero() {
		if r.disclaimer.def, err = loadDisclaimer(d.HTMLFile, d.TextFile, d.Markers); err != nil {
			return nil, err
		}
	}
	for domain, t := range d.Domains {
		if r.disclaimer.byDomain[domain], err = loadDisclaimer(t.HTMLFile, t.TextFile, t.Markers); err != nil {
			return nil, err
		}
	}
	if s := m.Signature; s.Enabled() {
		tpl, err := loadSignature(s.HTMLTemplateFile, s.TextTemplateFile)
		if err != nil {
			return nil, err
		}
		r.signature = &signatureRules{templates: tpl, directions: toDirections(s.Directions),
			groups: s.Groups, aboveQuote: s.Placement == "above_quote"}
	}
	if (r.disclaimer.def != nil || len(r.disclaimer.byDomain) > 0 || r.signature != nil) && len(r.markerKey) == 0 {
		return nil, fmt.Errorf("milter: a disclaimer or signature needs milter.marker_key_file")
	}
	return r, nil
}

func toDirections(names []string) []Direction {
	out := make([]Direction, 0, len(names))
	for _, n := range names {
		out = append(out, Direction(n))
	}
	return out
}

// stamping reports whether anything may ever be inserted.
func (r *rules) stamping() bool {
	return r.disclaimer.def != nil || len(r.disclaimer.byDomain) > 0 || r.signature != nil
}

// disclaimerFor returns the disclaimer of a sender domain (an alias domain maps to its
// primary), else the default one; nil when there is none.
func (d *disclaimerRules) disclaimerFor(domain string, aliases map[string]string) *disclaimerText {
	if t := d.byDomain[domain]; t != nil {
		return t
	}
	if t := d.byDomain[aliases[domain]]; t != nil {
		return t
	}
	return d.def
}

// inGroups reports whether one of the sender's groups is listed (case-insensitive, as
// AD compares names); no list means everyone.
func inGroups(want, have []string) bool {
	if len(want) == 0 {
		return true
	}
	return slices.ContainsFunc(have, func(g string) bool {
		return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(g, w) })
	})
}
