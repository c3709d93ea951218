package welcome

import (
	"maps"
	"strings"
	"time"

	"github.com/postern-mail/postern/internal/directory"
)

// Recipient is what the templates see of a new user: convenient names for the usual
// directory attributes, and every person attribute under .Attrs (by its LDAP name, e.g.
// {{index .Attrs "employeeID"}}; a missing one is empty).
type Recipient struct {
	Login       string // sAMAccountName
	UPN         string // userPrincipalName
	Mail        string // the primary address, where the letter goes
	DisplayName string // displayName, else "givenName sn", else the login
	GivenName   string
	Surname     string // sn
	Initials    string
	Title       string
	Department  string
	Company     string
	Office      string // physicalDeliveryOfficeName
	Phone       string // telephoneNumber
	Mobile      string
	Language    string // preferredLanguage, e.g. "zh-CN"
	Manager     string // the manager's display name (from the manager DN)
	ManagerMail string
	Groups      []string // every group the user is in, nested ones included, by name
	Created     time.Time
	Attrs       map[string]string
}

// recipientOf gathers a user's template data from the snapshot.
func recipientOf(s *directory.Snapshot, o *directory.Object) Recipient {
	a := o.Attrs
	r := Recipient{
		Login: o.Login, UPN: o.UPN, Mail: o.Primary,
		DisplayName: oneLine(a["displayName"]), GivenName: oneLine(a["givenName"]), Surname: oneLine(a["sn"]),
		Initials: a["initials"], Title: a["title"], Department: a["department"], Company: a["company"],
		Office: a["physicalDeliveryOfficeName"], Phone: a["telephoneNumber"], Mobile: a["mobile"],
		Language: a["preferredLanguage"], Created: o.Created, Attrs: maps.Clone(a),
	}
	if r.Attrs == nil {
		r.Attrs = map[string]string{}
	}
	if r.DisplayName == "" {
		r.DisplayName = strings.TrimSpace(r.GivenName + " " + r.Surname)
	}
	if r.DisplayName == "" {
		r.DisplayName = o.Login
	}
	if m := s.ByDN(a["manager"]); m != nil && a["manager"] != "" {
		r.Manager = oneLine(m.Attrs["displayName"])
		if r.Manager == "" {
			r.Manager = m.Login
		}
		r.ManagerMail = m.Primary
	}
	for _, g := range s.GroupsOf(o) {
		r.Groups = append(r.Groups, g.Name)
	}
	return r
}

// oneLine folds the white space of a value that ends up in a header (a display name
// with a line break must not start a new header field).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// sampleRecipient is the user New renders the templates for, to find errors early.
func sampleRecipient() Recipient {
	return Recipient{
		Login: "sample", UPN: "sample@example.invalid", Mail: "sample@example.invalid",
		DisplayName: "Sample User", GivenName: "Sample", Surname: "User", Title: "Engineer",
		Department: "Engineering", Company: "Example", Manager: "Manager", ManagerMail: "manager@example.invalid",
		Groups: []string{"Staff"}, Created: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC),
		Attrs: map[string]string{"displayName": "Sample User"},
	}
}
