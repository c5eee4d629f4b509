package bouncepipe

import (
	"bytes"
	"strings"
)

// SplitMbox cuts a saved mailbox file into its messages, for reading
// files an administrator saved (`senderkit bouncepipe classify`); what
// pipe(8) hands over is always one message.
//
// A file is a mailbox when its first line is a postmark, an mbox "From "
// line (RFC 4155: "From", the envelope sender, a date). RFC 4155 wants a
// "From " line inside a message escaped (">From "), but bounces that
// quote the returned message often do not escape its postmark, so a later
// postmark starts a new message only where the message before it has
// provably ended: that message is multipart (RFC 2046 §5.1.1) and its
// closing delimiter ("--boundary--") came before the postmark, and a
// header field follows the postmark. Anywhere else a postmark is taken
// as part of the message. A file that is not a mailbox is one message.
// The parts returned are slices of b, each starting with its postmark.
func SplitMbox(b []byte) [][]byte {
	if !isPostmark(firstLine(b)) {
		return [][]byte{b}
	}
	var out [][]byte
	for start := 0; ; {
		end := messageEnd(b, start)
		out = append(out, b[start:end])
		if end == len(b) {
			return out
		}
		start = end
	}
}

// messageEnd returns where the message that starts at b[start:] ends: at
// the first postmark after its closing delimiter, or at the end of b.
func messageEnd(b []byte, start int) int {
	src := &memSource{b: b, off: start}
	h, _ := readHeader(src, maxHeaderBytes, true)
	t, p := contentType(&h)
	if !strings.HasPrefix(t, "multipart/") || p.boundary == "" {
		return len(b)
	}
	closing := []byte("--" + p.boundary + "--")
	closed := false
	for {
		off := src.off
		line, _, err := src.readLine()
		if err != nil {
			return len(b)
		}
		switch {
		case !closed:
			closed = bytes.HasPrefix(line, closing) && isBlank(line[len(closing):])
		case isPostmark(line):
			after := src.off
			if next, _, err := src.readLine(); err == nil && fieldColon(next) > 0 {
				return off
			}
			src.off = after // no header follows: read on from the next line
		}
	}
}

// firstLine returns b's first line.
func firstLine(b []byte) []byte {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return line
}

// isPostmark reports whether line is an mbox "From " line: "From ", a
// sender without spaces, and a date after it, as in "From
// MAILER-DAEMON  Thu Apr 29 23:34:45 2015".
func isPostmark(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("From "))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	i := bytes.IndexByte(rest, ' ')
	if i <= 0 {
		return false
	}
	date := bytes.TrimSpace(rest[i:])
	return len(date) >= len("Apr 29 23:34 2015") && bytes.IndexByte(date, ':') > 0 && bytes.ContainsAny(date, "0123456789")
}
