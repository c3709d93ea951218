package stamp

import (
	"strings"
	"unicode"
)

// Where the quoted thread starts, found from the lines that mail clients
// write above it. Each detector errs on the side of "no quote", which puts
// the insertion at the bottom: never wrong, only less pretty.

// textLine is one line of text and the byte offset in the source where it
// starts (for HTML, where its first visible character comes from).
type textLine struct {
	text string
	off  int
}

// separatorPhrases are the words between the dashes of a reply or forward
// separator ("-----Original Message-----", Foxmail's
// "------------------ Original ------------------", Gmail's
// "---------- Forwarded message ---------"), compared in lower case.
var separatorPhrases = map[string]bool{
	"original message": true, "original": true, "forwarded message": true,
	"ursprüngliche nachricht": true, "message d'origine": true, "mensaje original": true,
	"messaggio originale": true, "oorspronkelijk bericht": true, "mensagem original": true,
	"原始邮件": true, "原始郵件": true, "转发邮件": true, "轉寄郵件": true, "原始信件": true,
}

// cjkSeparators are recognised even without dashes around them.
var cjkSeparators = map[string]bool{"原始邮件": true, "原始郵件": true, "转发邮件": true, "轉寄郵件": true}

// fromLabels and dateLabels start the lines of a quoted header block
// (Outlook's "From: … Sent: …", Foxmail's "From: … Date: …").
var (
	fromLabels = []string{"from:", "发件人:", "发件人：", "寄件者:", "寄件者：", "von:", "de:", "de :", "van:", "da:"}
	dateLabels = []string{"sent:", "date:", "发送时间:", "发送时间：", "日期:", "日期：", "時間:", "时间:", "时间：",
		"寄件日期:", "寄件日期：", "gesendet:", "datum:", "envoyé :", "envoyé:", "enviado:", "verzonden:", "inviato:"}
	wroteSuffixes = []string{"wrote:", "writes:", "schrieb:", "a écrit :", "a écrit:", "escribió:", "ha scritto:",
		"schreef:", "escreveu:", "写道:", "写道：", "寫道:", "寫道："}
	wroteVerbs          = []string{"wrote", "writes", "schrieb", "écrit", "escribió", "scritto", "schreef", "escreveu", "写道", "寫道"}
	attributionPrefixes = []string{"on ", "am ", "le ", "el ", "il ", "op ", "em ", "在"}
)

// quoteLine returns the index of the first line of the quoted thread, or
// -1. angle enables plain-text "> " quoting.
func quoteLine(lines []textLine, angle bool) int {
	for i := range lines {
		t := trimLine(lines[i].text)
		switch {
		case t == "":
			continue
		case isSeparator(t), isAttribution(lines, i):
			return i
		case isHeaderBlock(lines, i):
			if j := prevNonBlank(lines, i); j >= 0 && isRule(trimLine(lines[j].text)) {
				return j // Outlook's "________________" above "From:"
			}
			return i
		case angle && t[0] == '>':
			return i
		}
	}
	return -1
}

func trimLine(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\u00a0' || r == '\u3000' })
}

func isSeparator(t string) bool {
	if strings.EqualFold(t, "Begin forwarded message:") {
		return true
	}
	inner := strings.ToLower(trimLine(strings.Trim(t, "-_=*:： \t")))
	if cjkSeparators[inner] {
		return true
	}
	return strings.HasPrefix(t, "--") && strings.HasSuffix(t, "--") && separatorPhrases[inner]
}

// isAttribution recognises "On <date>, <name> wrote:" and its translations
// ("Am <date> schrieb <name>:"), also when the client wrapped it onto two
// lines. A date or an address must be there too, so "As Bob wrote:" in
// the reply itself is not taken for one.
func isAttribution(lines []textLine, i int) bool {
	t := trimLine(lines[i].text)
	if len(t) > 500 {
		return false
	}
	if strings.HasSuffix(t, ":") || strings.HasSuffix(t, "：") {
		if containsAnyFold(t, wroteVerbs) {
			return hasPrefixAny(t, attributionPrefixes) && strings.ContainsAny(t, "0123456789") ||
				strings.ContainsAny(t, "@") && endsWithAny(t, wroteSuffixes)
		}
	}
	if !hasPrefixAny(t, attributionPrefixes[:1]) || i+1 >= len(lines) {
		return false
	}
	next := trimLine(lines[i+1].text)
	return len(next) < 200 && endsWithAny(next, wroteSuffixes)
}

func containsAnyFold(t string, words []string) bool {
	lower := strings.ToLower(t)
	for _, w := range words {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// isHeaderBlock recognises a "From:" line followed closely by a date line.
func isHeaderBlock(lines []textLine, i int) bool {
	if !hasPrefixAny(trimLine(lines[i].text), fromLabels) {
		return false
	}
	for j, seen := i+1, 0; j < len(lines) && j < i+10 && seen < 3; j++ {
		t := trimLine(lines[j].text)
		if t == "" {
			continue
		}
		if hasPrefixAny(t, dateLabels) {
			return true
		}
		seen++
	}
	return false
}

func prevNonBlank(lines []textLine, i int) int {
	for j := i - 1; j >= 0; j-- {
		if trimLine(lines[j].text) != "" {
			return j
		}
	}
	return -1
}

// isRule is a line of at least eight underscores, as Outlook draws above a reply.
func isRule(t string) bool {
	return len(t) >= 8 && strings.Trim(t, "_") == ""
}

func hasPrefixAny(t string, prefixes []string) bool {
	for _, p := range prefixes {
		if len(t) >= len(p) && strings.EqualFold(t[:len(p)], p) {
			return true
		}
	}
	return false
}

func endsWithAny(t string, suffixes []string) bool {
	for _, s := range suffixes {
		if len(t) >= len(s) && strings.EqualFold(t[len(t)-len(s):], s) {
			return true
		}
	}
	return false
}

// splitLines cuts plain text into lines at LF (a CR before it stays in text
// and is trimmed by the detectors).
func splitLines(s string) []textLine {
	var lines []textLine
	for off := 0; off < len(s); {
		n := strings.IndexByte(s[off:], '\n') + 1
		if n == 0 {
			n = len(s) - off
		}
		lines = append(lines, textLine{text: s[off : off+n], off: off})
		off += n
	}
	return lines
}
