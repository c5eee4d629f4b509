package bouncepipe

import "bytes"

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
	if len(t) < 10 || t[:10] != "multipart/" || p.boundary == "" {
		return len(b)
	}
	closing := "--" + p.boundary + "--"
	closed := false
	for off := src.off; off < len(b); {
		line, next := lineAt(b, off)
		switch {
		case !closed:
			closed = bytes.HasPrefix(line, []byte(closing)) && isBlank(line[len(closing):])
		case isPostmark(line):
			if f, _ := lineAt(b, next); fieldColon(f) > 0 {
				return off
			}
		}
		off = next
	}
	return len(b)
}

// lineAt returns the line that starts at b[off:], with its line ending,
// and the offset of the next one.
func lineAt(b []byte, off int) (line []byte, next int) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return b[off:], len(b)
	}
	return b[off : off+i+1], off + i + 1
}

// firstLine returns b's first line.
func firstLine(b []byte) []byte {
	line, _ := lineAt(b, 0)
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
	return len(date) >= len("Apr 29 23:34 2015") && bytes.IndexByte(date, ':') > 0 && hasDigit(date)
}

// hasDigit reports whether b holds a decimal digit.
func hasDigit(b []byte) bool {
	for _, c := range b {
		if c >= '0' && c <= '9' {
			return true
		}
	}
	return false
}
