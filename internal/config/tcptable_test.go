package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTcptableConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "directory.yaml"), []byte("users: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = `domains: [corp.example.test]
state_dir: /var/lib/postern
directory:
  backend: static
  static: {file: directory.yaml}
`
	tests := []struct {
		name string
		body string
		want []string // every problem, reported at once; none for a valid configuration
	}{
		{"the issue's example", `tcptable:
  socketmap: inet:127.0.0.1:10050
  tcp: {aliases: 127.0.0.1:10051, mailboxes: 127.0.0.1:10052}
  senders: {group_send_as: true}
  shadow: {address: "shadow@{domain}"}
`, nil},
		{"unix socket and a fixed shadow address", `tcptable:
  socketmap: unix:/var/spool/postfix/postern/tables.sock
  shadow: {address: archive@corp.example.test}
`, nil},
		{"every mistake at once", `tcptable:
  socketmap: inet:0.0.0.0:10050
  tcp:
    virtual: 127.0.0.1:10051
    aliases: unix:/run/aliases.sock
    mailboxes: 127.0.0.1:10052
    recipients: inet:127.0.0.1:10052
    senders: 192.0.2.1:10053
  shadow: {address: "shadow@{domain"}
  idle_timeout: 0s
`, []string{
			"line 7: tcptable.socketmap: inet:0.0.0.0:10050 can be reached from other hosts",
			"line 9: tcptable.tcp.virtual: \"virtual\" is not a map; use one of domains, alias_domains, mailboxes, aliases, senders, recipients, shadow",
			"line 10: tcptable.tcp.aliases: unix:/run/aliases.sock: tcp_table(5) speaks TCP only",
			"line 12: tcptable.tcp.recipients: inet:127.0.0.1:10052 is already used by tcptable.tcp.mailboxes",
			"line 13: tcptable.tcp.senders: inet:192.0.2.1:10053 can be reached from other hosts",
			"line 14: tcptable.shadow.address: \"shadow@{domain\": the only placeholder is {domain}",
			"line 15: tcptable.idle_timeout: must be positive",
		}},
		{"shadow address that is no address", `tcptable:
  socketmap: inet:127.0.0.1:10050
  shadow: {address: "x%y@{domain}"}
`, []string{"line 8: tcptable.shadow.address: \"x%y@{domain}\" is not a mail address"}},
		{"unknown key", `tcptable:
  socketmap: inet:127.0.0.1:10050
  senders: {group_sendas: true}
`, []string{"line 8: tcptable.senders.group_sendas: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "postern.yaml"), []byte(base+tt.body))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !c.Tcptable.Enabled() {
					t.Error("tcptable not enabled")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestTcptableDefaults(t *testing.T) {
	c := Defaults().Tcptable
	if c.Enabled() || c.Shadow.Address != "shadow@{domain}" || c.IdleTimeout.D() != 15*time.Minute || c.Senders.GroupSendAs {
		t.Fatalf("defaults: %+v", c)
	}
}
