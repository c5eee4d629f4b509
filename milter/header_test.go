package milter

import (
	"strings"
	"testing"
)

// Deleting every instance of a field sends its indexes from the last
// down (Postfix unlinks a deleted field, so the others keep theirs); the
// header left for signing has the deletions and the additions, with CRLF
// line ends even where Postfix folded with a bare LF.
func TestEdits(t *testing.T) {
	in := fields{
		{"From", " a@example.com"},
		{"X-Senderkit-Stream", " news"},
		{"Subject", " one\n\ttwo"},
		{"x-senderkit-stream", " again"},
		{"List-Unsubscribe", " <mailto:app@example.com>"},
	}
	e := newEdits(in)
	e.remove("X-Senderkit-Stream")
	e.remove("List-Unsubscribe")
	e.remove("Feedback-ID") // absent: nothing to do
	e.add("List-Unsubscribe", "<mailto:u+t@b.example>")
	e.add("Feedback-ID", "a:b:c:d")
	var got []string
	for _, ed := range e.list {
		if ed.del {
			got = append(got, "del "+ed.name+" "+string(rune('0'+ed.index)))
		} else {
			got = append(got, "add "+ed.name+":"+ed.value)
		}
	}
	want := []string{"del x-senderkit-stream 2", "del X-Senderkit-Stream 1", "del List-Unsubscribe 1",
		"add List-Unsubscribe: <mailto:u+t@b.example>", "add Feedback-ID: a:b:c:d"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("edits:\n got  %q\n want %q", got, want)
	}
	block, names := e.header()
	wantBlock := "From: a@example.com\r\nSubject: one\r\n\ttwo\r\nList-Unsubscribe: <mailto:u+t@b.example>\r\nFeedback-ID: a:b:c:d\r\n\r\n"
	if string(block) != wantBlock {
		t.Errorf("header block:\n got  %q\n want %q", block, wantBlock)
	}
	if strings.Join(names, ",") != "From,Subject,List-Unsubscribe,Feedback-ID" {
		t.Errorf("names %v", names)
	}
}

func TestParseFrom(t *testing.T) {
	for _, c := range []struct {
		value  string
		strict bool
		want   string // "" for an error
	}{
		{" Bob <bob@Example.COM>", true, "bob@example.com"},
		{" =?utf-8?q?J=C3=BCrgen?= <jürgen@bücher.example>", true, "jürgen@xn--bcher-kva.example"},
		{" =?iso-8859-1?q?J=FCrgen?= <j@example.com>", true, "j@example.com"},
		{" \"a, b\" <ab@example.com>", true, "ab@example.com"},
		{" a@example.com, b@example.com", true, ""},
		{" a@example.com, b@example.com", false, "a@example.com"},
		{" <nobody>", false, ""},
		{" Bob\n\t<bob@example.com>", true, "bob@example.com"},
		// Display names that cannot be decoded do not hide the address.
		{" =?unknown-8bit?q?J=F6rg?= <j@example.com>", true, "j@example.com"},
		{" J\xf6rg M\xfcller <j@example.com>", true, "j@example.com"},
		{" \"J\xf6rg\" <j@example.com>", true, "j@example.com"},
	} {
		a, err := parseFrom(fields{{"From", c.value}}, c.strict)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%q: %v, want an error", c.value, a)
		case c.want != "" && (err != nil || a.String() != c.want):
			t.Errorf("%q: %v, %v; want %s", c.value, a, err, c.want)
		}
	}
	two := fields{{"From", " a@example.com"}, {"From", " b@example.com"}}
	if _, err := parseFrom(two, true); err == nil {
		t.Error("two From fields accepted in strict mode")
	}
	if a, err := parseFrom(two, false); err != nil || a.String() != "a@example.com" {
		t.Errorf("two From fields, lenient: %v, %v; want the first, as OpenDKIM", a, err)
	}
}

// The fingerprint of a message is the same for the same submission and
// leaves out what Postfix made up for it (a Message-ID holding the queue
// ID, and the Date); it differs for another message or sender.
func TestFingerprint(t *testing.T) {
	key := func(sender, qid string, fs fields, body string) string {
		f := newFingerprint(sender, fs, qid)
		f.Write([]byte(body))
		return f.key()
	}
	base := fields{{"From", " a@example.com"}, {"Subject", " hi"}}
	withPostfix := func(qid, date string) fields {
		return append(append(fields(nil), base...), field{"Message-Id", " <20261123152301." + qid + "@lab.example.test>"},
			field{"Date", " " + date}, field{"Received", " by somewhere " + qid})
	}
	a := key("s@example.com", "AAA111", withPostfix("AAA111", "Mon, 23 Nov 2026 15:00:00"), "body\r\n")
	b := key("s@example.com", "BBB222", withPostfix("BBB222", "Mon, 23 Nov 2026 15:05:00"), "body\r\n")
	if a != b {
		t.Errorf("the same submission twice, with Postfix's own Message-ID and Date: %s != %s", a, b)
	}
	for name, other := range map[string]string{
		"another body":   key("s@example.com", "AAA111", withPostfix("AAA111", "x"), "other\r\n"),
		"another sender": key("t@example.com", "AAA111", withPostfix("AAA111", "x"), "body\r\n"),
		"another header": key("s@example.com", "AAA111", append(withPostfix("AAA111", "x"), field{"Subject", " again"}), "body\r\n"),
	} {
		if other == a {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	// The application's own Message-ID counts: two messages that differ
	// only there are two messages.
	own := func(id string) string {
		return key("s@example.com", "CCC333", append(append(fields(nil), base...), field{"Message-ID", " <" + id + "@example.com>"}), "body\r\n")
	}
	if own("1") == own("2") {
		t.Error("messages with different Message-IDs share a fingerprint")
	}
	// A message with its own Message-ID and no Date, retried: Postfix
	// gives each submission a Date of its own.
	dated := func(qid, date string) string {
		return key("s@example.com", qid, append(append(fields(nil), base...), field{"Message-ID", " <7@example.com>"}, field{"Date", " " + date}), "body\r\n")
	}
	if dated("DDD444", "Mon, 23 Nov 2026 15:00:00") != dated("EEE555", "Mon, 23 Nov 2026 15:05:00") {
		t.Error("a retry of a message with its own Message-ID differs by the Date Postfix added")
	}
	// Without a Message-ID, the Date is all that tells two messages apart.
	undated := func(date string) string {
		return key("s@example.com", "", append(append(fields(nil), base...), field{"Date", " " + date}), "body\r\n")
	}
	if undated("Mon, 23 Nov 2026 15:00:00") == undated("Tue, 24 Nov 2026 15:00:00") {
		t.Error("two messages with no Message-ID and different Dates share a fingerprint")
	}
}

func TestSubmitHelpers(t *testing.T) {
	if got := keepArgs("SIZE=1234 BODY=8BITMIME SMTPUTF8 AUTH=<> RET=HDRS ENVID=x+2By", "BODY", "SMTPUTF8", "RET", "ENVID"); got != " BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By" {
		t.Errorf("keepArgs MAIL: %q", got)
	}
	if got := keepArgs("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com", "NOTIFY", "ORCPT"); got != " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com" {
		t.Errorf("keepArgs RCPT: %q", got)
	}
	if got := xtext("a b+c=d\xff"); got != "a+20b+2Bc+3Dd+FF" {
		t.Errorf("xtext: %q", got)
	}
	if got := xtext(""); got != "[UNAVAILABLE]" {
		t.Errorf("xtext empty: %q", got)
	}
	id := messageID("", "bounces.example.net")
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@bounces.example.net>") || id == messageID("", "bounces.example.net") {
		t.Errorf("messageID: %q", id)
	}
}
