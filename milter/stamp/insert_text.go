package stamp

import (
	"strings"
)

// insertText adds block to plain text, at the bottom or above the quoted
// thread, separated by a blank line. nl is the text's own line end;
// flowed marks RFC 3676 format=flowed text, whose inserted lines are
// space-stuffed and lose trailing spaces so they never join.
func insertText(text, block string, where Placement, nl string, flowed bool) (out, inserted string) {
	block = normalizeBlock(block, nl, flowed)
	if block == "" {
		return text, ""
	}
	if where == AboveQuote {
		lines := splitLines(text)
		if i := quoteLine(lines, true); i >= 0 {
			return insertAbove(text, lines[i].off, block, nl)
		}
	}
	core := strings.TrimRight(text, "\r\n")
	trail := text[len(core):]
	if core == "" {
		inserted = block
	} else {
		inserted = nl + nl + block
	}
	return core + inserted + trail, inserted
}

// insertAbove puts block before the line at byte at, with a blank line
// before it (unless one is there already) and one after it.
func insertAbove(text string, at int, block, nl string) (out, inserted string) {
	before := text[:at]
	lead := ""
	if core := strings.TrimRight(before, "\r\n"); strings.TrimSpace(core) != "" &&
		strings.Count(before[len(core):], "\n") < 2 {
		lead = nl // no blank line yet between the reply and the insertion
	}
	inserted = lead + block + nl + nl
	return before + inserted + text[at:], inserted
}

// normalizeBlock gives the inserted text the part's line ends and no
// trailing line breaks.
func normalizeBlock(block, nl string, flowed bool) string {
	block = strings.ReplaceAll(block, "\r\n", "\n")
	block = strings.TrimRight(block, "\n")
	if block == "" {
		return ""
	}
	lines := strings.Split(block, "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if flowed && l != "-- " {
			l = strings.TrimRight(l, " ")
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, ">") || strings.HasPrefix(l, "From ") {
				l = " " + l // space-stuffing, RFC 3676 §4.4
			}
		}
		lines[i] = l
	}
	return strings.Join(lines, nl)
}
