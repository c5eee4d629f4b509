// Package milter is senderkit's outbound milter: the part of `senderkit
// serve` that Postfix's smtpd_milters and non_smtpd_milters call for
// every message that leaves.
//
// For each message it works out the scope (by SASL login, envelope
// sender domain or client address) and the stream (by the stream
// header, the submission service or the sender), then:
//
//   - gives the envelope sender a VERP address carrying a signed token
//     (package token) that names this copy, and records the send
//     (token id, scope, stream, recipient, Postfix queue ID) before
//     Postfix may queue it, so that log lines, bounces and complaints
//     attach to it;
//   - on bulk streams adds List-Unsubscribe with a mailto and an HTTPS
//     URI carrying the same token, and List-Unsubscribe-Post (RFC 8058);
//   - adds Feedback-ID (the form Gmail's feedback loop reads), and a
//     Message-ID and Date when missing; removes the stream header;
//   - signs with DKIM after every other change (package dkim: OpenDKIM's
//     KeyTable and SigningTable, RSA and Ed25519, relaxed/relaxed);
//   - splits a bulk message for N recipients into N messages, each with
//     its own token (copies.go).
//
// Mail with the null sender and mail of no scope is only signed, when a
// signing rule matches its From domain, and otherwise passes untouched.
//
// Everything is decided at the end of the header, so that the body
// streams through the signers (and, for a bulk message with several
// recipients, into a temporary file for the copies) and is never held
// in memory. Postfix is asked for no reply before the end of the
// message (server.go), which is where a milter's time goes. A problem
// with the store or the keys tempfails the message with a reason Postfix
// logs: nothing leaves unsigned or unrecorded by accident.
package milter
