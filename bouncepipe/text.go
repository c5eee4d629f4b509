package bouncepipe

import (
	"sort"
	"strings"
	"sync"
)

// view is a text read for phrases: where its lines start, and, once
// asked for, its words and every phrase found in it.
type view struct {
	text     string
	lineOff  []int32 // byte offset of each line's start
	read     bool
	tok      tokens
	lineWord []int32 // index of the first word at or after each line's start
	hits     []hit   // all phrases found, in text order
}

// viewPool holds views, their buffers kept for the next text.
var viewPool = sync.Pool{New: func() any { return new(view) }}

// newView returns a view of text; release gives it back.
func newView(text string) *view {
	v := viewPool.Get().(*view)
	v.text, v.read = text, false
	v.lineOff = append(v.lineOff[:0], 0)
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		v.lineOff = append(v.lineOff, int32(i))
	}
	return v
}

// words splits the text into words and finds the phrases, once.
func (v *view) words() *view {
	if v.read {
		return v
	}
	v.read = true
	v.tok.reset(v.text)
	if cap(v.lineWord) < len(v.lineOff) {
		v.lineWord = make([]int32, len(v.lineOff))
	}
	v.lineWord = v.lineWord[:len(v.lineOff)]
	w := 0
	n := v.tok.n()
	for l, off := range v.lineOff {
		for w < n && v.tok.spans[2*w] < off {
			w++
		}
		v.lineWord[l] = int32(w)
	}
	v.hits = wording.findAll(&v.tok, 0, n, v.hits[:0])
	return v
}

// release gives v back for another text; v must not be used after.
func (v *view) release() {
	if v == nil || cap(v.tok.buf) > 1<<20 {
		return // keep no buffer of a huge text
	}
	v.text = ""
	viewPool.Put(v)
}

func (v *view) lines() int { return len(v.lineOff) }

// lineAt returns the line that holds byte offset off.
func (v *view) lineAt(off int) int {
	return sort.Search(len(v.lineOff), func(l int) bool { return int(v.lineOff[l]) > off }) - 1
}

// line returns line l without its line ending.
func (v *view) line(l int) string {
	start := int(v.lineOff[l])
	end := len(v.text)
	if l+1 < len(v.lineOff) {
		end = int(v.lineOff[l+1]) - 1
	}
	if end < start {
		end = start
	}
	return v.text[start:end]
}

// wordRange returns the words of lines [from, to).
func (v *view) wordRange(from, to int) (int, int) {
	v.words()
	a := int(v.lineWord[from])
	b := v.tok.n()
	if to < len(v.lineWord) {
		b = int(v.lineWord[to])
	}
	return a, b
}

// tags returns the tags of the phrases starting among words [from, to).
func (v *view) tags(from, to int) tagSet {
	v.words()
	var ts tagSet
	for _, h := range v.hits {
		if int(h.word) < from {
			continue
		}
		if int(h.word) >= to {
			break
		}
		ts.add(wording, h)
	}
	return ts
}

// headTags returns the tags of the phrases that start in the first n
// bytes of the text.
func (v *view) headTags(n int) tagSet {
	v.words()
	w := sort.Search(v.tok.n(), func(i int) bool { return int(v.tok.spans[2*i]) >= n })
	return v.tags(0, w)
}

// all returns the tags of the whole text.
func (v *view) all() tagSet { return v.words().tags(0, v.tok.n()) }

// scanTags reads a short text (a subject, one diagnostic) for phrases.
func scanTags(s string) tagSet {
	return wording.scan(s)
}

// Where the returned message starts in a non-standard bounce.

// splitReport cuts the text of a bounce where the returned message or its
// header starts: at a marker line ("--- Below this line is a copy of the
// message.", "------ This is a copy of the message, including all the
// headers. ------", "   ----- Original message -----", "Original message
// follows."), or at a quoted header after a blank line. It returns the
// report and the rest.
func splitReport(text string) (report, rest string) {
	if quotedHeaderAt(text) {
		return "", text // the whole part is the returned message
	}
	prevBlank := false
	for off, first := 0, true; off < len(text); first = false {
		end := strings.IndexByte(text[off:], '\n')
		next := len(text)
		if end < 0 {
			end = len(text)
		} else {
			end += off
			next = end + 1
		}
		line := text[off:end]
		if !first {
			switch markerLine(line) {
			case markerYes:
				return text[:off], text[next:]
			case markerRule:
				if quotedHeaderFollows(text[next:]) {
					return text[:off], text[next:]
				}
			}
			if prevBlank && quotedHeaderAt(text[off:]) {
				return text[:off], text[off:]
			}
		}
		prevBlank = isBlankString(line)
		off = next
	}
	return text, ""
}

func isBlankString(s string) bool { return strings.TrimSpace(s) == "" }

const (
	markerNo = iota
	markerYes
	markerRule // a bare rule: a marker only if a header follows
)

func isRuleByte(c byte) bool {
	return c == '-' || c == '=' || c == '*' || c == '_' || c == '|' || c == '#' || c == '+' || c == '~'
}

// markerLine says whether line introduces the returned message: a rule
// ("-----", "=====") with words naming the message, a bare rule, or a
// short sentence that says only that.
func markerLine(line string) int {
	t := strings.TrimSpace(line)
	if len(t) < 3 {
		return markerNo
	}
	if isRuleByte(t[0]) && isRuleByte(t[1]) {
		words := strings.TrimFunc(t, func(r rune) bool { return r < 0x80 && isRuleByte(byte(r)) || r == ' ' || r == '\t' })
		if words == "" {
			if t[0] == '-' && len(t) >= 3 {
				return markerRule
			}
			return markerNo
		}
		if wording.has(words, listTag(listMarker)) {
			return markerYes
		}
		return markerNo
	}
	if len(t) > 100 || !mayBeMarker(t) {
		return markerNo
	}
	if wording.hasShort(t, listTag(listMarkerLine), 10) {
		return markerYes
	}
	return markerNo
}

// mayBeMarker is a cheap test before reading a line for marker phrases:
// does it have "message", "original", "copy of" or "header" in it.
func mayBeMarker(t string) bool {
	for i := 0; i+6 <= len(t); i++ {
		switch t[i] | 0x20 {
		case 'm':
			if hasPrefixFold(t[i:], "message") {
				return true
			}
		case 'o':
			if hasPrefixFold(t[i:], "original") {
				return true
			}
		case 'c':
			if hasPrefixFold(t[i:], "copy of") {
				return true
			}
		case 'h':
			if hasPrefixFold(t[i:], "header") {
				return true
			}
		}
	}
	return false
}

// headerStarts are fields that commonly start the header of a quoted
// message; headerCore are those a message carries but a report's summary
// of it does not.
var (
	headerStarts = []string{"return-path:", "received:", "message-id:", "from:", "to:", "subject:", "date:", "x-",
		"delivered-to:", "reply-to:", "mime-version:", "content-type:", "dkim-signature:", "authentication-results:", "sender:", "cc:",
		"arc-seal:", "arc-message-signature:", "arc-authentication-results:", "received-spf:", "domainkey-signature:"}
	headerCore = []string{"received:", "return-path:", "message-id:", "mime-version:", "content-type:", "dkim-signature:", "delivered-to:", "x-", "arc-"}
)

// hasPrefixFold reports whether s starts with prefix, ignoring the case
// of ASCII letters; prefix is lower-case ASCII.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerByte[s[i]] != prefix[i] {
			return false
		}
	}
	return true
}

func hasAnyPrefixFold(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if hasPrefixFold(s, p) {
			return true
		}
	}
	return false
}

// quotedHeaderAt reports whether text starts with a quoted message header:
// three or more fields in a row at the left margin, the first a usual
// first field, one a field only a real header has.
func quotedHeaderAt(text string) bool {
	n, core := 0, 0
	for off := 0; off < len(text); {
		end := strings.IndexByte(text[off:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += off
		}
		l := strings.TrimRight(text[off:end], "\r")
		off = end + 1
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			if n == 0 {
				return false
			}
			continue
		}
		if !isFieldString(l) || n == 0 && !hasAnyPrefixFold(l, headerStarts) {
			return false
		}
		if hasAnyPrefixFold(l, headerCore) {
			core++
		}
		n++
		if n >= 3 && core >= 1 {
			return true
		}
	}
	return false
}

// quotedHeaderFollows reports whether a quoted header starts within the
// next few lines.
func quotedHeaderFollows(text string) bool {
	for i := 0; i < 4 && text != ""; i++ {
		if quotedHeaderAt(text) {
			return true
		}
		j := strings.IndexByte(text, '\n')
		if j < 0 {
			return false
		}
		text = text[j+1:]
	}
	return false
}

// inlineOriginal finds the header of the returned message quoted in the
// text of a non-standard bounce, after its marker line.
func (m *mailView) inlineOriginal() *Header {
	if !m.inlineRead {
		m.inline, m.inlineRead = m.findInlineOriginal(), true
	}
	return m.inline
}

func (m *mailView) findInlineOriginal() *Header {
	for _, sp := range m.splits() {
		rest := sp[1]
		for i := 0; i < 40 && rest != ""; i++ {
			if quotedHeaderAt(rest) {
				if end := strings.Index(rest, "\n\n"); end > 0 {
					rest = rest[:end+1] // the header only
				}
				if len(rest) > maxOriginalBody {
					rest = rest[:maxOriginalBody]
				}
				h, found := readHeader(&memSource{b: []byte(rest)}, m.c.cap, false)
				if found {
					return &h
				}
				return nil
			}
			j := strings.IndexByte(rest, '\n')
			if j < 0 {
				break
			}
			rest = rest[j+1:]
		}
	}
	return nil
}
