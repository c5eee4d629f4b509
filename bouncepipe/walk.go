package bouncepipe

import (
	"bytes"
	"html"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // decode non-UTF-8 text parts
	"github.com/emersion/go-message/textproto"
)

// collected is what walking one message keeps: its header, the first
// kilobytes of its text parts, its machine-readable report parts and the
// header of the returned original.
type collected struct {
	header     Header
	reportType string // report-type of a multipart/report, RFC 6522 §3

	texts    []string // decoded text parts, in order, line endings LF
	dsn      []string // message/delivery-status bodies, RFC 3464 §2
	feedback []string // message/feedback-report bodies, RFC 5965 §3

	original     *Header // header of the returned original
	originalBody []byte  // first bytes of its body, for tokens
	// attached is set when the original came as its own MIME part,
	// so the texts hold only the report itself.
	attached bool

	kept  int // bytes kept so far, against maxKeptBytes
	parts int
	cap   int
	// bodies says whether to keep the start of the original's body: only
	// token search reads it.
	bodies bool
	// scratch is the buffer part bodies are read into.
	scratch []byte
}

// bodyPool holds the buffers part bodies are read into.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// walkMessage reads one message from src, keeping what the parsers need
// and discarding the rest. It reads src to its end.
func walkMessage(src lineSource, partCap int, bodies bool) *collected {
	c := &collected{cap: partCap, bodies: bodies}
	sp := bodyPool.Get().(*[]byte)
	c.scratch = (*sp)[:0]
	defer func() {
		*sp = c.scratch[:0]
		c.scratch = nil
		bodyPool.Put(sp)
	}()
	c.header, _ = readHeader(src, maxHeaderBytes, true)
	c.walk(&c.header, src, 0)
	drain(src)
	return c
}

// room returns how many more bytes may be kept, at most want.
func (c *collected) room(want int) int {
	if left := maxKeptBytes - c.kept; want > left {
		want = left
	}
	if want < 0 {
		want = 0
	}
	return want
}

func (c *collected) walk(h *Header, body lineSource, depth int) {
	c.parts++
	if c.parts > maxParts {
		return
	}
	mt, params := contentType(h)
	if depth > 0 && c.original == nil && isMessageHeader(h) && mt != "multipart/report" {
		// A part whose header is a message's own header: the returned
		// original, attached without a message/rfc822 wrapper.
		c.original = h
		c.attached = true
		if c.bodies {
			c.originalBody = readSourceCapped(body, c.room(maxOriginalBody))
		}
		c.kept += len(c.originalBody) + 1024
		drain(body)
		return
	}
	switch {
	case strings.HasPrefix(mt, "multipart/") && params.boundary != "" && depth < maxDepth:
		if mt == "multipart/report" && c.reportType == "" {
			c.reportType = strings.ToLower(params.reportType)
		}
		mp := newParts(body, params.boundary, c.room(c.cap))
		n := 0
		plain := false // a text/plain alternative said something
		for {
			part, err := mp.next()
			if err != nil {
				break
			}
			n++
			ph, _ := readHeader(part, maxHeaderBytes, false)
			if mt == "multipart/alternative" {
				// RFC 2046 §5.1.4: the parts say the same thing; the
				// plain text is enough to read a report from.
				pt, _ := contentType(&ph)
				if plain && pt == "text/html" {
					c.parts++
					drain(part)
					continue
				}
				if pt == "text/plain" {
					texts := len(c.texts)
					c.walk(&ph, part, depth+1)
					// A stub ("view this message in HTML") is not enough.
					plain = len(c.texts) > texts && len(c.texts[len(c.texts)-1]) >= minPlainAlternative
					continue
				}
			}
			c.walk(&ph, part, depth+1)
			if c.parts > maxParts {
				break
			}
		}
		if pre := mp.preamble(); n == 0 && len(pre) > 0 {
			// No delimiter at all: the body is text after all, or
			// parts under another boundary.
			th := Header{fields: []Field{{"Content-Type", "text/plain"}}}
			c.walk(&th, &memSource{b: pre}, depth+1)
		}
	case mt == "message/delivery-status" || mt == "message/global-delivery-status":
		c.dsn = append(c.dsn, string(c.readBody(h, mt, params, body, c.cap)))
	case mt == "message/feedback-report":
		c.feedback = append(c.feedback, string(c.readBody(h, mt, params, body, c.cap)))
	case mt == "message/rfc822" || mt == "message/global":
		c.readOriginal(h, body, depth)
	case mt == "text/rfc822-headers" || mt == "message/rfc822-headers" || mt == "text/rfc822-header":
		if c.original == nil {
			d := decodedSource(h, body)
			oh, found := readHeader(d.src, c.room(c.cap), false)
			if found {
				c.original = &oh
				c.attached = true
			}
			d.done(body)
		} else {
			drain(body)
		}
	case strings.HasPrefix(mt, "text/") || mt == "" || mt == "application/octet-stream" && depth == 0:
		if strings.HasPrefix(mt, "text/") && mt != "text/plain" && mt != "text/html" && mt != "text/enriched" && mt != "text/richtext" {
			// text/calendar, text/x-vcard and the like say nothing.
			drain(body)
			return
		}
		b := c.readBody(h, mt, params, body, c.cap)
		if boundary, at := sniffBoundary(b); boundary != "" && depth < maxDepth && mt != "text/html" {
			// A multipart body whose Content-Type was lost or names
			// another boundary: mailing lists and hand edits do that.
			// What comes before the first delimiter is kept as text;
			// when it already quotes the returned message, the parts
			// are that message's own and not read as the report.
			b = append([]byte(nil), b...) // the scratch buffer is reused below
			if _, rest := splitReport(c.addText(b[:at:at], false)); rest != "" {
				return
			}
			mh := Header{fields: []Field{{"Content-Type", "multipart/mixed; boundary=\"" + boundary + "\""}}}
			c.walk(&mh, &memSource{b: b[at:]}, depth+1)
			return
		}
		c.addText(b, mt == "text/html")
	default:
		drain(body)
	}
}

// minPlainAlternative is the shortest plain text alternative read instead
// of its HTML twin.
const minPlainAlternative = 160

// readBody decodes a part body and returns at most max bytes of it, in a
// scratch buffer that the next readBody reuses.
func (c *collected) readBody(h *Header, mt string, params mediaParams, body lineSource, max int) []byte {
	limit := c.room(max)
	out := c.scratch[:0]
	// RFC 2045 §6: undo the transfer encoding; an unknown one leaves the
	// bytes as they are.
	switch enc := strings.TrimSpace(h.Get("Content-Transfer-Encoding")); {
	case strings.EqualFold(enc, "quoted-printable"):
		out = appendSourceCapped(out, &qpSource{src: body}, limit)
	case strings.EqualFold(enc, "base64"):
		out = appendBase64Capped(out, body, limit)
	default:
		out = appendSourceCapped(out, body, limit)
	}
	drain(body)
	c.scratch = out
	if strings.HasPrefix(mt, "text/") && needsCharset(params.charset, out) {
		out = decodeCharset(params.charset, out, limit)
	}
	c.kept += len(out)
	return out
}

// needsCharset reports whether text in charset cs must be decoded to read
// as UTF-8: it is not declared ASCII or UTF-8 and has bytes outside
// ASCII, or its charset encodes text in ASCII bytes of its own (ISO-2022,
// UTF-7, UTF-16 and UTF-32, EBCDIC).
func needsCharset(cs string, b []byte) bool {
	switch {
	case cs == "", strings.EqualFold(cs, "us-ascii"), strings.EqualFold(cs, "utf-8"), strings.EqualFold(cs, "utf8"), strings.EqualFold(cs, "ascii"):
		return false
	case hasPrefixFold(cs, "iso-2022"), hasPrefixFold(cs, "utf-7"), hasPrefixFold(cs, "utf7"), hasPrefixFold(cs, "utf-16"),
		hasPrefixFold(cs, "utf-32"), hasPrefixFold(cs, "ucs"), hasPrefixFold(cs, "hz"), hasPrefixFold(cs, "ibm"),
		hasPrefixFold(cs, "cp0"), hasPrefixFold(cs, "cp1"), hasPrefixFold(cs, "ebcdic"):
		return true
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false // ASCII in an ASCII-compatible charset reads the same
}

// decodeCharset returns b decoded from charset cs to UTF-8, at most limit
// bytes of it (RFC 2046 §4.1.2), or b itself when the charset is unknown.
func decodeCharset(cs string, b []byte, limit int) []byte {
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return b
	}
	out := make([]byte, 0, min(limit, 2*len(b)+64))
	for idle := 0; len(out) < limit && idle < 3; {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)] // grow
		}
		n, err := r.Read(out[len(out):min(cap(out), limit)])
		out = out[:len(out)+n]
		if err != nil {
			break
		}
		if n == 0 {
			idle++ // a reader that gives nothing and no error
		}
	}
	if len(out) == 0 {
		return b
	}
	return out
}

// base64Value maps the RFC 4648 §4 alphabet to its values, anything else
// to 0xFF.
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

// appendBase64Capped decodes a base64 body (RFC 2045 §6.8) to out, at
// most limit bytes, and reads the rest. Characters outside the alphabet
// (line breaks, spaces) are skipped, as the RFC says; decoding stops at
// the padding.
func appendBase64Capped(out []byte, src lineSource, limit int) []byte {
	var quad [4]byte
	n, start := 0, len(out)
	done := false
	for !done && len(out)-start < limit {
		line, _, err := src.readLine()
		if err != nil {
			break
		}
		for _, ch := range line {
			v := base64Value[ch]
			if v == 0xFF {
				if ch == '=' {
					done = true
					break
				}
				continue
			}
			quad[n] = v
			n++
			if n == 4 {
				out = append(out, quad[0]<<2|quad[1]>>4, quad[1]<<4|quad[2]>>2, quad[2]<<6|quad[3])
				n = 0
			}
		}
	}
	switch n {
	case 2:
		out = append(out, quad[0]<<2|quad[1]>>4)
	case 3:
		out = append(out, quad[0]<<2|quad[1]>>4, quad[1]<<4|quad[2]>>2)
	}
	if len(out)-start > limit {
		out = out[:start+limit]
	}
	return out
}

// decoded is a part body with its transfer encoding and, for text, its
// charset undone.
type decoded struct {
	src   lineSource
	small *bufSource // a pooled buffer to give back, or nil
}

// done reads what is left of the body and gives back the buffer.
func (d decoded) done(body lineSource) {
	if d.small != nil {
		drain(d.small)
		d.small.release()
	}
	drain(body)
}

// decodedSource returns the lines of a part body decoded. A part in 7bit,
// 8bit or binary and in UTF-8 or ASCII is read as it is; an unknown
// encoding or charset leaves the bytes as they are. The caller calls done.
func decodedSource(h *Header, body lineSource) decoded {
	mt, params := contentType(h)
	return decodedSourceOf(h, mt, params, body)
}

// decodedSourceOf is decodedSource with the Content-Type already read.
func decodedSourceOf(h *Header, mt string, params mediaParams, body lineSource) decoded {
	enc := strings.TrimSpace(h.Get("Content-Transfer-Encoding"))
	identity := enc == "" || strings.EqualFold(enc, "7bit") || strings.EqualFold(enc, "8bit") || strings.EqualFold(enc, "binary")
	plain := true
	if strings.HasPrefix(mt, "text/") {
		switch cs := params.charset; {
		case cs == "", strings.EqualFold(cs, "us-ascii"), strings.EqualFold(cs, "utf-8"), strings.EqualFold(cs, "utf8"), strings.EqualFold(cs, "ascii"):
		default:
			plain = false
		}
	}
	if identity && plain {
		return decoded{src: body}
	}
	if strings.EqualFold(enc, "quoted-printable") && plain {
		return decoded{src: &qpSource{src: body}}
	}
	raw := &sourceReader{src: body}
	var r io.Reader = raw
	var th textproto.Header
	th.Set("Content-Type", h.Get("Content-Type"))
	th.Set("Content-Transfer-Encoding", enc)
	if e, err := message.New(message.Header{Header: th}, raw); e != nil && (err == nil || message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)) {
		r = e.Body
	}
	src := readerSource(r)
	return decoded{src: src, small: src}
}

// addText keeps a text part, line endings made LF, invalid UTF-8
// replaced, HTML turned to text, and returns it. It may change b.
func (c *collected) addText(b []byte, isHTML bool) string {
	b = normalizeEOL(b)
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if isHTML || looksHTML(s) {
		s = htmlText(s)
	}
	if isBlankString(s) {
		return ""
	}
	c.texts = append(c.texts, s)
	return s
}

// normalizeEOL turns CRLF and lone CR into LF, in place.
func normalizeEOL(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			out = append(out, '\n')
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// readOriginal reads the header of a message/rfc822 part, the returned
// original (RFC 3464 §2, RFC 5965 §2 (d)), and the first bytes of its body.
func (c *collected) readOriginal(h *Header, body lineSource, depth int) {
	d := decodedSource(h, body)
	defer d.done(body)
	src := d.src
	if c.original != nil {
		// A second attached message: a forwarded bounce or a digest.
		// The first one is the returned original.
		return
	}
	oh, found := readHeader(src, c.room(c.cap), false)
	if !found {
		return
	}
	if mt, params := contentType(&oh); mt == "multipart/report" && len(c.dsn) == 0 && depth < maxDepth &&
		strings.EqualFold(params.reportType, "delivery-status") {
		// The attachment is itself the delivery report: a gateway that
		// wraps the report it got in its own.
		c.walk(&oh, src, depth+1)
		return
	}
	c.original = &oh
	c.attached = true
	c.kept += 1024 // rough size of a header's fields
	if c.bodies {
		c.originalBody = readSourceCapped(src, c.room(maxOriginalBody))
		c.kept += len(c.originalBody)
	}
}

// looksHTML reports whether a part labelled text/plain is HTML after all:
// it starts with a tag and has the tags of a page in its first kilobytes.
func looksHTML(s string) bool {
	head := strings.TrimSpace(s)
	if !strings.HasPrefix(head, "<") {
		return false
	}
	if len(head) > 2048 {
		head = head[:2048]
	}
	head = strings.ToLower(head)
	return strings.Contains(head, "<html") || strings.Contains(head, "<body") ||
		strings.Count(head, "<br")+strings.Count(head, "<p>")+strings.Count(head, "<div") >= 2
}

// htmlText turns HTML into plain text good enough to read a bounce from:
// tags dropped, block tags made line breaks, character references
// decoded, script and style dropped.
func htmlText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '<':
			end := strings.IndexByte(s[i:], '>')
			if end < 0 {
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			tag := s[i+1 : i+end]
			name := tagName(tag)
			switch {
			case name == "":
				// Not a tag: "<user@example.com>" in a page that is not
				// quite HTML.
				b.WriteString(s[i : i+end+1])
			case name == "script" || name == "style" || name == "head" || name == "title":
				closing := "</" + name
				if k := indexFold(s[i+end:], closing); k >= 0 {
					i += end + k
					if e := strings.IndexByte(s[i:], '>'); e >= 0 {
						i += e + 1
					} else {
						i = len(s)
					}
					continue
				}
			case blockTags[name]:
				b.WriteByte('\n')
			}
			i += end + 1
		case c == '\n' || c == '\r' || c == '\t':
			b.WriteByte(' ')
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	out := html.UnescapeString(b.String())
	out = strings.ReplaceAll(out, "\u00a0", " ")
	return out
}

// blockTags are the tags that end a line of text.
var blockTags = map[string]bool{"br": true, "p": true, "/p": true, "div": true, "/div": true, "tr": true, "/tr": true,
	"li": true, "/li": true, "hr": true, "/table": true, "h1": true, "/h1": true, "h2": true, "/h2": true, "h3": true, "/h3": true,
	"/h4": true, "/h5": true, "/h6": true, "blockquote": true, "/blockquote": true, "pre": true, "/pre": true}

// tagName returns the lower-cased name of a tag's inside ("br /",
// "/p", "a href=..."), or "" when it is not a tag.
func tagName(tag string) string {
	j := 0
	if j < len(tag) && (tag[j] == '/' || tag[j] == '!') {
		j++
	}
	if j >= len(tag) || !isLetter(tag[j]) {
		if strings.HasPrefix(tag, "!--") {
			return "!--"
		}
		return ""
	}
	k := j
	for k < len(tag) && (isLetter(tag[k]) || isDigit(tag[k])) {
		k++
	}
	if k < len(tag) && tag[k] == '@' || strings.IndexByte(tag, '@') >= 0 && strings.IndexAny(tag, " =") < 0 {
		return "" // an address in angle brackets
	}
	return strings.ToLower(tag[:k])
}

// indexFold is strings.Index ignoring ASCII case, sub lower-case.
func indexFold(s, sub string) int {
	if sub == "" {
		return 0
	}
	lo, up := sub[0], sub[0]
	if lo >= 'a' && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	// The next place of each case of the first byte, found once each.
	nextLo, nextUp := -2, -2
	if up == lo {
		nextUp = -1
	}
	last := len(s) - len(sub)
	for i := 0; i <= last; {
		if nextLo != -1 && nextLo < i {
			if nextLo = strings.IndexByte(s[i:], lo); nextLo >= 0 {
				nextLo += i
			}
		}
		if nextUp != -1 && nextUp < i {
			if nextUp = strings.IndexByte(s[i:], up); nextUp >= 0 {
				nextUp += i
			}
		}
		j := nextLo
		if j < 0 || nextUp >= 0 && nextUp < j {
			j = nextUp
		}
		if j < 0 || j > last {
			return -1
		}
		if strings.EqualFold(s[j:j+len(sub)], sub) {
			return j
		}
		i = j + 1
	}
	return -1
}

// sniffBoundary finds a MIME boundary in a body that was not read as
// multipart: a line "--token" followed by a Content-* field (RFC 2046
// §5.1.1), and the offset of that line. It returns "" when there is none.
func sniffBoundary(b []byte) (string, int) {
	if !bytes.HasPrefix(b, []byte("--")) && bytes.Index(b, []byte("\n--")) < 0 {
		return "", 0 // no line starts with "--"
	}
	rest := b
	off := 0
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", 0
		}
		at := off
		line := bytes.TrimRight(rest[:i], "\r")
		rest = rest[i+1:]
		off += i + 1
		if len(line) < 3 || len(line) > 200 || line[0] != '-' || line[1] != '-' {
			continue
		}
		next := rest
		if j := bytes.IndexByte(next, '\n'); j >= 0 {
			next = next[:j]
		}
		if len(next) > 8 && bytes.EqualFold(next[:8], []byte("content-")) && isFieldLine(next) {
			bnd := string(bytes.TrimSpace(line[2:]))
			if bnd != "" && !strings.ContainsAny(bnd, " \t") {
				return bnd, at
			}
		}
	}
	return "", 0
}

// isMessageHeader reports whether a part header is the header of a whole
// message rather than of a MIME part: it has trace or identity fields
// (RFC 5322 §3.6) beside the addresses.
func isMessageHeader(h *Header) bool {
	trace := h.Has("Received") || h.Has("Return-Path") || h.Has("Message-Id")
	who := h.Has("From") || h.Has("To") || h.Has("Subject")
	return trace && who
}

// qpSource decodes quoted-printable (RFC 2045 §6.7) line by line. A soft
// line break leaves the line without its line ending, so the next line
// continues it; malformed escapes are kept as they are.
type qpSource struct {
	src lineSource
	buf []byte
}

func (q *qpSource) readLine() ([]byte, bool, error) {
	b, cont, err := q.src.readLine()
	if err != nil {
		return nil, false, err
	}
	q.buf = q.buf[:0]
	eol := len(b)
	for eol > 0 && (b[eol-1] == '\n' || b[eol-1] == '\r') {
		eol--
	}
	body := bytes.TrimRight(b[:eol], " \t")
	soft := len(body) > 0 && body[len(body)-1] == '='
	if soft {
		body = body[:len(body)-1]
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '=' && i+2 < len(body)+0 && isHex(body[i+1]) && isHex(body[i+2]) {
			q.buf = append(q.buf, unhex(body[i+1])<<4|unhex(body[i+2]))
			i += 2
			continue
		}
		q.buf = append(q.buf, c)
	}
	if !soft && eol < len(b) {
		q.buf = append(q.buf, '\n')
	}
	return q.buf, cont, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
