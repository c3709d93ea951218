package welcome

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSubmission covers how the job reaches the submission server: implicit TLS or
// STARTTLS with the certificate verified, AUTH PLAIN from the password file, and which
// failures are the operator's (exit 2) and which are retried (exit 75).
func TestSubmission(t *testing.T) {
	const name = "mail.corp.example.test"
	serverTLS, caFile := testCA(t, name)
	_, otherCA := testCA(t, name)
	const auth = `username: welcome@corp.example.test, password_file: smtp.secret`
	tests := []struct {
		name  string
		sink  sinkOptions
		smtp  string // welcome.smtp without the server
		err   error
		words string // in the error
	}{
		{"STARTTLS and AUTH", sinkOptions{tls: serverTLS, user: "welcome@corp.example.test", password: "Welcome-Passw0rd"},
			fmt.Sprintf(`starttls: true, ca_file: %s, server_name: %s, %s`, caFile, name, auth), nil, ""},
		{"implicit TLS and AUTH", sinkOptions{tls: serverTLS, implicit: true, user: "welcome@corp.example.test", password: "Welcome-Passw0rd"},
			fmt.Sprintf(`tls: true, ca_file: %s, server_name: %s, %s`, caFile, name, auth), nil, ""},
		{"a certificate from another CA", sinkOptions{tls: serverTLS},
			fmt.Sprintf(`starttls: true, ca_file: %s, server_name: %s`, otherCA, name), ErrTemporary, "not signed by welcome.smtp.ca_file"},
		{"a certificate for another name", sinkOptions{tls: serverTLS, implicit: true},
			fmt.Sprintf(`tls: true, ca_file: %s`, caFile), ErrTemporary, "server_name"},
		{"no STARTTLS offered", sinkOptions{},
			fmt.Sprintf(`starttls: true, ca_file: %s`, caFile), ErrTemporary, "STARTTLS"},
		{"a wrong password", sinkOptions{tls: serverTLS, user: "welcome@corp.example.test", password: "other"},
			fmt.Sprintf(`starttls: true, ca_file: %s, server_name: %s, %s`, caFile, name, auth), ErrConfig, "password_file"},
		{"no AUTH offered", sinkOptions{tls: serverTLS},
			fmt.Sprintf(`starttls: true, ca_file: %s, server_name: %s, %s`, caFile, name, auth), ErrConfig, "AUTH PLAIN"},
		{"AUTH required, none configured", sinkOptions{tls: serverTLS, user: "welcome@corp.example.test", password: "x"},
			fmt.Sprintf(`starttls: true, ca_file: %s, server_name: %s`, caFile, name), ErrTemporary, "MAIL FROM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := company()
			h := &harness{t: t, dir: dir, sink: startSink(t, tt.sink), clock: &clock{t: t0.Add(time.Hour)}}
			h.cfg = welcomeConfig(t, fmt.Sprintf(`{server: %q, timeout: 5s, %s}`, h.sink.addr, tt.smtp), "")
			h.job = h.newJob()
			h.mustRun(Request{})
			dir.add(person("yan", "Yan", t0.Add(time.Hour)))
			rep, err := h.run(Request{})
			if tt.err == nil {
				if err != nil || len(rep.Sent) != 1 || len(h.sink.received()) != 1 {
					t.Fatalf("run: %+v, %v", rep, err)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("run: %v, want %v naming %q", err, tt.err, tt.words)
			}
			if len(h.sink.received()) != 0 || len(rep.Failed) != 1 {
				t.Errorf("report %+v, %d received", rep, len(h.sink.received()))
			}
		})
	}
}
