package tcptable

import (
	"bufio"
	"fmt"
	"strings"
)

// Protocol limits.
const (
	// maxRequest bounds a request. Postfix's keys are addresses and domains, a few
	// hundred bytes at most (three times that %XX-encoded); a longer request closes the
	// connection rather than be read into memory.
	maxRequest = 16 << 10
	// socketmap_table(5): "replies are not longer than 100000 characters (not including
	// the netstring encapsulation)".
	socketmapMaxReply = 100000
	// tcp_table(5): "Replies must be no longer than 4096 characters including the newline
	// terminator".
	tcpMaxReply = 4096
)

// protocol is one wire format Postfix speaks to a table server.
type protocol interface {
	// name is the protocol's metric label.
	name() string
	// read reads the next request; an error ends the connection.
	read(r *bufio.Reader) (request, error)
	// encode renders an answer, or says which limit a found value exceeds.
	encode(a Answer) ([]byte, error)
}

// request is one lookup a client asked for.
type request struct {
	table, key string
	bad        *Answer // the request was not understood: this is the answer to it
}

// socketmap is socketmap_table(5): netstring "NAME KEY" requests on one listener for
// every map, netstring "OK value" / "NOTFOUND " / "TEMP reason" / "PERM reason" replies.
type socketmap struct{}

func (socketmap) name() string { return "socketmap" }

func (socketmap) read(r *bufio.Reader) (request, error) {
	p, err := readNetstring(r, maxRequest)
	if err != nil {
		return request{}, err
	}
	table, key, _ := strings.Cut(string(p), " ")
	return request{table: table, key: key}, nil
}

func (socketmap) encode(a Answer) ([]byte, error) {
	var text string
	switch a.Status {
	case Found:
		text = "OK " + a.Value
	case NotFound:
		text = "NOTFOUND "
	case Temporary:
		text = "TEMP " + a.Reason
	default:
		text = "PERM " + a.Reason
	}
	if len(text) > socketmapMaxReply {
		return nil, fmt.Errorf("%d bytes, over socketmap_table(5)'s reply limit of %d", len(text), socketmapMaxReply)
	}
	return appendNetstring(nil, text), nil
}

// tcpTable is tcp_table(5) for one map: "get KEY" lines, "200 value" / "500 text" /
// "400 text" replies, everything %XX-encoded.
type tcpTable struct{ table string }

func (tcpTable) name() string { return "tcp" }

func (p tcpTable) read(r *bufio.Reader) (request, error) {
	line, err := readLine(r, maxRequest)
	if err != nil {
		return request{}, err
	}
	key, bad := parseTCPRequest(line)
	return request{table: p.table, key: key, bad: bad}, nil
}

func (tcpTable) encode(a Answer) ([]byte, error) {
	var line string
	switch a.Status {
	case Found:
		line = "200 " + encodeTCP(a.Value) + "\n"
	case NotFound:
		line = "500 not%20found\n"
	default: // tcp_table has no permanent error
		line = "400 " + encodeTCP(a.Reason) + "\n"
	}
	if len(line) > tcpMaxReply {
		return nil, fmt.Errorf("%d bytes encoded, over tcp_table(5)'s reply limit of %d (socketmap allows %d)", len(line), tcpMaxReply, socketmapMaxReply)
	}
	return []byte(line), nil
}
