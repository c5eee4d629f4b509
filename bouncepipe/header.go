package bouncepipe

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Header is a message header as read: its fields in order, each unfolded
// onto one line, names as written. Field names compare case-insensitively
// (RFC 5322 §1.2.2). The zero Header and a nil *Header are empty.
type Header struct {
	fields []Field
}

// Field is one header field.
type Field struct {
	Name, Value string
}

// Get returns the value of the first field named name, or "".
func (h *Header) Get(name string) string {
	if h == nil {
		return ""
	}
	for _, f := range h.fields {
		if equalFoldASCII(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns the values of all fields named name, in order.
func (h *Header) Values(name string) []string {
	if h == nil {
		return nil
	}
	var out []string
	for _, f := range h.fields {
		if equalFoldASCII(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Has reports whether a field named name is present.
func (h *Header) Has(name string) bool {
	if h == nil {
		return false
	}
	for _, f := range h.fields {
		if equalFoldASCII(f.Name, name) {
			return true
		}
	}
	return false
}

// Fields returns the fields in order. The slice must not be changed.
func (h *Header) Fields() []Field {
	if h == nil {
		return nil
	}
	return h.fields
}

// Len returns the number of fields.
func (h *Header) Len() int {
	if h == nil {
		return 0
	}
	return len(h.fields)
}

// Mail returns the header as a go-message mail.Header, to decode
// addresses (AddressList), dates and encoded words (Subject, Text).
func (h *Header) Mail() *mail.Header {
	var t textproto.Header
	fs := h.Fields()
	for i := len(fs) - 1; i >= 0; i-- {
		t.Add(fs[i].Name, fs[i].Value) // go-message keeps the last added first
	}
	return &mail.Header{Header: message.Header{Header: t}}
}

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows.
var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	if message.CharsetReader == nil {
		return nil, fmt.Errorf("bouncepipe: no decoder for charset %q", charset)
	}
	cr, err := message.CharsetReader(strings.ToLower(charset), r)
	if err != nil {
		return nil, err
	}
	return wordReader{cr}, nil
}}

// wordReader is one encoded word's text in UTF-8. mime.WordDecoder
// copies it out with io.Copy, which allocates 32 KiB for every word
// unless the reader has a WriteTo of its own.
type wordReader struct{ r io.Reader }

func (w wordReader) Read(p []byte) (int, error) { return w.r.Read(p) }

// WriteTo copies through a buffer of the size of a word: an encoded word
// is at most 75 bytes (RFC 2047 §2), and its text takes at most four
// UTF-8 bytes per byte.
func (w wordReader) WriteTo(dst io.Writer) (int64, error) {
	var n int64
	buf := make([]byte, 320)
	for {
		m, err := w.r.Read(buf)
		if m > 0 {
			k, werr := dst.Write(buf[:m])
			n += int64(k)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Text returns the value of the first field named name with its encoded
// words (RFC 2047) decoded; the raw value when they do not decode.
func (h *Header) Text(name string) string {
	v := h.Get(name)
	if !strings.Contains(v, "=?") {
		return v
	}
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// readHeader reads header lines from src up to the blank line that ends
// them (RFC 5322 §2.1). It keeps at most max bytes, discarding the rest of
// an over-long header, and skips lines that are neither fields nor
// continuations, as lenient MTAs do. At the top of a message (top) it also
// skips an mbox "From " line (RFC 4155) and stray blank lines. When the
// very first line is not a header field at all, it pushes that line back
// and returns an empty header, so that a message or part without a header
// is read as all body. It reports whether any field was found.
func readHeader(src lineSource, max int, top bool) (Header, bool) {
	sb := scratchPool.Get().(*headerScratch)
	defer scratchPool.Put(sb)
	buf := sb.buf[:0]     // unfolded fields, one a line
	spans := sb.spans[:0] // per field: name start, colon, value end
	first := true
	over := false // the header outgrew max: skip to its end
	inField := false
	for {
		b, cont, err := src.readLine()
		if err != nil {
			break
		}
		if cont {
			// The rest of an over-long line.
			if inField && !over && len(buf)+len(b) < max {
				buf = append(buf, trimEOL(b)...)
				spans[len(spans)-1] = int32(len(buf))
			}
			continue
		}
		line := b
		if first && top && bytes.HasPrefix(line, []byte("From ")) {
			continue // mbox separator
		}
		if isBlank(line) {
			if first && top {
				continue
			}
			break
		}
		if line[0] == '>' && bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inField && !over {
				if len(buf)+len(line) < max {
					buf = append(buf, ' ')
					buf = append(buf, bytes.TrimSpace(line)...)
					spans[len(spans)-1] = int32(len(buf))
				} else {
					over = true
				}
			}
			continue
		}
		colon := fieldColon(line)
		if colon < 0 {
			if first {
				if p, ok := src.(pushback); ok {
					p.unread(line)
				}
				return Header{}, false
			}
			inField = false
			continue
		}
		first = false
		if top && isTraceField(line) {
			inField = false // nothing reads them: not kept
			continue
		}
		if over || len(buf)+len(line) >= max {
			over = true
			inField = false
			continue
		}
		if len(buf) > 0 {
			buf = append(buf, '\n')
		}
		start := len(buf)
		buf = append(buf, trimEOL(line)...)
		spans = append(spans, int32(start), int32(start+colon), int32(len(buf)))
		inField = true
	}
	sb.buf, sb.spans = buf, spans
	if len(spans) == 0 {
		return Header{}, len(buf) > 0
	}
	str := string(buf)
	h := Header{fields: make([]Field, len(spans)/3)}
	for i := range h.fields {
		ns, c, ve := spans[3*i], spans[3*i+1], spans[3*i+2]
		h.fields[i] = Field{Name: strings.TrimRight(str[ns:c], " \t"), Value: strings.TrimSpace(str[c+1 : ve])}
	}
	return h, true
}

// headerScratch is what readHeader unfolds fields into.
type headerScratch struct {
	buf   []byte
	spans []int32
}

// traceFields are the bulky fields relays add to a message's header
// (RFC 5321 §4.4 trace fields, RFC 6376 signatures, RFC 8601 results,
// RFC 8617 ARC sets, providers' own), lower-cased. The returned report's
// own header is read for who sent it and what it says it is, never for
// these, so they are not kept; the returned original keeps all of its.
var traceFields = []string{"received:", "dkim-signature:", "arc-", "authentication-results:", "received-spf:",
	"x-received:", "x-google-", "x-gm-", "domainkey-signature:", "x-ms-exchange-", "x-microsoft-antispam", "x-forefront-"}

// isTraceField reports whether line starts a field of traceFields.
func isTraceField(line []byte) bool {
	switch line[0] | 0x20 {
	case 'r', 'd', 'a', 'x':
	default:
		return false
	}
	for _, f := range traceFields {
		if len(line) >= len(f) && bytes.EqualFold(line[:len(f)], []byte(f)) {
			return true
		}
	}
	return false
}

// scratchPool holds the buffers readHeader unfolds fields into.
var scratchPool = sync.Pool{New: func() any {
	return &headerScratch{buf: make([]byte, 0, 4096), spans: make([]int32, 0, 96)}
}}

// pushback is a lineSource that can take back one whole line.
type pushback interface {
	unread(line []byte)
}

// equalFoldASCII reports whether a and b are equal ignoring the case of
// ASCII letters, as field names and media types compare (RFC 5322 §1.2.2,
// RFC 2045 §5.1).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lowerByte[a[i]] != lowerByte[b[i]] {
			return false
		}
	}
	return true
}

// isFieldString is isFieldLine for a string.
func isFieldString(line string) bool {
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := strings.TrimRight(line[:i], " \t")
	if name == "" {
		return false
	}
	for j := 0; j < len(name); j++ {
		if name[j] < 33 || name[j] > 126 {
			return false
		}
	}
	return true
}

// fieldColon returns the index of the colon that ends a field name at the
// start of line, or -1 (isFieldLine).
func fieldColon(line []byte) int {
	n := 0
	for i, c := range line {
		switch {
		case c == ':':
			if n > 0 {
				return i
			}
			return -1
		case c == ' ' || c == '\t':
			if n == 0 {
				return -1
			}
			for j, d := range line[i:] {
				if d == ':' {
					return i + j
				}
				if d != ' ' && d != '\t' {
					return -1
				}
			}
			return -1
		case c < 33 || c > 126:
			return -1
		}
		n++
	}
	return -1
}

// isFieldLine reports whether line starts "Name:" with a field name of
// printable US-ASCII other than colon (RFC 5322 §2.2).
func isFieldLine(line []byte) bool {
	n := 0 // the name's length
	for i, c := range line {
		switch {
		case c == ':':
			return n > 0
		case c == ' ' || c == '\t':
			if n == 0 {
				return false
			}
			// white space before the colon ends the name; only more
			// white space may follow
			for _, d := range line[i:] {
				if d == ':' {
					return true
				}
				if d != ' ' && d != '\t' {
					return false
				}
			}
			return false
		case c < 33 || c > 126:
			return false
		}
		n++
	}
	return false
}

// isBlank reports whether line holds only white space.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// trimEOL drops the line ending.
func trimEOL(b []byte) []byte {
	n := len(b)
	for n > 0 && (b[n-1] == '\n' || b[n-1] == '\r') {
		n--
	}
	return b[:n]
}

// contentType returns the lower-cased media type and parameters of a
// Content-Type field. Broken parameters, common in bounces, do not lose
// the media type or the boundary.
func contentType(h *Header) (string, mediaParams) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", mediaParams{}
	}
	if strings.Contains(v, "*=") {
		// RFC 2231 parameters: let the standard library decode them.
		if t, params, err := mime.ParseMediaType(v); err == nil {
			return strings.ToLower(t), mediaParams{boundary: params["boundary"], reportType: params["report-type"], charset: params["charset"]}
		}
	}
	t, rest, _ := strings.Cut(v, ";")
	t = strings.TrimSpace(t)
	if i := strings.IndexAny(t, " \t\r\n"); i > 0 {
		rest = t[i:] + ";" + rest // a parameter without its ";"
		t = t[:i]
	}
	t = mediaTypeName(t)
	var p mediaParams
	if rest != "" {
		p.boundary, _ = looseParam(rest, "boundary")
		p.reportType, _ = looseParam(rest, "report-type")
		p.charset, _ = looseParam(rest, "charset")
	}
	if !strings.Contains(t, "/") {
		t = "text/plain"
	}
	return t, p
}

// mediaParams are the Content-Type parameters bouncepipe reads.
type mediaParams struct {
	boundary   string // RFC 2046 §5.1.1
	reportType string // RFC 6522 §3
	charset    string // RFC 2046 §4.1.2
}

// mediaTypes are the media types bouncepipe tells apart.
var mediaTypes = []string{"text/plain", "text/html", "multipart/mixed", "multipart/alternative", "multipart/related",
	"multipart/report", "message/rfc822", "message/delivery-status", "message/feedback-report", "text/rfc822-headers",
	"message/global", "message/global-delivery-status", "message/rfc822-headers", "application/octet-stream"}

// mediaTypeName returns t lower-cased, without a copy for the usual types.
func mediaTypeName(t string) string {
	for _, m := range mediaTypes {
		if equalFoldASCII(t, m) {
			return m
		}
	}
	return asciiLower(t)
}

// looseParam finds name=value in Content-Type parameters, broken or not;
// name is lower-case.
func looseParam(s, name string) (string, bool) {
	for off := 0; ; {
		i := indexFold(s[off:], name)
		if i < 0 {
			return "", false
		}
		i += off
		off = i + len(name)
		if i > 0 && (isLetter(s[i-1]) || s[i-1] == '-') {
			continue
		}
		rest := strings.TrimLeft(s[off:], " \t")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if strings.HasPrefix(rest, "\"") {
			if j := strings.IndexByte(rest[1:], '"'); j >= 0 {
				return rest[1 : 1+j], true
			}
			return rest[1:], true
		}
		end := strings.IndexAny(rest, " \t;\"")
		if end < 0 {
			end = len(rest)
		}
		return rest[:end], end > 0
	}
}
