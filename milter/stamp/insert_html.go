package stamp

// insertHTML adds fragment to an HTML document: above the quoted thread
// when asked for and found, otherwise before </body> (or </html>, or at the
// end of a document that has neither).
func insertHTML(doc, fragment string, where Placement) string {
	if fragment == "" {
		return doc
	}
	at := -1
	if where == AboveQuote {
		at = htmlQuoteStart(doc)
	}
	if at < 0 {
		at = htmlBottom(doc)
	}
	return doc[:at] + fragment + doc[at:]
}
