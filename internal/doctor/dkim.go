package doctor

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/senderkit/senderkit/milter/dkim"
)

// keyToCheck is one configured DKIM key.
type keyToCheck struct {
	domain, selector string
	txt              string        // the record senderkit would publish for it
	key              crypto.Signer // nil when only the record is known
}

func (k keyToCheck) name() string { return dkim.RecordName(k.selector, k.domain) }

// checkKey compares the published key record of k with the configured
// key (RFC 6376 §3.6.1, RFC 8463 §4.2) and remembers the verdict for the
// DMARC checks. Each record is checked once.
func (x *run) checkKey(ctx context.Context, k keyToCheck) {
	name := k.name()
	if _, done := x.dkimOK[name]; done {
		return
	}
	res := x.keyResult(ctx, k)
	x.dkimOK[name] = res.Status != Fail
	x.add(res)
}

func (x *run) keyResult(ctx context.Context, k keyToCheck) Result {
	name := k.name()
	res := Result{Check: CheckDKIM, What: "DKIM " + name, Status: Fail}
	want, err := ParseKeyRecord(k.txt)
	if err != nil {
		res.Detail = fmt.Sprintf("cannot make the record of the configured key: %v", err)
		return res
	}
	wantKey, err := want.PublicKey()
	if err != nil {
		res.Detail = fmt.Sprintf("cannot make the record of the configured key: %v", err)
		return res
	}
	publish := "publish " + dkim.ZoneRecord(name, k.txt)
	res.Fix = publish
	txts, err := x.r.LookupTXT(ctx, name)
	switch {
	case isNotFound(err):
		res.Detail = fmt.Sprintf("no key record: receivers cannot verify the %s signatures made with selector %s", describeKey(wantKey), k.selector)
		return res
	case err != nil:
		res.Detail, res.Fix = dnsFailure(name+" TXT", err)
		return res
	case len(txts) > 1:
		// RFC 6376 §3.6.2.2: with several records a verifier may use any.
		res.Detail = fmt.Sprintf("%d TXT records: verifiers may use any of them", len(txts))
		res.Fix = publish + "\nand remove the others"
		return res
	}
	got, err := ParseKeyRecord(txts[0])
	if err != nil {
		res.Detail = fmt.Sprintf("the record %s does not parse: %v", quote(abbrev(txts[0])), err)
		return res
	}
	if got.Revoked() {
		res.Detail = "the published key is revoked (empty p=): signatures with it fail"
		return res
	}
	gotKey, err := got.PublicKey()
	if err != nil {
		res.Detail = fmt.Sprintf("the published key cannot be used: %v", err)
		return res
	}
	if !sameKey(gotKey, wantKey) {
		res.Detail = fmt.Sprintf("the published key (%s) is not the configured one (%s): every signature with selector %s fails",
			describeKey(gotKey), describeKey(wantKey), k.selector)
		return res
	}
	if !got.AllowsSHA256() {
		res.Detail = fmt.Sprintf("h=%s excludes sha256, the only hash senderkit signs with (RFC 8301 §3.1)", strings.Join(got.Hashes, ":"))
		return res
	}
	if !got.ForEmail() {
		res.Detail = fmt.Sprintf("s=%s excludes email", strings.Join(got.Services, ":"))
		return res
	}
	if k.key != nil {
		// The last word is a verifier's that we did not write: a message
		// signed with the configured key must verify against the record.
		if err := crossVerify(k, txts); err != nil {
			res.Detail = fmt.Sprintf("a message signed with the configured key does not verify with the published record: %v", err)
			return res
		}
	}
	res.Status, res.Fix = Pass, ""
	res.Detail = fmt.Sprintf("published key matches the configured %s key", describeKey(wantKey))
	if got.Testing() {
		// RFC 6376 §3.6.1: "Verifiers MUST NOT treat messages from
		// Signers in testing mode differently from unsigned email".
		res.Status = Warn
		res.Detail += ", but t=y says DKIM is being tested: verifiers must treat the mail as unsigned"
		res.Fix = publish + "\n(without t=y)"
	}
	return res
}

// crossVerify signs a small message with the key and verifies it with
// github.com/emersion/go-msgauth against the records found.
func crossVerify(k keyToCheck, txts []string) error {
	msg := "From: doctor@" + k.domain + "\r\nTo: doctor@" + k.domain + "\r\nSubject: senderkit check --dns\r\n\r\nDKIM key check.\r\n"
	var signed bytes.Buffer
	if err := msgdkim.Sign(&signed, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: k.domain, Selector: k.selector, Signer: k.key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
	}); err != nil {
		return fmt.Errorf("sign: %v", err)
	}
	vs, err := msgdkim.VerifyWithOptions(&signed, &msgdkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if !strings.EqualFold(strings.TrimSuffix(domain, "."), k.name()) {
				return nil, fmt.Errorf("unexpected lookup of %s", domain)
			}
			return txts, nil
		},
	})
	if err != nil {
		return err
	}
	if len(vs) != 1 {
		return fmt.Errorf("%d verifications, want 1", len(vs))
	}
	return vs[0].Err
}

// abbrev shortens a long record for a report line.
func abbrev(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// checkOtherKeys checks the KeyTable's keys that no From domain led to
// (a key for subdomains, say): every configured key is published.
func (x *run) checkOtherKeys(ctx context.Context) {
	if x.o.DKIM == nil {
		return
	}
	for _, rec := range x.o.DKIM.Records() {
		if rec.Err != nil {
			continue // depends on the From domain, or unused
		}
		if _, done := x.dkimOK[rec.Name]; done {
			continue
		}
		x.checkKey(ctx, keyToCheck{domain: rec.Entry.Domain, selector: rec.Entry.Selector, txt: rec.TXT})
	}
}
