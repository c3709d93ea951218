package testbench

import "fmt"

// CorpDomains are the accepted domains of the seeded company; CorpAliasDomain maps to
// the first one.
var CorpDomains = []string{"corp.example.test", "other.example.test", "bücher.example.test"}

// CorpAliasDomain is an alias domain of corp.example.test.
const CorpAliasDomain = "alias.example.test"

// SeedCorp fills a fresh Samba DC with the company every integration test speaks of:
//
//	alice   mailbox; aliases a.anderson@corp, alice@other, anna@bücher (IDN); in AllStaff
//	bob     mailbox; in Sales
//	carol   mailbox; alias c.clark@corp; in Interns
//	dave    disabled
//	erin    mailbox; alias erin@other; in Sales and Partners
//	partner contact partner@corp -> bob@partner.example (its mail: Samba has no
//	        Exchange schema, so no targetAddress or altRecipient)
//	Interns interns@corp: carol
//	Sales   sales@corp: erin, bob, dave (disabled)
//	AllStaff all@corp: Sales, Interns, alice (nested)
//	Partners partners@corp: erin, the partner contact (a list with an external member)
//	CycleA  cycle-a@corp: CycleB, alice;  CycleB cycle-b@corp: CycleA, bob (a group cycle)
func SeedCorp(s *Samba) string {
	return fmt.Sprintf(`
		dn: OU=Staff,%[1]s
		objectClass: organizationalUnit

		dn: CN=Alice Anderson,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: alice
		userPrincipalName: alice@corp.example.test
		givenName: Alice
		sn: Anderson
		displayName: Alice Anderson
		title: Managing Director
		department: Management
		telephoneNumber: +49 30 1234-100
		mail: alice@corp.example.test
		proxyAddresses: SMTP:alice@corp.example.test
		proxyAddresses: smtp:a.anderson@corp.example.test
		proxyAddresses: smtp:alice@other.example.test
		proxyAddresses: smtp:anna@xn--bcher-kva.example.test
		proxyAddresses: X500:/o=Corp/ou=Exchange/cn=Recipients/cn=alice
		userAccountControl: 544

		dn: CN=Bob Brown,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: bob
		userPrincipalName: bob@corp.example.test
		displayName: Bob Brown
		mail: bob@corp.example.test
		proxyAddresses: SMTP:bob@corp.example.test
		userAccountControl: 544

		dn: CN=Carol Clark,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: carol
		userPrincipalName: carol@corp.example.test
		displayName: Carol Clark
		title: Intern
		mail: carol@corp.example.test
		proxyAddresses: SMTP:carol@corp.example.test
		proxyAddresses: smtp:c.clark@corp.example.test
		userAccountControl: 544

		dn: CN=Dave Disabled,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: dave
		displayName: Dave Disabled
		mail: dave@corp.example.test
		proxyAddresses: SMTP:dave@corp.example.test
		userAccountControl: 514

		dn: CN=Erin Engel,OU=Staff,%[1]s
		objectClass: user
		sAMAccountName: erin
		userPrincipalName: erin@corp.example.test
		displayName: Erin Engel
		title: Head of Sales
		mail: erin@corp.example.test
		proxyAddresses: SMTP:erin@corp.example.test
		proxyAddresses: smtp:erin@other.example.test
		userAccountControl: 544

		dn: CN=Partner Bob,OU=Staff,%[1]s
		objectClass: contact
		displayName: Bob at Partner
		mail: bob@partner.example
		proxyAddresses: SMTP:bob@partner.example
		proxyAddresses: smtp:partner@corp.example.test

		dn: CN=Interns,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: Interns
		mail: interns@corp.example.test
		proxyAddresses: SMTP:interns@corp.example.test
		member: CN=Carol Clark,OU=Staff,%[1]s

		dn: CN=Sales,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: Sales
		mail: sales@corp.example.test
		member: CN=Erin Engel,OU=Staff,%[1]s
		member: CN=Bob Brown,OU=Staff,%[1]s
		member: CN=Dave Disabled,OU=Staff,%[1]s

		dn: CN=All Staff,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: AllStaff
		mail: all@corp.example.test
		proxyAddresses: SMTP:all@corp.example.test
		member: CN=Sales,OU=Staff,%[1]s
		member: CN=Interns,OU=Staff,%[1]s
		member: CN=Alice Anderson,OU=Staff,%[1]s

		dn: CN=Partners,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: Partners
		mail: partners@corp.example.test
		member: CN=Erin Engel,OU=Staff,%[1]s
		member: CN=Partner Bob,OU=Staff,%[1]s

		dn: CN=CycleA,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: CycleA
		mail: cycle-a@corp.example.test
		member: CN=Alice Anderson,OU=Staff,%[1]s

		dn: CN=CycleB,OU=Staff,%[1]s
		objectClass: group
		sAMAccountName: CycleB
		mail: cycle-b@corp.example.test
		member: CN=CycleA,OU=Staff,%[1]s
		member: CN=Bob Brown,OU=Staff,%[1]s

		dn: CN=CycleA,OU=Staff,%[1]s
		changetype: modify
		add: member
		member: CN=CycleB,OU=Staff,%[1]s
		-
	`, s.BaseDN)
}

// CorpConfig returns a postern configuration for the seeded company against s over
// plain LDAP (allow_plaintext), with stateDir and the given extra YAML appended.
func CorpConfig(s *Samba, stateDir, extra string) string {
	return fmt.Sprintf(`domains: [corp.example.test, other.example.test, bücher.example.test]
domain_aliases: {alias.example.test: corp.example.test}
recipient_delimiter: "+"
state_dir: %s
directory:
  backend: ldap
  refresh: 1s
  max_stale: 1h
  ldap:
    urls: [%s]
    allow_plaintext: true
    bind_dn: "%s"
    bind_password_file: %s
    base_dn: "%s"
    timeout: 5s
%s`, stateDir, s.URL, s.BindDN, s.PasswordFile, s.BaseDN, extra)
}
