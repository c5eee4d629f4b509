package dkim

import (
	"bytes"
	"crypto"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// lookup answers DKIM key queries from the TXT records keys publish.
func lookup(t *testing.T, keys map[string]crypto.Signer) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		k, ok := keys[strings.TrimSuffix(name, ".")]
		if !ok {
			return nil, fmt.Errorf("no TXT record for %s", name)
		}
		txt, err := TXTRecord(k)
		if err != nil {
			t.Fatal(err)
		}
		return []string{txt}, nil
	}
}

// A message signed as it streams, with an RSA and an Ed25519 key at
// once, verifies (go-msgauth's verifier; the end-to-end tests use
// dkimpy), with its folded header arriving with bare LF as Postfix sends
// it.
func TestSignStreaming(t *testing.T) {
	rsaKey, err := GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	edKey, err := GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	choices := []Choice{
		{Domain: "example.com", Selector: "r", Key: rsaKey},
		{Domain: "example.com", Selector: "e", Key: edKey, Identity: "@news.example.com"},
	}
	header := "From: Bob <bob@example.com>\r\nTo: alice@example.net\r\nSubject: a folded\n\tsubject\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n" +
		"List-Unsubscribe: <mailto:u+tok@bounces.example.com>\r\nX-Other: not signed\r\n\r\n"
	names := []string{"From", "To", "Subject", "Date", "List-Unsubscribe", "X-Other"}
	keys := HeaderKeys(names)
	sg, err := Start(choices, keys, CRLF([]byte(header)))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("a line of the body  \r\n"), 10000)
	for chunk := range slices.Chunk(body, 65535) {
		if _, err := sg.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	values, err := sg.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(values) != 2 {
		t.Fatalf("%d signatures, want 2", len(values))
	}
	var msg bytes.Buffer
	for _, v := range values {
		if !strings.HasPrefix(v, " ") || !strings.Contains(v, " v=1;") || strings.HasSuffix(v, "\r\n") {
			t.Errorf("signature value %q: want \" ...v=1...\" without the final CRLF", v)
		}
		msg.WriteString("DKIM-Signature:" + v + "\r\n")
	}
	msg.WriteString(header)
	msg.Write(body)
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(CRLF(msg.Bytes())), &msgauth.VerifyOptions{
		LookupTXT: lookup(t, map[string]crypto.Signer{"r._domainkey.example.com": rsaKey, "e._domainkey.example.com": edKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d verifications, want 2", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("d=%s: %v", v.Domain, v.Err)
		}
		for _, h := range []string{"from", "subject", "list-unsubscribe", "list-unsubscribe-post", "feedback-id"} {
			if !slices.ContainsFunc(v.HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
				t.Errorf("h= %v lacks %s", v.HeaderKeys, h)
			}
		}
	}

	// A From added after signing breaks the signature: From is
	// oversigned.
	tampered := append([]byte("From: mallory@example.com\r\n"), CRLF(msg.Bytes())...)
	vs, _ = msgauth.VerifyWithOptions(bytes.NewReader(tampered), &msgauth.VerifyOptions{
		LookupTXT: lookup(t, map[string]crypto.Signer{"r._domainkey.example.com": rsaKey, "e._domainkey.example.com": edKey}),
	})
	for _, v := range vs {
		if v.Err == nil {
			t.Errorf("d=%s verifies with a From added on top", v.Domain)
		}
	}
}

func TestHeaderKeys(t *testing.T) {
	got := HeaderKeys([]string{"from", "To", "To", "Subject", "Received", "X-Mailer"})
	count := func(name string) int {
		return len(slices.DeleteFunc(slices.Clone(got), func(k string) bool { return k != name }))
	}
	for name, want := range map[string]int{"From": 2, "To": 3, "Subject": 2, "Date": 1, "Message-ID": 1,
		"List-Unsubscribe": 1, "List-Unsubscribe-Post": 1, "Feedback-ID": 1, "Cc": 0, "Received": 0, "X-Mailer": 0} {
		if n := count(name); n != want {
			t.Errorf("%s appears %d times in %v, want %d", name, n, got, want)
		}
	}
}

func TestKeysAndRecords(t *testing.T) {
	for _, alg := range []string{"rsa", "ed25519"} {
		k, err := GenerateKey(alg, 0)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePrivateKey(pemBytes)
		if err != nil {
			t.Fatalf("%s: reading back: %v", alg, err)
		}
		a, _ := TXTRecord(k)
		b, _ := TXTRecord(back)
		if a != b || !strings.HasPrefix(a, "v=DKIM1; k="+alg+"; p=") {
			t.Errorf("%s: TXT %q, read back %q", alg, a, b)
		}
	}
	if _, err := GenerateKey("rsa", 512); err == nil {
		t.Error("a 512-bit RSA key was made")
	}
	zone := ZoneRecord("s._domainkey.example.com", strings.Repeat("x", 600))
	if strings.Count(zone, `"`) != 6 || !strings.HasPrefix(zone, "s._domainkey.example.com. IN TXT ( ") {
		t.Errorf("ZoneRecord split:\n%s", zone)
	}
	if _, err := ParsePrivateKey([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("a broken PEM key was accepted")
	}
}

// countingKey counts the signatures it makes.
type countingKey struct {
	crypto.Signer
	n *int
}

func (k countingKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	*k.n++
	return k.Signer.Sign(rand, digest, opts)
}

// An aborted message costs no signature; a finished one costs one per key.
func TestAbortSignsNothing(t *testing.T) {
	key, err := GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, finish := range []bool{false, true} {
		n := 0
		choices := []Choice{{Domain: "example.com", Selector: "e", Key: countingKey{key, &n}}}
		header := "From: bob@example.com\r\nSubject: x\r\n\r\n"
		sg, err := Start(choices, HeaderKeys([]string{"From", "Subject"}), []byte(header))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sg.Write([]byte("body\r\n")); err != nil {
			t.Fatal(err)
		}
		want := 0
		if finish {
			if _, err := sg.Finish(); err != nil {
				t.Fatal(err)
			}
			want = 1
		} else {
			sg.Abort()
		}
		if n != want {
			t.Errorf("finish=%v: %d signatures made, want %d", finish, n, want)
		}
	}
}
