// Package policyd is postern's Postfix policy service (SMTPD_POLICY_README): Postfix asks
// it about every recipient (smtpd_recipient_restrictions) and every message
// (smtpd_end_of_data_restrictions), and it answers with one of DUNNO, DEFER_IF_PERMIT,
// DEFER or REJECT — never OK, so its place in the restrictions can never open a relay.
//
// Its rules, in the order they are asked:
//
//   - exemptions: trusted_relays, policyd.exempt.networks and .logins pass untouched;
//   - sender_login (MAIL, RCPT): an authenticated client uses only its account's
//     addresses (and its groups');
//   - internal_only (RCPT): members of the configured groups may send only to
//     recipients the directory resolves to internal targets only;
//   - rate_limits (RCPT checks, END-OF-MESSAGE counts): messages, recipients and bytes
//     per identity in sliding windows, in memory or shared through Redis.
//
// When the directory cannot answer a rule that needs it, the answer is 451 4.3.0: the
// message waits and is never let out unchecked.
package policyd
