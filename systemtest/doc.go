// Package systemtest proves the whole stack as an operator wires it: real Postfix
// configured from examples/postfix, Samba as the Active Directory, a durable Redis, Cyrus,
// and the four postern daemons as separate processes, under a company's mixed mail while
// faults are injected. Every message is accounted for by its Message-ID: delivered to
// each intended mailbox or the external relay exactly once, archived with its full
// envelope, or refused with the code a rule calls for. See `make systemtest`.
//
// The test lives in systemtest_test.go; POSTERN_SYSTEMTEST_MESSAGES sets the number of
// messages (the default is the short run of `make test`).
package systemtest
