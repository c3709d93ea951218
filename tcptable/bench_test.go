package tcptable

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/directory"
	"github.com/postern-mail/postern/internal/testbench"
)

// benchKeys are n mailbox lookups as smtpd would make them: half for the company's
// addresses in the forms clients write them, half for addresses that do not exist.
func benchKeys(n int) []string {
	known := []string{alice, bob, carol, erin, "ALICE@CORP.EXAMPLE.TEST", "Bob@Corp.Example.Test", "dave@corp.example.test", "all@corp.example.test"}
	keys := make([]string, n)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = known[(i/2)%len(known)]
		} else {
			keys[i] = fmt.Sprintf("nobody%d@corp.example.test", i)
		}
	}
	return keys
}

// ldapTable writes a Postfix ldap_table(5) for virtual_mailbox_maps against Samba: the
// enabled users whose proxyAddresses hold the key, answered with their mail.
func ldapTable(b *testing.B, s *testbench.Samba) string {
	path := filepath.Join(testbench.Dir(b), "ldap-mailboxes.cf")
	cf := fmt.Sprintf(`server_host = %s
version = 3
bind = yes
bind_dn = %s
bind_pw = %s
search_base = %s
scope = sub
query_filter = (&(objectClass=user)(proxyAddresses=smtp:%%s)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))
result_attribute = mail
`, s.URL, s.BindDN, s.Password, s.BaseDN)
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		b.Fatal(err)
	}
	return "ldap:" + path
}

// BenchmarkPostmapLookups runs 10,000 mailbox lookups through Postfix's own client
// (postmap -q - TABLE < keys) against tcptable over socketmap and over tcp_table, and
// against Postfix's ldap: table asking the same Samba AD, and reports lookups per second
// and how many times faster tcptable is.
func BenchmarkPostmapLookups(b *testing.B) {
	s := testbench.StartSamba(b)
	s.LDIF(b, testbench.SeedCorp(s))
	sock := filepath.Join(testbench.Dir(b), "tables.sock")
	tables := startCorpTables(b, s, "  socketmap: unix:"+sock+"\n", true)
	pf := testbench.StartPostfix(b, testbench.PostfixOptions{})
	keys := benchKeys(10000)
	contenders := []struct{ name, table string }{
		{"socketmap", tables.table("socketmap", "mailboxes")},
		{"tcp", tables.table("tcp", "mailboxes")},
		{"ldap", ldapTable(b, s)},
	}
	found := make([]int, len(contenders))
	for i, c := range contenders { // every table must answer the same keys alike
		out, err := pf.PostmapBatch(keys, c.table)
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		found[i] = strings.Count(out, "\n")
	}
	if found[0] != found[1] || found[0] != found[2] || found[0] == 0 {
		b.Fatalf("the tables disagree: found %v of %d keys (socketmap, tcp, ldap)", found, len(keys))
	}

	// Three interleaved rounds, each contender's best one counted: a shared machine's
	// noise then hits all three alike instead of whichever happened to run during it.
	const rounds = 3
	best := make([]time.Duration, len(contenders))
	b.ResetTimer()
	for range b.N {
		for range rounds {
			for i, c := range contenders {
				begin := time.Now()
				if _, err := pf.PostmapBatch(keys, c.table); err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
				if took := time.Since(begin); best[i] == 0 || took < best[i] {
					best[i] = took
				}
			}
		}
	}
	b.StopTimer()
	rate := make([]float64, len(contenders))
	for i, c := range contenders {
		rate[i] = float64(len(keys)) / best[i].Seconds()
		b.ReportMetric(rate[i], c.name+"-lookups/s")
	}
	b.ReportMetric(rate[0]/rate[2], "socketmap/ldap")
	b.ReportMetric(rate[1]/rate[2], "tcp/ldap")
	b.Logf("%d keys through postmap -q -, %d found, best of %d rounds: socketmap %.0f/s, tcp %.0f/s, ldap %.0f/s; socketmap is %.1fx and tcp %.1fx ldap's rate",
		len(keys), found[0], rounds, rate[0], rate[1], rate[2], rate[0]/rate[2], rate[1]/rate[2])
}

// BenchmarkAnswer is the server's own share of a lookup, without the network: parse the
// request, resolve it, count it and encode the reply, over the static test directory.
func BenchmarkAnswer(b *testing.B) {
	d := directory.New(directory.Options{Source: directory.StaticSource{Path: testDirectory}, Refresh: time.Minute, MaxStale: time.Hour})
	if err := d.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := newServer(newTables(directory.NewResolver(d, testPolicy()), defaultTcptable()), newMetrics(nil), zap.NewNop(), time.Minute)
	keys := benchKeys(1000)
	for _, p := range []protocol{socketmap{}, tcpTable{table: "mailboxes"}} {
		b.Run(p.name(), func(b *testing.B) {
			var wire bytes.Buffer
			for _, k := range keys {
				if p.name() == "tcp" {
					wire.WriteString("get " + encodeTCP(k) + "\n")
				} else {
					wire.Write(appendNetstring(nil, "mailboxes "+k))
				}
			}
			raw := wire.Bytes()
			b.ResetTimer()
			for i := 0; i < b.N; {
				r := bufio.NewReader(bytes.NewReader(raw))
				for ; i < b.N; i++ {
					req, err := p.read(r)
					if err != nil {
						break
					}
					s.answer(p, req)
				}
			}
		})
	}
}
