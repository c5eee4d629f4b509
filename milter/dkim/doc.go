// Package dkim chooses and applies senderkit's DKIM signatures.
//
// The choice follows OpenDKIM's KeyTable and SigningTable, so that an
// OpenDKIM installation switches by pointing senderkit at the files it
// has: the same datasets ("file:" and "refile:"), the same lookup order,
// the same "%" substitutions and the same MultipleSignatures rule (see
// opendkim.conf(5) and dkimf_apply_signtable in OpenDKIM's opendkim.c).
// Two things are stricter than OpenDKIM:
//
//   - A signature whose d= does not align with the From domain (RFC 7489
//     §3.1.1, relaxed: same organisational domain) is refused, unless its
//     key is listed as the provider's own (the shared-relay case of the
//     M3AAWG Sender BCP: the customer's aligned signature plus the
//     provider's). Rules that can never align are refused when the
//     tables are loaded; the check is repeated for every message.
//   - Internationalised domains are compared in their A-label form
//     (RFC 8616 §4): "bücher.example" in a table matches a From domain
//     written "xn--bcher-kva.example" and the other way round, and d= is
//     written in A-labels.
//
// Signing streams: the final header block is written once, then the
// body chunks as they arrive, so a message is never held in memory.
// Every signature is relaxed/relaxed (RFC 6376 §3.4.2, §3.4.4), RSA-SHA256
// or Ed25519-SHA256 (RFC 8463), made with github.com/emersion/go-msgauth.
// The RSA signatures themselves are computed by the system's OpenSSL 3
// libcrypto, loaded at run time, when it can be (about three times
// faster than crypto/rsa), and by crypto/rsa otherwise; both make the
// same signature (rsasigner.go).
package dkim
