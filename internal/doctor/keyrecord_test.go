package doctor

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

func TestParseKeyRecord(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	p := base64.StdEncoding.EncodeToString(pub)
	good := []struct {
		txt                       string
		kind                      string
		testing, sha256, forEmail bool
	}{
		{"v=DKIM1; k=ed25519; p=" + p, "ed25519", false, true, true},
		{"k=ed25519;p=" + p + ";", "ed25519", false, true, true},
		{" v = DKIM1 ;  k = ed25519 ; t = y:s ; h = sha256 ; s = email ; p = " + p[:20] + " \t " + p[20:] + " ", "ed25519", true, true, true},
		{"v=DKIM1; k=ed25519; h=sha1; p=" + p, "ed25519", false, false, true},
		{"v=DKIM1; k=ed25519; h=SHA256; s=Email; t=Y; p=" + p, "ed25519", false, false, false},
		{"v=DKIM1; k=ed25519; h=; s=; p=" + p, "ed25519", false, false, false},
		{"v=DKIM1; k=ed25519; s=tlsrpt; p=" + p, "ed25519", false, true, false},
		{"v=DKIM1; k=ed25519; s=tlsrpt:*; n=notes are ignored; x-unknown=1; p=" + p, "ed25519", false, true, true},
	}
	for _, tc := range good {
		kr, err := ParseKeyRecord(tc.txt)
		if err != nil {
			t.Errorf("%q: %v", tc.txt, err)
			continue
		}
		k, err := kr.PublicKey()
		if err != nil || !sameKey(k, pub) || kr.KeyType != tc.kind {
			t.Errorf("%q: key %v %v", tc.txt, k, err)
		}
		if kr.Testing() != tc.testing || kr.AllowsSHA256() != tc.sha256 || kr.ForEmail() != tc.forEmail {
			t.Errorf("%q: testing %v sha256 %v email %v", tc.txt, kr.Testing(), kr.AllowsSHA256(), kr.ForEmail())
		}
	}
	// A revoked key parses, and says so.
	if kr, err := ParseKeyRecord("v=DKIM1; p="); err != nil || !kr.Revoked() {
		t.Errorf("revoked: %+v %v", kr, err)
	} else if _, err := kr.PublicKey(); err == nil {
		t.Errorf("a revoked key gave a public key")
	}
	for txt, want := range map[string]string{
		"":                                        "empty record",
		"k=rsa; v=DKIM1; p=" + p:                  "v= is not the first tag",
		"v=DKIM2; p=" + p:                         "v=DKIM2: want DKIM1",
		"v=DKIM1; k=ed25519":                      "no p= tag",
		"v=DKIM1; p=" + p + "; p=" + p:            "tag p= is given twice",
		"v=DKIM1; p=not*base64":                   "p= is not base64",
		"v=DKIM1; 1k=rsa; p=" + p:                 `"1k" is not a tag name`,
		"v=DKIM1; just words":                     `"just words" is not tag=value`,
		"v=DKIM1; k=ed25519; p=" + p[:8] + "AA==": "",
	} {
		kr, err := ParseKeyRecord(txt)
		if want == "" {
			// Parses, but the key is of the wrong size.
			if err != nil {
				t.Errorf("%q: %v", txt, err)
			} else if _, err := kr.PublicKey(); err == nil || !strings.Contains(err.Error(), "k=ed25519, but p= holds 7 bytes") {
				t.Errorf("%q: public key error %v", txt, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", txt, err, want)
		}
	}
	for txt, want := range map[string]string{
		"k=rsa; p=" + p:     "p= is not an RSA public key",
		"k=dsa; p=" + p:     "k=dsa: not a key type verifiers know",
		"k=ED25519; p=" + p: "k=ED25519: not a key type", // values are case-sensitive (RFC 6376 §3.2)
		"k=ed25519; p=AAAA": "holds 3 bytes",
	} {
		kr, err := ParseKeyRecord(txt)
		if err != nil {
			t.Errorf("%q: %v", txt, err)
			continue
		}
		if _, err := kr.PublicKey(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", txt, err, want)
		}
	}
}

// fuzzKey signs fuzzSigned; FuzzParseKeyRecord checks records against it.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, 32))

// FuzzParseKeyRecord: no input makes the parser fail badly, and a
// record that the doctor would pass (it parses, holds the configured
// key, allows sha256 and email, and is not revoked) is one with which
// github.com/emersion/go-msgauth, the verifier senderkit's signatures
// are made with, verifies a signature by that key: the doctor never
// says pass where a verifier fails the mail.
func FuzzParseKeyRecord(f *testing.F) {
	p := base64.StdEncoding.EncodeToString(fuzzKey.Public().(ed25519.PublicKey))
	for _, s := range []string{
		"v=DKIM1; k=ed25519; p=" + p,
		"v=DKIM1; k=ed25519; t=y; h=sha256; s=email; p=" + p,
		"k=ed25519; p=" + p + ";",
		"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlthoS/CXc1rBQHeNiYLKfGb7Mamu9rlXty3xJA/aD/5m6pK9mXOn08mPMOINoQ3iwkmYPvdvxbRBug+BmvDIjqiaQ4ZLuu+M2F218Ktm8mLkkDORILxSCujDuhzfV8Pj8gBoE93YfZsQsxdKbm195tfdyXwJYmbVaW1dmImoeusIuRc/WImGh1CqGjYu5MO4F9zXoD81Rm5eLU5SPmT6pu8n8Zu2uBvPGjmrure5Y1ZKxzms1zMunAUxLqkAtW+xloDJ7tRUcaLPi+e4GDJ0Upd6YPzhKFljdeoD40hFH0BFTDyc1kejB1RTphAjhsaryV0C/7NA6u6KolKWRRR8KQIDAQAB",
		"v=DKIM1; p=",
		"v=DKIM1; k=ed25519; h=sha1:sha256; s=*; n=x; p=" + p[:10] + " " + p[10:],
	} {
		f.Add(s)
	}
	msg := "From: a@fuzz.example\r\nTo: b@fuzz.example\r\nSubject: fuzz\r\n\r\nbody\r\n"
	var signed bytes.Buffer
	if err := msgdkim.Sign(&signed, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: "fuzz.example", Selector: "sel", Signer: fuzzKey,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
	}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		kr, err := ParseKeyRecord(txt)
		if err != nil {
			return
		}
		k, err := kr.PublicKey()
		kr.Testing()
		if err != nil || !sameKey(k, fuzzKey.Public()) || !kr.AllowsSHA256() || !kr.ForEmail() {
			return
		}
		// go-msgauth strips only spaces from p=, where RFC 6376 §3.6.1
		// allows any folding white space; leave those records out.
		if strings.ContainsAny(txt, "\t\r\n") {
			return
		}
		vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed.Bytes()), &msgdkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{txt}, nil },
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("the doctor passes %q, but go-msgauth does not verify with it: %v %v", txt, err, vs)
		}
	})
}
