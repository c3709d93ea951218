package milter

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/postern-mail/postern/internal/service/servicetest"
	"github.com/postern-mail/postern/internal/testbench"
)

// benchConfigYAML is a milter with the static test directory, the disclaimer and the
// signature, and a file journal; 127.0.0.0/8 is internal, so smtp-source's mail from
// alice to an external address is outbound and gets both.
func benchConfigYAML(t testing.TB, dir, listen, telemetry string) string {
	t.Helper()
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "marker.key"), []byte("bench-marker-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`domains: [corp.example.test, other.example.test]
internal_networks: [127.0.0.0/8]
state_dir: %[1]s/state
directory: {backend: static, static: {file: %[2]s/directory.yaml}}
journal: {store: file, path: %[1]s/journal}
telemetry: {listen: "%[4]s", log_format: json, log_level: warn}
milter:
  listen: inet:%[3]s
  marker_key_file: %[1]s/marker.key
  disclaimer: {html_file: %[2]s/disclaimer.html, text_file: %[2]s/disclaimer.txt}
  signature: {html_template_file: %[2]s/signature.html.tmpl, text_template_file: %[2]s/signature.txt.tmpl}
  journal: {enabled: true}
  max_body_size: 50MB
`, dir, td, listen, telemetry)
}

// startBenchMilter runs the milter in this process.
func startBenchMilter(b *testing.B) string {
	b.Helper()
	dir := testbench.Dir(b)
	addr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(b))
	deps := servicetest.Deps(b, dir, benchConfigYAML(b, dir, addr, "127.0.0.1:0"))
	if !deps.Directory.Ready() {
		b.Fatal("the first directory sync failed (see the log above)")
	}
	deps.Log = zap.NewNop() // the milter logs every message; through the test's log that would be measured too
	servicetest.Start(b, deps, newDaemon)
	return addr
}

// throughput sends n messages of size bytes with smtp-source (20 sessions) and returns
// messages per second until smtp-sink has them all and the queue is empty.
func throughput(b *testing.B, pf *testbench.Postfix, n, size int) float64 {
	b.Helper()
	before := sinkCount(pf)
	start := time.Now()
	out, err := exec.Command("smtp-source", "-s", "20", "-m", strconv.Itoa(n), "-l", strconv.Itoa(size),
		"-f", "alice@corp.example.test", "-t", "x@ext.example", "-M", "client.example", pf.SMTPAddr).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	waitSink(b, pf, before+n)
	return float64(n) / time.Since(start).Seconds()
}

// waitSink waits until smtp-sink holds n messages and Postfix's queue is empty.
func waitSink(b *testing.B, pf *testbench.Postfix, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for sinkCount(pf) < n || !pf.QueueEmpty() {
		if time.Now().After(deadline) {
			q, _ := pf.Queue()
			b.Fatalf("smtp-sink has %d of %d messages; queue:\n%.2000s", sinkCount(pf), n, q)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireDisclaimer checks that the last message smtp-sink got was really stamped, so a
// benchmark never measures a filter that did nothing.
func requireDisclaimer(b *testing.B, name string, pf *testbench.Postfix) {
	b.Helper()
	es, err := os.ReadDir(pf.SinkDir)
	if err != nil || len(es) == 0 {
		b.Fatalf("%s: no message at smtp-sink: %v", name, err)
	}
	data, err := os.ReadFile(filepath.Join(pf.SinkDir, es[len(es)-1].Name()))
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(strings.ReplaceAll(string(data), "=\n", ""), "This message is confidential") {
		b.Fatalf("%s: the delivered message has no disclaimer:\n%.1500s", name, data)
	}
}

func sinkCount(pf *testbench.Postfix) int {
	es, _ := os.ReadDir(pf.SinkDir)
	return len(es)
}

// BenchmarkThroughput measures messages per second smtp-source → Postfix → smtp-sink,
// 20 KB messages, side by side: no milter, postern's milter (disclaimer, signature and
// journal), and altermime (disclaimer only) as a content filter.
func BenchmarkThroughput(b *testing.B) {
	testbench.Require(b, "smtp-source", "altermime")
	const n, size = 400, 20 << 10

	plain := testbench.StartPostfix(b, testbench.PostfixOptions{})
	milterAddr := startBenchMilter(b)
	withMilter := testbench.StartPostfix(b, testbench.PostfixOptions{MainCF: map[string]string{
		"smtpd_milters": "inet:" + milterAddr, "milter_protocol": "6", "milter_default_action": "tempfail"}})
	withAltermime := startAltermimeFilter(b)

	// One warm-up message each: process start-up is not what is measured.
	for _, pf := range []*testbench.Postfix{plain, withMilter, withAltermime} {
		throughput(b, pf, 1, size)
	}
	var none, postern, alter float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		none += throughput(b, plain, n, size)
		postern += throughput(b, withMilter, n, size)
		alter += throughput(b, withAltermime, n, size)
	}
	b.StopTimer()
	for name, pf := range map[string]*testbench.Postfix{"postern": withMilter, "altermime": withAltermime} {
		requireDisclaimer(b, name, pf)
	}
	k := float64(b.N)
	b.ReportMetric(none/k, "msgs/s-no-milter")
	b.ReportMetric(postern/k, "msgs/s-postern")
	b.ReportMetric(alter/k, "msgs/s-altermime")
	b.ReportMetric(postern/none, "postern/no-milter")
	b.ReportMetric(alter/none, "altermime/no-milter")
	b.ReportMetric(postern/alter, "postern/altermime")
}

// startAltermimeFilter is a Postfix whose content_filter hands every message over SMTP
// to a small filter here that runs altermime on it and re-injects it into a second smtpd
// of the same Postfix (the FILTER_README "advanced" loop, with altermime inside).
func startAltermimeFilter(b *testing.B) *testbench.Postfix {
	b.Helper()
	filterAddr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(b))
	reinject := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(b))
	pf := testbench.StartPostfix(b, testbench.PostfixOptions{
		MainCF: map[string]string{"content_filter": "altermime-filter:[127.0.0.1]:" + strings.TrimPrefix(filterAddr, "127.0.0.1:")},
		MasterCF: []string{
			"altermime-filter unix - - n - 20 smtp -o smtp_send_xforward_command=yes -o disable_mime_output_conversion=yes",
			reinject + " inet n - n - - smtpd -o content_filter= -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters,no_address_mappings" +
				" -o smtpd_authorized_xforward_hosts=127.0.0.0/8 -o smtpd_relay_restrictions=permit_mynetworks,reject",
		},
	})
	td, err := filepath.Abs("testdata")
	if err != nil {
		b.Fatal(err)
	}
	f := &altermimeFilter{reinject: reinject, dir: testbench.Dir(b),
		text: filepath.Join(td, "disclaimer.txt"), html: filepath.Join(td, "disclaimer.html")}
	s := smtp.NewServer(f)
	s.Addr, s.Domain = filterAddr, "filter.test"
	s.MaxMessageBytes = 64 << 20
	ln, err := net.Listen("tcp", filterAddr)
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(func() { s.Close() })
	return pf
}

// altermimeFilter is the go-smtp backend of the altermime content filter.
type altermimeFilter struct {
	reinject, dir, text, html string
	seq                       int64
	mu                        sync.Mutex
}

func (f *altermimeFilter) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &altermimeSession{f: f}, nil
}

type altermimeSession struct {
	f    *altermimeFilter
	from string
	to   []string
}

func (s *altermimeSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *altermimeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *altermimeSession) Reset()        { s.from, s.to = "", nil }
func (s *altermimeSession) Logout() error { return nil }

// Data writes the message to a file, lets altermime add the disclaimer in place, and
// sends the result on with the same envelope.
func (s *altermimeSession) Data(r io.Reader) error {
	s.f.mu.Lock()
	s.f.seq++
	path := filepath.Join(s.f.dir, fmt.Sprintf("msg-%d.eml", s.f.seq))
	s.f.mu.Unlock()
	defer os.Remove(path)
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(file, r); err != nil {
		file.Close()
		return err
	}
	file.Close()
	if out, err := exec.Command("altermime", "--input="+path, "--disclaimer="+s.f.text,
		"--disclaimer-html="+s.f.html, "--force-for-bad-html").CombinedOutput(); err != nil {
		return fmt.Errorf("altermime: %v: %s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	code, text, err := testbench.SendMail(s.f.reinject, testbench.Mail{From: s.from, To: s.to, Data: data})
	if err != nil || code != 250 {
		return fmt.Errorf("re-inject: %d %s %v", code, text, err)
	}
	return nil
}

// BenchmarkMilterRSS runs `postern milter` as its own process and reports its peak
// resident memory (VmHWM) while 20 SMTP sessions each send a 10 MB message through
// Postfix at the same time: bodies spill to temporary files, so memory stays bounded.
func BenchmarkMilterRSS(b *testing.B) {
	testbench.Require(b, "go")
	bin := testbench.Postern(b)
	dir := testbench.Dir(b)
	addr := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(b))
	tele := fmt.Sprintf("127.0.0.1:%d", testbench.FreePort(b))
	cfgPath := filepath.Join(dir, "postern.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfigYAML(b, dir, addr, tele)), 0o600); err != nil {
		b.Fatal(err)
	}
	p, err := testbench.Start("postern milter", filepath.Join(dir, "milter.log"), nil, bin, "-c", cfgPath, "milter")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Stop)
	testbench.KeepLogs(b, filepath.Join(dir, "milter.log"))
	if err := testbench.WaitTCP(addr, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	pf := testbench.StartPostfix(b, testbench.PostfixOptions{MainCF: map[string]string{
		"smtpd_milters": "inet:" + addr, "milter_protocol": "6", "milter_default_action": "tempfail",
		"message_size_limit": "52428800"}})
	idle, err := p.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}

	msg := tenMegabytes()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, text, err := testbench.SendMail(pf.SMTPAddr, testbench.Mail{From: "alice@corp.example.test",
					To: []string{"x@ext.example"}, Data: msg})
				if err != nil || code != 250 {
					errs <- fmt.Errorf("%d %s %v", code, text, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	waitSink(b, pf, 20*b.N)
	requireDisclaimer(b, "postern", pf)
	b.ReportMetric(float64(idle)/1024, "MB-VmHWM-idle")
	peak, err := p.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(peak)/1024, "MB-VmHWM-20x10MB")
}

// tenMegabytes is a 10 MB message: a text body and a base64 attachment.
func tenMegabytes() []byte {
	var sb strings.Builder
	sb.WriteString("From: alice@corp.example.test\nTo: x@ext.example\nSubject: 10 MB\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=\"b10\"\n\n--b10\nContent-Type: text/plain\n\nThe data is attached.\n" +
		"--b10\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n" +
		"Content-Disposition: attachment; filename=\"data.bin\"\n\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVph", 3)[:76] + "\n"
	for sb.Len() < 10<<20 {
		sb.WriteString(line)
	}
	sb.WriteString("--b10--\n")
	return []byte(sb.String())
}
