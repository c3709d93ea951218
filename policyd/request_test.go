package policyd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func read(s string) (*Request, error) {
	return ReadRequest(bufio.NewReaderSize(strings.NewReader(s), MaxLine))
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, in string
		want     *Request
		bad      string // part of the Malformed reason; "" when the request is good
	}{
		{"minimal", "request=smtpd_access_policy\n\n", &Request{Request: "smtpd_access_policy"}, ""},
		{"fields", "request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b\nrecipient=c@d\nrecipient_count=3\nsize=1000\nsasl_username=bob\ninstance=1.2.3\n\n",
			&Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Sender: "a@b", Recipient: "c@d", RecipientCount: 3, Size: 1000, SASLUsername: "bob", Instance: "1.2.3"}, ""},
		{"a value containing =", "request=smtpd_access_policy\nsender=prvs=1234=bob@corp.example.test\nsasl_username==x=\n\n",
			&Request{Request: "smtpd_access_policy", Sender: "prvs=1234=bob@corp.example.test", SASLUsername: "=x="}, ""},
		{"empty values", "request=smtpd_access_policy\nsize=\nrecipient_count=\nsender=\n\n", &Request{Request: "smtpd_access_policy"}, ""},
		{"unknown attributes are ignored, even repeated", "request=smtpd_access_policy\nfuture=1\nfuture=2\nccert_subject=CN=x\n\n", &Request{Request: "smtpd_access_policy"}, ""},
		{"CRLF line ends", "request=smtpd_access_policy\r\nsender=a@b\r\n\r\n", &Request{Request: "smtpd_access_policy", Sender: "a@b"}, ""},
		{"no request attribute", "sender=a@b\n\n", nil, "want request=smtpd_access_policy"},
		{"another kind of request", "request=junk\n\n", nil, "want request=smtpd_access_policy"},
		{"a line without =", "request=smtpd_access_policy\nhello\n\n", nil, "not name=value"},
		{"an empty name", "request=smtpd_access_policy\n=x\n\n", nil, "not name=value"},
		{"a repeated attribute", "request=smtpd_access_policy\nsender=a@b\nsender=c@d\n\n", nil, "repeated"},
		{"a bad number", "request=smtpd_access_policy\nsize=12k\n\n", nil, "not a number"},
		{"a negative number", "request=smtpd_access_policy\nrecipient_count=-1\n\n", nil, "not a number"},
		{"an empty request", "\n", nil, "empty request"},
		{"an oversized line", "request=smtpd_access_policy\nsender=" + strings.Repeat("x", MaxLine) + "\n\n", nil, "longer than"},
		{"too many attributes", "request=smtpd_access_policy\n" + strings.Repeat("x=y\n", MaxAttributes) + "\n", nil, "more than"},
		{"closed in a line", "request=smtpd_access_policy\nsend", nil, "middle of a line"},
		{"closed before the empty line", "request=smtpd_access_policy\n", nil, "no empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.in)
			var bad *Malformed
			switch {
			case tt.bad == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.bad == "" && !reflect.DeepEqual(got, tt.want):
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			case tt.bad != "" && (!errors.As(err, &bad) || !strings.Contains(bad.Reason, tt.bad)):
				t.Fatalf("error %v; want a Malformed saying %q", err, tt.bad)
			}
		})
	}
	t.Run("a line of exactly MaxLine bytes", func(t *testing.T) {
		v := strings.Repeat("x", MaxLine-len("sender=")-1)
		if r, err := read("request=smtpd_access_policy\nsender=" + v + "\n\n"); err != nil || r.Sender != v {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("EOF between requests", func(t *testing.T) {
		if _, err := read(""); !errors.Is(err, io.EOF) {
			t.Fatalf("error %v; want io.EOF", err)
		}
	})
}

// FuzzReadRequest: the parser never panics, never accepts a request without
// request=smtpd_access_policy, and what it accepts reads back the same when written out.
func FuzzReadRequest(f *testing.F) {
	f.Add("request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b\nrecipient=c=d@e\nsize=10\n\n")
	f.Add("request=smtpd_access_policy\nsasl_username=bob\nrecipient_count=2\ninstance=x.y\n\nrequest=smtpd_access_policy\n\n")
	f.Add("request=smtpd_access_policy\r\nfoo=bar\r\n\r\n")
	f.Add("request=smtpd_access_policy\nsender=a\nsender=b\n\n")
	f.Add("=\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), MaxLine)
		for {
			r, err := ReadRequest(br)
			if err != nil {
				var bad *Malformed
				if !errors.Is(err, io.EOF) && !errors.As(err, &bad) {
					t.Fatalf("error %v is neither io.EOF nor *Malformed", err)
				}
				return
			}
			if r.Request != "smtpd_access_policy" {
				t.Fatalf("accepted request=%q", r.Request)
			}
			if strings.Contains(encode(r), "\r\n") {
				continue // a value ending in CR: its line's CR LF end is read leniently as LF
			}
			again, err := read(encode(r))
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
			}
		}
	})
}

// encode writes the attributes policyd reads, as Postfix would.
func encode(r *Request) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"request", r.Request}, {"protocol_state", r.ProtocolState}, {"protocol_name", r.ProtocolName},
		{"client_address", r.ClientAddress}, {"client_name", r.ClientName}, {"helo_name", r.HeloName},
		{"sender", r.Sender}, {"recipient", r.Recipient}, {"recipient_count", fmt.Sprint(r.RecipientCount)},
		{"queue_id", r.QueueID}, {"instance", r.Instance}, {"size", fmt.Sprint(r.Size)},
		{"sasl_method", r.SASLMethod}, {"sasl_username", r.SASLUsername}, {"sasl_sender", r.SASLSender},
		{"policy_context", r.PolicyContext},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return b.String() + "\n"
}
