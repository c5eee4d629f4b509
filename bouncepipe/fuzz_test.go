package bouncepipe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for the parsers of outside input: the whole message, the
// delivery-status fields (RFC 3464), the feedback report fields (RFC
// 5965) and non-standard bounce text. Each checks that nothing panics and
// that what comes out keeps its promises.

var fuzzOptions = Options{
	Recipient:         "b+ceaqz5bzeaaaaaaaaaaah2ibai2n6xzolkewhwcy5a@bounces.example.test",
	BounceDomain:      "bounces.example.test",
	VERPPrefix:        "b",
	UnsubscribePrefix: "u",
	UnsubscribeURL:    "https://www.example.test/u/",
}

// checkReport fails t when rep breaks an invariant of the package.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if rep == nil {
		t.Fatal("nil report")
	}
	if rep.Kind < Unknown || rep.Kind > Human {
		t.Fatalf("kind %d out of range", rep.Kind)
	}
	switch rep.Category() {
	case "", CategoryHard, CategorySoft, CategoryComplaint:
	default:
		t.Fatalf("category %q", rep.Category())
	}
	for _, r := range rep.Records {
		if r.Recipient != strings.ToLower(r.Recipient) {
			t.Fatalf("recipient %q not lower-cased", r.Recipient)
		}
		if len(r.Diagnostic) > MaxDiagnostic {
			t.Fatalf("diagnostic of %d bytes", len(r.Diagnostic))
		}
		if r.Reason == "" {
			t.Fatalf("record %+v without a reason", r)
		}
		if r.Hard && !isHard(r.Reason, r.Status, r.ReplyCode) {
			t.Fatalf("hard %s", r.Reason)
		}
		if r.Status != "" && findStatus(r.Status) != r.Status {
			t.Fatalf("status %q is not an enhanced status code", r.Status)
		}
		if r.ReplyCode != "" && (len(r.ReplyCode) != 3 || strings.IndexByte("245", r.ReplyCode[0]) < 0) {
			t.Fatalf("reply code %q", r.ReplyCode)
		}
	}
	for _, c := range rep.Tokens {
		if !isTokenShaped(c.Token) || c.Token != strings.ToLower(c.Token) || c.Where == "" {
			t.Fatalf("candidate %+v", c)
		}
	}
	var b bytes.Buffer
	if err := ClassifyJSON(&b, "f.eml", rep, nil); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b.Bytes()) {
		t.Fatalf("classify output is not UTF-8: %q", b.Bytes())
	}
}

// addSamples seeds f with the golden samples.
func addSamples(f *testing.F, each func(msg []byte)) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		each(b)
	}
}

func FuzzParse(f *testing.F) {
	addSamples(f, func(b []byte) { f.Add(b) })
	f.Add([]byte("From nobody Thu Jan  1 00:00:00 1970\nReturn-Path: <>\n\nbody"))
	f.Add([]byte("Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--x--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\nContent-Type: multipart/mixed; boundary=\"a\"\n\n--a\n\n--a--\n"))
	f.Add([]byte("Content-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: base64\n\nGyRCJUYlOSVIGyhC\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rep, err := Parse(bytes.NewReader(msg), fuzzOptions)
		if err != nil {
			t.Fatalf("Parse of in-memory input failed: %v", err)
		}
		checkReport(t, rep)
		// A message too large to read whole is read line by line: the
		// two ways must agree.
		streamed, err := parse(bytes.NewReader(msg), fuzzOptions, 0)
		if err != nil {
			t.Fatalf("parsing line by line failed: %v", err)
		}
		if a, b := reportText(rep), reportText(streamed); a != b {
			t.Fatalf("whole and line by line differ:\n%s\n%s", a, b)
		}
	})
}

// reportText writes a report and its original's header for comparison.
func reportText(rep *Report) string {
	b, _ := json.Marshal(rep)
	return string(b) + fmt.Sprint(rep.Original.Fields())
}

// analyseOnly runs the analysis on parts as the MIME walk would have
// collected them.
func analyseOnly(c *collected) *Report {
	if c.cap == 0 {
		c.cap = DefaultMaxPartBytes
	}
	return analyse(c, &fuzzOptions)
}

func FuzzDSN(f *testing.F) {
	addSamples(f, func(b []byte) {
		if i := bytes.Index(b, []byte("Reporting-MTA:")); i >= 0 {
			f.Add(string(b[i:]), "")
		}
	})
	f.Add("Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n", "<a@example.com>: host x said: 550 5.1.1 user unknown (in reply to RCPT TO command)")
	f.Add("Original-Recipient: rfc822;a@example.com\nFinal-Recipient: rfc822;A@EXAMPLE.COM\nAction: delayed (retrying)\nStatus: 4.4.7\n\n\nAction: failed\n", "")
	f.Add("Final-Recipient: x-unix; |/bin/prog\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: X-Unix; 75\n", "")
	f.Fuzz(func(t *testing.T, fields, text string) {
		d := parseDSN(fields)
		for _, r := range d.recipients {
			if r.status != "" && findStatus(r.status) != r.status {
				t.Fatalf("status %q", r.status)
			}
		}
		c := &collected{dsn: []string{fields}, reportType: "delivery-status"}
		if text != "" {
			c.texts = []string{text}
		}
		checkReport(t, analyseOnly(c))
	})
}

func FuzzARF(f *testing.F) {
	addSamples(f, func(b []byte) {
		if i := bytes.Index(b, []byte("Feedback-Type:")); i >= 0 {
			f.Add(string(b[i:]), "")
		}
	})
	f.Add("Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nOriginal-Rcpt-To: <a@example.com>\nOriginal-Rcpt-To: b@example.com\nSource-IP: 192.0.2.1\n", "From: a@example.com\nTo: c@example.com\nList-Unsubscribe: <mailto:u+ceaqz5bzeaaaaaaaaaaah2ibai2n6xzolkewhwcy5a@bounces.example.test>\n")
	f.Add("Feedback-Type: auth-failure\nAuth-Failure: dkim\nVersion: 1\n", "")
	f.Fuzz(func(t *testing.T, fields, original string) {
		fr := parseFeedback(fields)
		for _, a := range fr.originalRcptTo {
			if a != strings.ToLower(a) {
				t.Fatalf("rcpt %q", a)
			}
		}
		c := &collected{feedback: []string{fields}, reportType: "feedback-report"}
		if original != "" {
			h, _ := readHeader(&memSource{b: []byte(original)}, maxHeaderBytes, false)
			c.original = &h
		}
		checkReport(t, analyseOnly(c))
	})
}

func FuzzNonStandard(f *testing.F) {
	addSamples(f, func(b []byte) {
		if i := bytes.Index(b, []byte("\n\n")); i >= 0 && !bytes.Contains(b, []byte("multipart/")) {
			f.Add(string(b[i+2:]))
		}
	})
	f.Add("Hi. This is the qmail-send program at x.example.\n\n<a@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <b@example.com>\nReceived: x\nMessage-Id: <1@x>\n")
	f.Add("   ----- The following addresses had permanent fatal errors -----\n<a@example.com>\n    (reason: 550 5.1.1 User unknown)\n\n   ----- Transcript of session follows -----\n... while talking to mx:\n>>> RCPT To:<a@example.com>\n<<< 550 5.1.1 <a@example.com>... User unknown\n")
	f.Add("  a@example.com\n    SMTP error from remote mail server after RCPT TO:<a@example.com>:\n    host mx [192.0.2.1]: 550 5.2.2 mailbox full\n")
	f.Fuzz(func(t *testing.T, text string) {
		report, rest := splitReport(text)
		if len(report)+len(rest) > len(text) {
			t.Fatalf("split grew the text")
		}
		var h Header
		h.fields = []Field{{"From", "Mail Delivery System <MAILER-DAEMON@x.example>"}, {"Subject", "Undelivered Mail Returned to Sender"}}
		checkReport(t, analyseOnly(&collected{header: h, texts: []string{text}}))
	})
}
