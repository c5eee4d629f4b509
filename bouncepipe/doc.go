// Package bouncepipe reads mail that comes back to a bulk sender and says
// what it is: a delivery status notification (RFC 3464), a non-standard
// bounce in one of the shapes common MTAs write (Postfix, Exim, Sendmail,
// qmail, Exchange, Domino, ...), a complaint in the Abuse Reporting Format
// (RFC 5965), an automatic reply (RFC 3834), an unsubscribe request, or
// mail from a person.
//
// Parse reads one message and returns a Report: what kind of message it is,
// one Record per recipient it reports on, each classified into a Sisimai v5
// reason name ("userunknown", "mailboxfull", "blocked", ...), whether the
// failure is hard (suppress at once) and whether it blames the sender
// rather than the recipient (M3AAWG Sender BCP §3.8), and the candidate
// per-copy tokens found where senderkit puts them: the VERP envelope
// recipient, the returned original's Return-Path and List-Unsubscribe.
//
// The package verifies nothing: a token is only a candidate until the
// caller checks it with its key ring, so a forged token in a crafted bounce
// changes nothing. Memory is bounded whatever the input: a message of up
// to 1 MiB is read into one reused buffer and its parts are found by
// search; a larger one is read line by line. Either way only the first
// kilobytes of each text part and of the returned original's header are
// kept, the rest is read and discarded.
package bouncepipe
