package tcptable

// Status is the outcome of one lookup, in terms both protocols can say.
type Status int

const (
	// Found is socketmap "OK value", tcp_table "200 value".
	Found Status = iota
	// NotFound is "NOTFOUND ", "500": no such key, or a key that is no address at all.
	NotFound
	// Temporary is "TEMP reason", "400 reason": Postfix defers the mail and retries.
	Temporary
	// Permanent is "PERM reason" (tcp_table has only "400"): a configuration error, such
	// as a map name main.cf asks for that postern does not serve. Postfix defers too.
	Permanent
)

// Result is the status as a bounded metric label.
func (s Status) Result() string {
	switch s {
	case Found:
		return "found"
	case NotFound:
		return "notfound"
	case Temporary:
		return "temp"
	default:
		return "perm"
	}
}

// Answer is one lookup's verdict: what Postfix is told and what the operator log says,
// built once so both protocols and the log line cannot drift apart.
type Answer struct {
	Status Status
	Value  string // Found: the data
	Reason string // Temporary, Permanent: the short text Postfix gets
	Detail string // Temporary, Permanent: the logged reason, for the operator
}

func found(v string) Answer { return Answer{Status: Found, Value: v} }

func notFound() Answer { return Answer{Status: NotFound} }

func temporary(reason, detail string) Answer {
	return Answer{Status: Temporary, Reason: reason, Detail: detail}
}

func permanent(reason, detail string) Answer {
	return Answer{Status: Permanent, Reason: reason, Detail: detail}
}
