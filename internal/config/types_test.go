package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseListen(t *testing.T) {
	tests := []struct {
		in       string
		want     Listen
		loopback bool
		err      bool
	}{
		{"inet:127.0.0.1:10040", Listen{"tcp", "127.0.0.1:10040"}, true, false},
		{"127.0.0.1:9540", Listen{"tcp", "127.0.0.1:9540"}, true, false},
		{"inet:[::1]:25", Listen{"tcp", "[::1]:25"}, true, false},
		{"localhost:25", Listen{"tcp", "localhost:25"}, true, false},
		{"unix:/var/spool/postfix/postern/policy.sock", Listen{"unix", "/var/spool/postfix/postern/policy.sock"}, true, false},
		{"0.0.0.0:25", Listen{"tcp", "0.0.0.0:25"}, false, false},
		{":25", Listen{"tcp", ":25"}, false, false},
		{"192.0.2.1:25", Listen{"tcp", "192.0.2.1:25"}, false, false},
		{"unix:relative.sock", Listen{}, false, true},
		{"inet:127.0.0.1", Listen{}, false, true},
		{"127.0.0.1:notaport", Listen{}, false, true},
	}
	for _, tt := range tests {
		got, err := ParseListen(tt.in)
		if (err != nil) != tt.err || got != tt.want || (err == nil && got.IsLoopback() != tt.loopback) {
			t.Errorf("ParseListen(%q) = %+v (loopback %v), %v", tt.in, got, got.IsLoopback(), err)
		}
	}
}

func TestDurationAndPrefix(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
		N Networks `yaml:"n"`
	}
	if err := yaml.Unmarshal([]byte("d: 7d\nn: [10.0.0.0/8, 192.0.2.10, '::ffff:192.0.2.99/128']\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.D.D() != 7*24*time.Hour {
		t.Errorf("7d = %v", v.D.D())
	}
	for addr, want := range map[string]bool{"10.1.2.3": true, "192.0.2.10": true, "192.0.2.11": false, "::ffff:10.0.0.1": true} {
		if got := v.N.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"d: 5x", "d: 1.5d", "n: [10.0.0.0/33]"} {
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	j, _ := json.Marshal(struct{ P Secret }{s})
	y, _ := yaml.Marshal(struct{ P Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%s %v %+v %#v %q", s, s, s, s, s), string(j), string(y)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("the secret leaked: %s", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Fatal("Reveal lost the value")
	}
}
