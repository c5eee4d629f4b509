package bouncepipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func parseString(t *testing.T, msg string, opt Options) *Report {
	t.Helper()
	rep, err := Parse(strings.NewReader(msg), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	return rep
}

func TestMultipart(t *testing.T) {
	const body = "preamble\n--b\nContent-Type: text/plain\n\nfirst part\n--b-not-this\nstill first\n--b \nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\n--b--\nepilogue\n"
	for name, msg := range map[string]string{
		"lf":   "Content-Type: multipart/report; boundary=b\n\n" + body,
		"crlf": strings.ReplaceAll("Content-Type: multipart/report; boundary=b\n\n"+body, "\n", "\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			c := walkMessage(newBufSource(strings.NewReader(msg)), DefaultMaxPartBytes, false)
			if len(c.texts) != 1 || !strings.Contains(c.texts[0], "still first") || strings.Contains(c.texts[0], "preamble") {
				t.Errorf("texts = %q", c.texts)
			}
			if len(c.dsn) != 1 || !strings.Contains(c.dsn[0], "Action: failed") || strings.Contains(c.dsn[0], "epilogue") {
				t.Errorf("dsn = %q", c.dsn)
			}
		})
	}
}

func TestMultipartBroken(t *testing.T) {
	// No close delimiter, a nested multipart reusing the outer boundary's
	// prefix, and a boundary the header does not declare.
	msg := "Content-Type: multipart/mixed; boundary=\"out\"\n\n--out\nContent-Type: multipart/alternative; boundary=\"out-in\"\n\n--out-in\nContent-Type: text/plain\n\ninner text\n--out\nContent-Type: text/plain\n\nsecond\n"
	c := walkMessage(newBufSource(strings.NewReader(msg)), DefaultMaxPartBytes, false)
	if len(c.texts) != 2 || !strings.Contains(c.texts[0], "inner text") || !strings.Contains(c.texts[1], "second") {
		t.Errorf("texts = %q", c.texts)
	}
	lost := "Subject: x\n\nThis is a MIME message.\n\n--=_lost\nContent-Type: text/plain\n\nthe report\n--=_lost\nContent-Type: message/rfc822\n\nFrom: a@example.com\nTo: b@example.com\nMessage-Id: <1@x>\nSubject: hi\n\nbody\n--=_lost--\n"
	c = walkMessage(newBufSource(strings.NewReader(lost)), DefaultMaxPartBytes, false)
	if c.original == nil || c.original.Get("Message-Id") != "<1@x>" {
		t.Errorf("original = %v", c.original)
	}
	if len(c.texts) < 2 || !strings.Contains(c.texts[len(c.texts)-1], "the report") {
		t.Errorf("texts = %q", c.texts)
	}
}

func TestReadHeader(t *testing.T) {
	msg := "From MAILER-DAEMON Fri Nov 20 10:00:00 2026\r\nReturn-Path: <>\r\nSubject: a\r\n folded\r\nnot a field line\r\nX-Empty:\r\n\r\nbody\r\n"
	src := newBufSource(strings.NewReader(msg))
	h, ok := readHeader(src, maxHeaderBytes, true)
	if !ok || h.Get("Return-Path") != "<>" || h.Get("subject") != "a folded" || !h.Has("X-Empty") || h.Len() != 3 {
		t.Errorf("header = %+v", h.Fields())
	}
	line, _, _ := src.readLine()
	if string(line) != "body\r\n" {
		t.Errorf("body starts %q", line)
	}

	// A message with no header at all is all body.
	src = newBufSource(strings.NewReader("just text\nmore\n"))
	if h, ok := readHeader(src, maxHeaderBytes, true); ok || h.Len() != 0 {
		t.Errorf("header = %+v", h.Fields())
	}
	if line, _, _ := src.readLine(); string(line) != "just text\n" {
		t.Errorf("first body line %q", line)
	}

	// An over-long header keeps its first fields and skips to its end.
	long := "A: 1\nB: " + strings.Repeat("x", 100) + "\nC: 3\n\nbody\n"
	src = newBufSource(strings.NewReader(long))
	h, _ = readHeader(src, 50, true)
	if h.Get("A") != "1" || h.Has("C") {
		t.Errorf("capped header = %+v", h.Fields())
	}
	if line, _, _ := src.readLine(); string(line) != "body\n" {
		t.Errorf("first body line %q", line)
	}
}

func TestHeaderText(t *testing.T) {
	h, _ := readHeader(&memSource{b: []byte("Subject: =?iso-8859-1?q?R=E9ponse_automatique?=\nFrom: =?utf-8?b?w6k=?= <x@example.com>\n\n")}, maxHeaderBytes, false)
	if got := h.Text("Subject"); got != "Réponse automatique" {
		t.Errorf("Subject = %q", got)
	}
	if l, err := h.Mail().AddressList("From"); err != nil || len(l) != 1 || l[0].Address != "x@example.com" {
		t.Errorf("From = %v, %v", l, err)
	}
	// A stateful charset, whose text in UTF-8 is longer than the word,
	// next to plain text (wordReader).
	h, _ = readHeader(&memSource{b: []byte("Subject: Re: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTyEiR1s/LiRHJC0kXiQ7JHMkRyQ3JD8bKEI=?= (5.1.1)\n\n")}, maxHeaderBytes, false)
	if got, want := h.Text("Subject"), "Re: こんにちは、配信できませんでした (5.1.1)"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
}

func TestFindStatus(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 <a@b>: user unknown":    "5.1.1",
		"smtp; 550-5.7.26 unauthenticated": "5.7.26",
		"(#5.1.1)":                         "5.1.1",
		"5.4.312 Message expired":          "5.4.312",
		"from 192.0.2.5.4.3 and 1.2.3.4":   "",
		"version 4.5.6.7":                  "",
		"status: 4.04.07":                  "4.4.7",
		"3.1.1 is not a class":             "",
		"":                                 "",
	} {
		if got := findStatus(in); got != want {
			t.Errorf("findStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindReplyCode(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 user unknown":                                   "550",
		"host x[192.0.2.1] said: 452 4.2.2 over quota":             "452",
		"Remote host said: 554 Message refused":                    "554",
		"<a@example.com>: 550 unknown user":                        "550",
		"Connection timed out after 300 seconds":                   "",
		"Mailbox size 250 exceeded, 5.2.2":                         "",
		"5.3.0 - Other mail system problem 550-'Unknown user a@b'": "550",
	} {
		if got := findReplyCode(in); got != want {
			t.Errorf("findReplyCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAddresses(t *testing.T) {
	got := findAddresses(`To: "A" <First.Last@Example.COM>, x@[192.0.2.1]; mailto:m@example.org. SMTP=s@example.net foo@bar @nope.example`)
	want := []string{"first.last@example.com", "x@[192.0.2.1]", "m@example.org", "s@example.net"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findAddresses = %q, want %q", got, want)
	}
	for in, want := range map[string]string{
		"rfc822; <A@B.example>":   "a@b.example",
		"rfc822;a@b.example.":     "a@b.example",
		"unknown; nair_s":         "",
		"x-unix; |/usr/bin/prog":  "",
		"\"user\"@example.com":    "user@example.com",
		"<mailto:u@example.test>": "u@example.test",
	} {
		if got := cleanAddress(in); got != want {
			t.Errorf("cleanAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKindText(t *testing.T) {
	for k := Unknown; k <= Human; k++ {
		b, _ := k.MarshalText()
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("%v round-trips to %v, %v", k, back, err)
		}
	}
	if err := new(Kind).UnmarshalText([]byte("nonsense")); err == nil {
		t.Error("UnmarshalText accepted nonsense")
	}
}

// errAfter returns data and then a read error.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	rep, err := Parse(&errAfter{strings.NewReader("Subject: x\n\nbody\n"), boom}, Options{})
	if !errors.Is(err, boom) || rep == nil {
		t.Errorf("Parse = %v, %v; want the read error and a report", rep, err)
	}
}

func TestEmptyAndGarbage(t *testing.T) {
	for _, msg := range []string{"", "\n\n\n", "\x00\x01\x02", strings.Repeat("-", 100000), "Content-Type: multipart/mixed\n\nno boundary"} {
		rep := parseString(t, msg, Options{})
		if rep.Kind == Bounce || rep.Kind == Complaint {
			t.Errorf("%.20q read as %v", msg, rep.Kind)
		}
	}
}

// TestCrashers replays inputs the fuzz targets once crashed on.
func TestCrashers(t *testing.T) {
	h := Header{fields: []Field{{"From", "MAILER-DAEMON@x.example"}, {"Subject", "Undelivered Mail"}}}
	for _, text := range []string{
		"00\xe50host 0", // findRemoteHost mixed offsets of a lower-cased copy
	} {
		checkReport(t, analyseOnly(&collected{header: h, texts: []string{text}}))
	}
}

// bigReader yields a head, then n bytes of filler lines, then a tail,
// without holding them in memory.
type bigReader struct {
	head, tail string
	filler     string
	n          int
	sent       int
	state      int
	buf        []byte
	fill       []byte
}

func (b *bigReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		switch {
		case b.state == 0:
			b.buf, b.state = []byte(b.head), 1
			b.fill = []byte(b.filler)
		case b.state == 1 && b.sent < b.n:
			b.buf = b.fill // no allocation per chunk: only Parse's count
			b.sent += len(b.fill)
		case b.state == 1:
			b.buf, b.state = []byte(b.tail), 2
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// TestMemoryBounded parses 50 MB messages (one huge text part, one huge
// attached original, one huge header line) and checks that what Parse
// allocates does not grow with the input.
func TestMemoryBounded(t *testing.T) {
	size := 50 << 20
	if testing.Short() {
		size = 5 << 20
	}
	dsnHead := "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\n<a@example.com>: host x said: 550 5.1.1 user unknown (in reply to RCPT TO command)\n"
	cases := map[string]*bigReader{
		"text part": {head: dsnHead, filler: strings.Repeat("lorem ipsum dolor sit amet ", 3) + "\n", tail: "\n--b--\n"},
		"original": {head: dsnHead + "--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n\n--b\nContent-Type: message/rfc822\n\nFrom: n@example.com\nSubject: big\n\n",
			filler: strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 2) + "\n", tail: "\n--b--\n"},
		"long line": {head: "Subject: x\nX-Long: ", filler: strings.Repeat("y", 4096), tail: "\n\nbody\n"},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			r.n = size
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rep, err := Parse(r, Options{})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("parsing %d MB allocated %d MB", size>>20, alloc>>20)
			}
			if name != "long line" && (len(rep.Records) != 1 || rep.Records[0].Recipient != "a@example.com") {
				t.Errorf("records = %+v", rep.Records)
			}
		})
	}
}

func TestClassifyJSONShape(t *testing.T) {
	rep := &Report{Kind: Bounce, Records: []Record{{Recipient: "a@example.com", Reason: "userunknown", Hard: true, Status: "5.1.1", ReplyCode: "550"}},
		Tokens: []Candidate{{Token: "t", Where: WhereRecipient}}}
	var b bytes.Buffer
	if err := ClassifyJSON(&b, "x.eml", rep, func(Candidate) string { return TokenForged }); err != nil {
		t.Fatal(err)
	}
	want := `{"file":"x.eml","recipient":"a@example.com","reason":"userunknown","hard":true,"status":"5.1.1","reply_code":"550","feedback_type":"","token":"forged"}` + "\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	b.Reset()
	ClassifyJSON(&b, "y.eml", &Report{Kind: Human}, nil)
	if want := `{"file":"y.eml","recipient":"","reason":"","hard":false,"status":"","reply_code":"","feedback_type":"","token":"none"}` + "\n"; b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
}

// TestAlternatives: of a multipart/alternative report the plain text is
// read and its HTML twin skipped, unless the plain text is a stub.
func TestAlternatives(t *testing.T) {
	msg := func(plain string) string {
		return "From: MAILER-DAEMON@mx.example.org\nSubject: Undeliverable: news\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\nContent-Type: text/plain\n\n" + plain +
			"\n--alt\nContent-Type: text/html\n\n<html><body><p>Delivery has failed to these recipients:</p>" +
			"<p>a@example.com</p><p>Remote server returned '550 5.2.2 mailbox full'</p></body></html>\n--alt--\n"
	}
	full := "Delivery has failed to these recipients or groups:\n\na@example.com\nThe recipient's mailbox is full and can't accept messages now.\n" +
		"Remote server returned '550 5.2.2 mailbox full'\n"
	for _, c := range []struct{ name, plain string }{{"plain", full}, {"stub", "View this message in HTML."}} {
		rep, err := Parse(strings.NewReader(msg(c.plain)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Records) != 1 || rep.Records[0].Recipient != "a@example.com" || rep.Records[0].Reason != "mailboxfull" {
			t.Errorf("%s: %+v", c.name, rep.Records)
		}
		want := 1 // the full plain text alone
		if c.name == "stub" {
			want = 2
		}
		if got := walkMessage(&memSource{b: []byte(msg(c.plain))}, DefaultMaxPartBytes, false); len(got.texts) != want {
			t.Errorf("%s: read %d alternatives, want %d", c.name, len(got.texts), want)
		}
	}
}

// TestSendmailHostLines: Sendmail writes a host's status ("550
// mx.example.org (smtp)... 550 Host unknown") before the recipient lines
// it led to; it is not part of the recipient line above it.
func TestSendmailHostLines(t *testing.T) {
	msg := "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>\n" +
		"To: news@example.com\n" +
		"Subject: Returned mail: Host unknown\n\n" +
		"   ----- Transcript of session follows -----\n" +
		"421 mx.example.net (smtp)... Deferred: Connection reset by peer\n" +
		"554 <ann@example.net>... Remote protocol error: Connection reset by peer\n" +
		"550 nowhere.example (smtp)... 550 Host unknown\n" +
		"554 <bob@nowhere.example>... 550 Host unknown (Authoritative answer from name server)\n\n" +
		"   ----- Unsent message follows -----\n" +
		"From: news@example.com\nTo: ann@example.net\nSubject: hello\n\nhello\n"
	rep := parseString(t, msg, Options{})
	got := map[string]string{}
	for _, r := range rep.Records {
		got[r.Recipient] = r.Reason + " " + r.Category()
	}
	if got["ann@example.net"] != "networkerror soft" || got["bob@nowhere.example"] != "hostunknown hard" {
		t.Errorf("records = %v", got)
	}
}

// TestSenderNamedInTheReport: Exim names the sender of the returned
// message on a line of its own, as it names the recipients; the copy it
// quotes says who that is, and the sender is no recipient.
func TestSenderNamedInTheReport(t *testing.T) {
	msg := "From: Mail Delivery System <Mailer-Daemon@relay.example.org>\n" +
		"To: postmaster@relay.example.org\n" +
		"Subject: Mail delivery failed\n\n" +
		"This message was created automatically by mail delivery software.\n\n" +
		"A message sent by\n\n  <list-owner@lists.example.com>\n\n" +
		"could not be delivered to one or more of its recipients. The following\naddress(es) failed:\n\n" +
		"  ann@example.net\n    all hosts have been failing for a long time and were last tried after this message arrived\n\n" +
		"------ This is a copy of the message, including all the headers. ------\n\n" +
		"Return-path: <list-owner@lists.example.com>\n" +
		"From: News <news@example.com>\nTo: ann@example.net\nSubject: hello\n\nhello\n"
	rep := parseString(t, msg, Options{})
	var got []string
	for _, r := range rep.Records {
		got = append(got, r.Recipient+" "+r.Reason)
	}
	if len(got) != 1 || got[0] != "ann@example.net expired" {
		t.Errorf("records = %q, want only ann@example.net expired", got)
	}
}

// TestOriginalRecipient: a report that names nobody is about the
// returned original's recipient: the one its newest Received names, or
// else the one its To names, unless that is the mailing list the copy
// came through.
func TestOriginalRecipient(t *testing.T) {
	report := "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n" +
		"Subject: Mail delivery failed: returning message to sender\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\n" +
		"A message that you sent could not be delivered to one or more of its recipients.\n" +
		"Your message could not be delivered.\n\n" +
		"--b\nContent-Type: message/rfc822\n\n%s\nhello\n--b--\n"
	for _, c := range []struct{ name, original, want string }{
		{"received for",
			"Received: from relay.example.org by mx.example.net (MTA) with ESMTP id 4AB\n\tfor <ann@example.net>; Mon, 2 Nov 2026 10:00:00 +0000\n" +
				"Received: from list.example.org by relay.example.org; Mon, 2 Nov 2026 09:59:00 +0000\n" +
				"To: Team <team@lists.example.org>\nX-BeenThere: team@lists.example.org\nFrom: bob@example.org\nSubject: hi\n",
			"ann@example.net"},
		{"to a list", "Received: from list.example.org by mx.example.net; Mon, 2 Nov 2026 10:00:00 +0000\n" +
			"To: Team <team@lists.example.org>\nList-Post: <mailto:team@lists.example.org>\nFrom: bob@example.org\nSubject: hi\n",
			""},
		{"to one person", "Received: from relay.example.org by mx.example.net; Mon, 2 Nov 2026 10:00:00 +0000\n" +
			"To: Ann <ann@example.net>\nFrom: bob@example.org\nSubject: hi\n",
			"ann@example.net"},
	} {
		rep := parseString(t, fmt.Sprintf(report, c.original), Options{})
		if len(rep.Records) != 1 || rep.Records[0].Recipient != c.want {
			t.Errorf("%s: records %+v, want one for %q", c.name, rep.Records, c.want)
		}
	}
}

// TestScannerNameIsNoVirus: a report signed by a virus scanner's product
// name is not about a virus; what it says is.
func TestScannerNameIsNoVirus(t *testing.T) {
	msg := "From: gateway@mail.example.com\nSubject: Mail could not be delivered\n\n" +
		"****** Message from Example E-Mail VirusWall ******\n\n" +
		"The following mail could not be delivered.\n" +
		"Reason:  Exceeded Maximum Delivery Attempts.  Verify that the recipient address is correct.\n\n" +
		"From: bob@example.org\nTo: ann@example.net\nSubject: hi\n\nhello\n"
	rep := parseString(t, msg, Options{})
	if len(rep.Records) != 1 || rep.Records[0].Reason != "expired" || rep.Records[0].SenderProblem {
		t.Errorf("records %+v, want one expired, not the sender's problem", rep.Records)
	}
}
