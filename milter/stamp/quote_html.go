package stamp

import (
	"html"
	"strings"
)

// lineBreakTags end a visible line of HTML text.
var lineBreakTags = map[string]bool{
	"br": true, "p": true, "div": true, "blockquote": true, "li": true, "ul": true, "ol": true,
	"tr": true, "table": true, "hr": true, "pre": true, "h1": true, "h2": true, "h3": true,
	"h4": true, "h5": true, "h6": true, "dl": true, "dt": true, "dd": true, "center": true,
	"section": true, "article": true, "header": true, "footer": true, "body": true, "html": true,
}

// quoteIDs and quoteClasses mark the container of a quoted thread: Outlook
// (divRplyFwdMsg, appendonsend, Outlook for Mac's reference container),
// Gmail, Thunderbird, Yahoo, NetEase and Foxmail.
var (
	quoteIDs = []string{"divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container",
		"foxmail_quote", "foxmail-quote", "FoxmailOriginal", "isReplyContent", "isForwardContent"}
	quoteClasses = []string{"gmail_quote", "gmail_quote_container", "moz-cite-prefix",
		"moz-forward-container", "yahoo_quoted", "OutlookMessageHeader"}
)

// isQuoteTag reports a start tag that opens the quoted thread.
func isQuoteTag(s string, tok htmlTok) bool {
	switch tok.name {
	case "includetail": // QQ Mail and Foxmail wrap the original in it
		return true
	case "blockquote":
		if strings.EqualFold(attr(s, tok, "type"), "cite") {
			return true
		}
	case "hr":
		return strings.EqualFold(attr(s, tok, "id"), "stopSpelling")
	case "div":
		id := attr(s, tok, "id")
		for _, q := range quoteIDs {
			if strings.EqualFold(id, q) {
				return true
			}
		}
	}
	return hasClass(s, tok, quoteClasses...)
}

// htmlQuoteStart returns where in s an insertion goes above the quoted
// thread, or -1 when s has no recognisable quote.
func htmlQuoteStart(s string) int {
	z := &htmlScanner{s: s}
	var (
		lines     []textLine
		cur       strings.Builder
		curOff    = -1
		inHead    bool
		bodyStart int
		tagHit    = -1
	)
	flush := func() {
		if curOff >= 0 {
			lines = append(lines, textLine{text: cur.String(), off: curOff})
		}
		cur.Reset()
		curOff = -1
	}
	for tagHit < 0 {
		tok, ok := z.next()
		if !ok {
			break
		}
		switch {
		case tok.kind == tokText && !inHead:
			addVisible(&cur, &curOff, s[tok.start:tok.end], tok.start)
		case tok.kind != tokTag:
		case tok.name == "head":
			inHead = !tok.closing
		case tok.name == "body" && !tok.closing:
			inHead, bodyStart = false, tok.end
		case !tok.closing && !inHead && isQuoteTag(s, tok):
			tagHit = tok.start
		}
		if tok.kind == tokTag && lineBreakTags[tok.name] {
			flush()
		}
	}
	flush()
	pos := tagHit
	if i := quoteLine(lines, false); i >= 0 && (pos < 0 || lines[i].off < pos) {
		pos = lines[i].off
	}
	if pos < bodyStart {
		return -1
	}
	return walkBack(s, pos, bodyStart)
}

// addVisible appends the visible text of one raw text run to the current
// line, collapsing white space, and notes where the line's first visible
// character comes from.
func addVisible(cur *strings.Builder, curOff *int, raw string, off int) {
	text := html.UnescapeString(raw)
	if *curOff < 0 {
		lead := len(raw) - len(strings.TrimLeft(raw, " \t\r\n\f"))
		if trimLine(text) == "" {
			return
		}
		*curOff = off + lead
	}
	words := strings.Fields(strings.ReplaceAll(text, "\u00a0", " "))
	if len(words) > 0 && cur.Len() > 0 && strings.TrimLeft(text, " \t\r\n\u00a0") != text {
		cur.WriteByte(' ')
	}
	cur.WriteString(strings.Join(words, " "))
	if len(words) > 0 && strings.TrimRight(text, " \t\r\n\u00a0") != text {
		cur.WriteByte(' ')
	}
}

// walkBack moves pos before the start tags that directly open the quote
// (Outlook's <hr> above divRplyFwdMsg, the <div><br> Apple Mail puts above
// its blockquote), so the insertion lands between elements, not inside the
// quote's first line. It never moves before floor, the end of <body>.
func walkBack(s string, pos, floor int) int {
	for {
		q := pos
		for q > floor && isHTMLSpace(s[q-1]) {
			q--
		}
		if q <= floor || s[q-1] != '>' {
			return pos
		}
		lt := strings.LastIndexByte(s[floor:q-1], '<')
		if lt < 0 {
			return pos
		}
		lt += floor
		tok := scanToken(s, lt)
		if tok.kind != tokTag || tok.closing || tok.end != q || tok.name == "body" || tok.name == "html" {
			return pos
		}
		pos = lt
	}
}

// htmlBottom is where a bottom insertion goes: before the last </body>,
// else before the last </html>, else at the end — never after </html>, and
// never inside a tag, comment or script left open at the end.
func htmlBottom(s string) int {
	z := &htmlScanner{s: s}
	body, html, end := -1, -1, len(s)
	openedAt := 0 // start of the last start tag, for raw text left open
	for {
		tok, ok := z.next()
		if !ok {
			break
		}
		switch {
		case tok.kind == tokTag && tok.closing && tok.name == "body":
			body = tok.start
		case tok.kind == tokTag && tok.closing && tok.name == "html":
			html = tok.start
		case tok.kind == tokTag && !tok.closing:
			openedAt = tok.start
		}
		if tok.end == len(s) && unterminated(s, tok) {
			end = tok.start
			if tok.kind == tokRaw {
				end = openedAt
			}
		}
	}
	if z.raw != "" { // a <script> or <style> tag ends the document
		end = openedAt
	}
	switch {
	case body >= 0 && (html < 0 || body < html):
		return body
	case html >= 0:
		return html
	}
	return end
}

// unterminated reports a token that runs to the end of s without its end:
// text put after it would land inside it.
func unterminated(s string, tok htmlTok) bool {
	t := s[tok.start:tok.end]
	switch tok.kind {
	case tokTag:
		return !strings.HasSuffix(t, ">")
	case tokOther:
		if strings.HasPrefix(t, "<!--") {
			return len(t) < 7 || !strings.HasSuffix(t, "-->")
		}
		return !strings.HasSuffix(t, ">")
	case tokRaw:
		return true
	}
	return false
}
