package policyd

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

var testLimits = Limits{MaxLine: 1024, MaxAttributes: 50}

// postfixRequest is what Postfix 3.7's smtpd sends at RCPT
// (SMTPD_POLICY_README, "Protocol description").
const postfixRequest = `request=smtpd_access_policy
protocol_state=RCPT
protocol_name=ESMTP
client_address=192.0.2.7
client_name=app.example
client_port=40312
reverse_client_name=app.example
server_address=127.0.0.1
server_port=25
helo_name=app.example
sender=news@acme.example
recipient=Bob@Dest.Example
recipient_count=0
queue_id=
instance=1b2f.6560f1a2.8a1b2.0
size=12345
etrn_domain=
stress=
sasl_method=PLAIN
sasl_username=acme-app
sasl_sender=
ccert_subject=
ccert_issuer=
ccert_fingerprint=
ccert_pubkey_fingerprint=
encryption_protocol=TLSv1.3
encryption_cipher=TLS_AES_256_GCM_SHA384
encryption_keysize=256
policy_context=bulk
compatibility_level=3.6
mail_version=3.7.11

`

func TestReadRequest(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader(postfixRequest+strings.Replace(postfixRequest, "recipient=Bob@Dest.Example", "recipient=x=y@z.example", 1)), 2048)
	var req Request
	if err := ReadRequest(r, &req, testLimits); err != nil {
		t.Fatal(err)
	}
	want := Request{Request: "smtpd_access_policy", ProtocolState: "RCPT", Sender: "news@acme.example", Recipient: "Bob@Dest.Example",
		ClientAddress: "192.0.2.7", SASLUsername: "acme-app", Instance: "1b2f.6560f1a2.8a1b2.0", PolicyContext: "bulk", Attributes: 31}
	if req != want {
		t.Errorf("request =\n%+v\nwant\n%+v", req, want)
	}
	// The second request on the same connection; a value may hold '='.
	if err := ReadRequest(r, &req, testLimits); err != nil || req.Recipient != "x=y@z.example" || req.Sender != "news@acme.example" {
		t.Errorf("second request: %+v, %v", req, err)
	}
	if err := ReadRequest(r, &req, testLimits); !errors.Is(err, io.EOF) {
		t.Errorf("after the last request: %v, want EOF", err)
	}
}

func TestReadRequestLimits(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"long line", "recipient=" + strings.Repeat("a", 2000) + "\n\n", ErrLineTooLong},
		{"long line without end", strings.Repeat("a", 5000), ErrLineTooLong},
		{"too many attributes", strings.Repeat("x=y\n", 51) + "\n", ErrTooManyLines},
		{"no equals sign", "request=smtpd_access_policy\ngarbage\n\n", ErrMalformedLine},
		{"cut short", "request=smtpd_access_policy\nsender=a@b", io.ErrUnexpectedEOF},
	} {
		var req Request
		err := ReadRequest(bufio.NewReaderSize(strings.NewReader(c.in), testLimits.MaxLine+1), &req, testLimits)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Exactly at the limits is fine.
	in := strings.Repeat("x=y\n", 49) + "recipient=" + strings.Repeat("a", testLimits.MaxLine-len("recipient=\n")) + "\n\n"
	var req Request
	if err := ReadRequest(bufio.NewReaderSize(strings.NewReader(in), testLimits.MaxLine+1), &req, testLimits); err != nil || req.Attributes != 50 {
		t.Errorf("at the limits: %v, %d attributes", err, req.Attributes)
	}
}

// FuzzReadRequest: no input makes the reader panic or exceed its limits,
// and what it accepts reads back the same when written out again.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(postfixRequest))
	f.Add([]byte("request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=a@b\n\n\nsender=\n\n"))
	f.Add([]byte("a\n\n"))
	f.Add([]byte("=\n=\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLine: 256, MaxAttributes: 20}
		r := bufio.NewReaderSize(strings.NewReader(string(data)), lim.MaxLine+1)
		for range 50 {
			var req Request
			err := ReadRequest(r, &req, lim)
			if err != nil {
				return
			}
			if req.Attributes < 1 || req.Attributes > lim.MaxAttributes {
				t.Fatalf("accepted a request of %d attributes", req.Attributes)
			}
			for _, v := range []string{req.Recipient, req.Sender, req.ProtocolState, req.ClientAddress} {
				if len(v) > lim.MaxLine || strings.ContainsAny(v, "\n") {
					t.Fatalf("value %q breaks the limits", v)
				}
			}
			var b strings.Builder
			for _, kv := range [][2]string{{"request", req.Request}, {"protocol_state", req.ProtocolState}, {"sender", req.Sender},
				{"recipient", req.Recipient}, {"client_address", req.ClientAddress}, {"sasl_username", req.SASLUsername},
				{"queue_id", req.QueueID}, {"instance", req.Instance}, {"policy_context", req.PolicyContext}} {
				if strings.HasSuffix(kv[1], "\r") {
					return // a trailing CR is taken as a line end: not round-trippable
				}
				b.WriteString(kv[0] + "=" + kv[1] + "\n")
			}
			b.WriteString("\n")
			var again Request
			if err := ReadRequest(bufio.NewReaderSize(strings.NewReader(b.String()), 4096), &again, Limits{MaxLine: 4096, MaxAttributes: 20}); err != nil {
				t.Fatalf("re-reading %q: %v", b.String(), err)
			}
			again.Attributes = req.Attributes
			if again != req {
				t.Fatalf("round trip: %+v != %+v", again, req)
			}
		}
	})
}
