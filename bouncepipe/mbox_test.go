package bouncepipe

import (
	"bytes"
	"strings"
	"testing"
)

// dsnMessage is a made-up multipart DSN for recipient rcpt, with an mbox
// postmark before it.
func dsnMessage(rcpt, boundary string) string {
	return "From MAILER-DAEMON  Mon Nov 23 10:00:00 2026\n" +
		"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n" +
		"To: bounces@example.com\n" +
		"Subject: Undelivered Mail Returned to Sender\n" +
		"Content-Type: multipart/report; report-type=delivery-status;\n" +
		"\tboundary=\"" + boundary + "\"\n" +
		"\n" +
		"--" + boundary + "\n" +
		"Content-Type: text/plain\n" +
		"\n" +
		"<" + rcpt + ">: host mx.example.net said: 550 5.1.1 no such user\n" +
		"\n" +
		"--" + boundary + "\n" +
		"Content-Type: message/delivery-status\n" +
		"\n" +
		"Reporting-MTA: dns; mx.example.org\n" +
		"\n" +
		"Final-Recipient: rfc822; " + rcpt + "\n" +
		"Action: failed\n" +
		"Status: 5.1.1\n" +
		"\n" +
		"--" + boundary + "--\n"
}

func TestSplitMbox(t *testing.T) {
	two := dsnMessage("one@example.net", "b1") + "\n" + dsnMessage("two@example.net", "b2")
	quoting := "From MAILER-DAEMON  Mon Nov 23 10:00:00 2026\n" +
		"From: postmaster@example.net\nSubject: email bounce notification\n\n" +
		"reject reason: Mailbox full\ntarget mail address: one@example.net\n\nbounced E-Mail:\n\n" +
		"From bounces@example.com  Mon Nov 23 09:59:58 2026\nFrom: News <news@example.com>\nTo: one@example.net\n\nhello\n"
	inPart := strings.Replace(dsnMessage("one@example.net", "b1"), "--b1--\n",
		"--b1\nContent-Type: text/rfc822-headers\n\nFrom bounces@example.com  Mon Nov 23 09:59:58 2026\nFrom: News <news@example.com>\n\n--b1--\n", 1)
	notHeader := dsnMessage("one@example.net", "b1") + "From here on  we talk at 10:00 2026\nno header follows\n"
	for _, tc := range []struct {
		name string
		in   string
		want int
	}{
		{"not a mailbox", strings.TrimPrefix(dsnMessage("one@example.net", "b1"), "From MAILER-DAEMON  Mon Nov 23 10:00:00 2026\n"), 1},
		{"one message", dsnMessage("one@example.net", "b1"), 1},
		{"two messages", two, 2},
		{"two messages, CRLF", strings.ReplaceAll(two, "\n", "\r\n"), 2},
		{"two messages, no blank line between", dsnMessage("one@example.net", "b1") + dsnMessage("two@example.net", "b2"), 2},
		{"three messages", two + dsnMessage("three@example.net", "b3"), 3},
		// A single-part bounce has no end but the file's: the postmark of
		// the message it returns, unescaped, stays in it.
		{"single part quoting a postmark", quoting, 1},
		{"postmark before the closing delimiter", inPart, 1},
		{"no header after the postmark", notHeader, 1},
		{"a single-part message first", quoting + dsnMessage("two@example.net", "b2"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := SplitMbox([]byte(tc.in))
			if len(parts) != tc.want {
				t.Fatalf("%d messages, want %d", len(parts), tc.want)
			}
			if got := bytes.Join(parts, nil); string(got) != tc.in {
				t.Fatalf("the parts do not make up the input")
			}
			for i, p := range parts {
				if i > 0 && !bytes.HasPrefix(p, []byte("From ")) {
					t.Errorf("message %d starts %q", i+1, firstLine(p))
				}
			}
		})
	}
}

// TestSplitMboxParses: each message of a mailbox reads as its own bounce.
func TestSplitMboxParses(t *testing.T) {
	in := dsnMessage("one@example.net", "b1") + "\n" + dsnMessage("two@example.net", "b2")
	var got []string
	for _, msg := range SplitMbox([]byte(in)) {
		rep, err := Parse(bytes.NewReader(msg), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Records {
			got = append(got, r.Recipient+" "+r.Reason)
		}
	}
	if want := "one@example.net userunknown|two@example.net userunknown"; strings.Join(got, "|") != want {
		t.Errorf("records %q, want %q", strings.Join(got, "|"), want)
	}
}

func FuzzSplitMbox(f *testing.F) {
	f.Add([]byte(dsnMessage("one@example.net", "b1") + dsnMessage("two@example.net", "b2")))
	f.Add([]byte("From a  Mon Nov 23 10:00:00 2026\nContent-Type: multipart/mixed; boundary=x\n\n--x--\nFrom b  Mon Nov 23 10:00:00 2026\nA: b\n"))
	f.Add([]byte("From \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := SplitMbox(b)
		if len(parts) == 0 {
			t.Fatal("no message")
		}
		if !bytes.Equal(bytes.Join(parts, nil), b) {
			t.Fatal("the parts do not make up the input")
		}
		for i, p := range parts {
			if len(p) == 0 && len(b) > 0 {
				t.Fatalf("message %d is empty", i+1)
			}
			if i > 0 && !isPostmark(firstLine(p)) {
				t.Fatalf("message %d starts %q", i+1, firstLine(p))
			}
		}
	})
}
