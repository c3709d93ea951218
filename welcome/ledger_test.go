package welcome

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern-mail/postern/internal/directory"
)

func TestLedgerFind(t *testing.T) {
	l := newLedger(t0.Add(-24 * time.Hour))
	l.Entries["guid:guid-ann"] = &entry{Status: statusSent, Login: "ann", Created: t0}
	l.Entries["login:bo"] = &entry{Status: statusSent, Login: "bo", Created: t0} // written without GUIDs
	withGUID := func(login, guid string, created time.Time) *directory.Object {
		o := person(login, login, created)
		o.GUID = guid
		return o
	}
	tests := []struct {
		name  string
		user  *directory.Object
		found bool
	}{
		{"by GUID", withGUID("ann", "guid-ann", t0), true},
		{"by GUID, renamed", withGUID("anna", "GUID-ANN", t0), true},
		{"another person with the login", withGUID("ann", "guid-other", t0.Add(time.Hour)), false},
		{"by login, from a ledger without GUIDs", withGUID("bo", "guid-bo", t0), true},
		{"by login, but created at another time", withGUID("bo", "guid-bo2", t0.Add(time.Hour)), false},
		{"no GUID: by login", withGUID("BO", "", t0), true},
	}
	for _, tt := range tests {
		if got := l.find(tt.user) != nil; got != tt.found {
			t.Errorf("%s: found %v, want %v", tt.name, got, tt.found)
		}
	}
}

func TestLedgerAdvance(t *testing.T) {
	l := newLedger(t0)
	l.Entries["guid:old"] = &entry{Created: t0}
	l.Entries["guid:new"] = &entry{Created: t0.Add(2 * time.Hour)}
	l.advance(t0.Add(-time.Hour)) // never back
	if !l.Since.Equal(t0) || len(l.Entries) != 2 {
		t.Fatalf("moved back: since %s, %d entries", l.Since, len(l.Entries))
	}
	l.advance(t0.Add(time.Hour))
	if !l.Since.Equal(t0.Add(time.Hour)) || l.Entries["guid:old"] != nil || l.Entries["guid:new"] == nil {
		t.Fatalf("since %s, entries %v", l.Since, l.Entries)
	}
}

func TestLedgerLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		first         bool
		err           error
	}{
		{"absent: the first run", "", true, nil},
		{"a saved ledger", `{"version": 1, "since": "2026-11-06T09:00:00Z", "entries": {}}`, false, nil},
		{"a torn file", `{"version": 1, "entr`, false, ErrConfig},
		{"a future version", `{"version": 2, "entries": {}}`, false, ErrConfig},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, "welcome.json")
		os.Remove(path)
		if tt.content != "" {
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		l, err := loadLedger(path)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || (l == nil) != (tt.first || tt.err != nil) {
			t.Errorf("%s: %v, %v", tt.name, l, err)
		}
	}
	saved := newLedger(t0)
	saved.Entries["guid:x"] = &entry{Status: statusSent, Login: "x", Created: t0, At: t0, MessageID: "m@x", Sends: 1}
	path := filepath.Join(dir, "saved.json")
	if err := saved.save(path); err != nil {
		t.Fatal(err)
	}
	back, err := loadLedger(path)
	if err != nil || *back.Entries["guid:x"] != *saved.Entries["guid:x"] || !back.Since.Equal(t0) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}
