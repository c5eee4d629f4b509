package bouncepipe

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// lineBufSize is the longest line handed out in one piece; longer lines
// come in several pieces, so no input line is ever held whole.
const lineBufSize = 8 << 10

// lineSource yields the lines of a message or of one MIME part, each with
// its line ending. A line longer than lineBufSize comes in pieces; cont is
// true for every piece after the first. The returned slice is valid until
// the next call.
type lineSource interface {
	readLine() (line []byte, cont bool, err error)
}

// bufSource reads lines from a bufio.Reader.
type bufSource struct {
	br   *bufio.Reader
	cont bool // the last piece did not end its line
	back []byte
	has  bool // back holds a pushed-back whole line
	n    int64
}

// Buffers are pooled: a message is read through one large buffer and
// each decoded part through a small one.
var (
	bigReaders   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, lineBufSize) }}
	smallReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, smallBufSize) }}
)

const smallBufSize = 4 << 10

func newBufSource(r io.Reader) *bufSource {
	br := bigReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return &bufSource{br: br}
}

// newSmallSource is newBufSource with a small buffer, for decoded parts
// and text already in memory.
func newSmallSource(r io.Reader) *bufSource {
	br := smallReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return &bufSource{br: br}
}

// release returns the buffer to its pool; s must not be used after.
func (s *bufSource) release() {
	if s.br == nil {
		return
	}
	s.br.Reset(nil)
	if s.br.Size() == lineBufSize {
		bigReaders.Put(s.br)
	} else if s.br.Size() == smallBufSize {
		smallReaders.Put(s.br)
	}
	s.br = nil
}

func (s *bufSource) readLine() ([]byte, bool, error) {
	if s.has {
		s.has = false
		return s.back, false, nil
	}
	b, err := s.br.ReadSlice('\n')
	s.n += int64(len(b))
	cont := s.cont
	switch {
	case err == bufio.ErrBufferFull:
		s.cont = true
		return b, cont, nil
	case err != nil && len(b) > 0:
		// The last line has no line ending; hand it out now and the
		// error on the next call.
		s.cont = false
		return b, cont, nil
	}
	s.cont = false
	return b, cont, err
}

// unread pushes back one whole line (a copy is kept).
func (s *bufSource) unread(line []byte) {
	s.back = append(s.back[:0], line...)
	s.has = true
}

// partSource yields the lines of one part of a multipart body, ending at
// the next delimiter line (RFC 2046 §5.1.1).
type partSource struct {
	parent  lineSource
	dash    []byte // "--" + boundary
	done    bool
	closing bool  // ended by the close delimiter
	err     error // the parent failed or ended before a delimiter
	back    []byte
	has     bool
}

func (p *partSource) unread(line []byte) {
	p.back = append(p.back[:0], line...)
	p.has = true
}

func (p *partSource) readLine() ([]byte, bool, error) {
	if p.has {
		p.has = false
		return p.back, false, nil
	}
	if p.done {
		return nil, false, io.EOF
	}
	b, cont, err := p.parent.readLine()
	if err != nil {
		p.done, p.err = true, err
		return nil, false, io.EOF
	}
	if !cont {
		if d, closing := delimiter(b, p.dash); d {
			p.done, p.closing = true, closing
			return nil, false, io.EOF
		}
	}
	return b, cont, nil
}

// delimiter reports whether line is a boundary delimiter line for dash
// ("--" boundary), and whether it is the close delimiter. RFC 2046 §5.1.1
// allows linear white space after the boundary.
func delimiter(line, dash []byte) (ok, closing bool) {
	if !bytes.HasPrefix(line, dash) {
		return false, false
	}
	rest := line[len(dash):]
	if bytes.HasPrefix(rest, []byte("--")) {
		closing = true
		rest = rest[2:]
	}
	for _, c := range rest {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false, false
		}
	}
	return true, closing
}

// parts yields the parts of a multipart body (RFC 2046 §5.1.1).
type parts interface {
	// next returns the next part, io.EOF after the last one. It
	// discards whatever the caller left unread of the previous part.
	next() (lineSource, error)
	// preamble returns the body kept when no delimiter was found at all.
	preamble() []byte
}

// newParts splits a multipart body into parts, keeping at most keep bytes
// of a body that has no delimiter. A body in memory is split with a
// search for the delimiters rather than line by line.
func newParts(src lineSource, boundary string, keep int) parts {
	if m, ok := src.(*memSource); ok && !m.has {
		p := &memParts{b: m.b[m.off:], dash: []byte("--" + boundary), keep: keep}
		m.off = len(m.b) // the parts take the rest
		return p
	}
	return newMultipart(src, boundary, keep)
}

// memParts splits a multipart body held in memory.
type memParts struct {
	b       []byte
	off     int // where the next part starts
	dash    []byte
	started bool
	ended   bool
	pre     []byte
	keep    int
	cur     memSource
}

func (m *memParts) preamble() []byte { return m.pre }

func (m *memParts) next() (lineSource, error) {
	if m.ended {
		return nil, io.EOF
	}
	if !m.started {
		m.started = true
		start, end, closing, ok := findDelimiter(m.b, 0, m.dash)
		if !ok || closing {
			// No part at all: what came before the close delimiter, or
			// the whole body, is kept.
			if !ok {
				start = len(m.b)
			}
			m.ended = true
			m.pre = m.b[:min(start, m.keep)]
			return nil, io.EOF
		}
		m.off = end
	}
	start, end, closing, ok := findDelimiter(m.b, m.off, m.dash)
	if !ok {
		// An unclosed last part runs to the end of the body.
		m.cur = memSource{b: m.b[m.off:]}
		m.ended = true
		return &m.cur, nil
	}
	m.cur = memSource{b: m.b[m.off:start]}
	m.off = end
	m.ended = closing
	return &m.cur, nil
}

// findDelimiter finds the first delimiter line for dash ("--" boundary)
// at or after from: where it starts and ends (with its line ending), and
// whether it is the close delimiter.
func findDelimiter(b []byte, from int, dash []byte) (start, end int, closing, ok bool) {
	for from < len(b) {
		i := bytes.Index(b[from:], dash)
		if i < 0 {
			return 0, 0, false, false
		}
		at := from + i
		if at > 0 && b[at-1] != '\n' {
			from = at + 1
			continue
		}
		end := len(b)
		if j := bytes.IndexByte(b[at:], '\n'); j >= 0 {
			end = at + j + 1
		}
		if d, c := delimiter(b[at:end], dash); d {
			return at, end, c, true
		}
		from = at + 1
	}
	return 0, 0, false, false
}

// multipartSource splits a multipart body into parts.
type multipartSource struct {
	src   lineSource
	dash  []byte
	cur   *partSource
	ended bool
	pre   []byte // kept when no delimiter is ever found
	keep  int
}

func (m *multipartSource) preamble() []byte { return m.pre }

func newMultipart(src lineSource, boundary string, keep int) *multipartSource {
	return &multipartSource{src: src, dash: []byte("--" + boundary), keep: keep}
}

// next returns the next part, io.EOF after the last one. It discards
// whatever the caller left unread of the previous part.
func (m *multipartSource) next() (lineSource, error) {
	if m.ended {
		return nil, io.EOF
	}
	if m.cur == nil {
		for {
			b, cont, err := m.src.readLine()
			if err != nil {
				m.ended = true
				return nil, io.EOF
			}
			if !cont {
				if d, closing := delimiter(b, m.dash); d {
					if closing {
						m.ended = true
						return nil, io.EOF
					}
					break
				}
			}
			if len(m.pre) < m.keep {
				m.pre = append(m.pre, b...)
			}
		}
		m.pre = nil
		m.cur = &partSource{parent: m.src, dash: m.dash}
		return m.cur, nil
	}
	drain(m.cur)
	if m.cur.closing || m.cur.err != nil {
		m.ended = true
		return nil, io.EOF
	}
	// The previous part is read to its end: its source starts over on
	// the next one.
	*m.cur = partSource{parent: m.src, dash: m.dash, back: m.cur.back[:0]}
	return m.cur, nil
}

// drain reads src to its end.
func drain(src lineSource) {
	if m, ok := src.(*memSource); ok {
		m.off, m.has = len(m.b), false
		return
	}
	for {
		if _, _, err := src.readLine(); err != nil {
			return
		}
	}
}

// sourceReader turns a lineSource into an io.Reader.
type sourceReader struct {
	src lineSource
	buf []byte
	err error
}

func (r *sourceReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.buf, _, r.err = r.src.readLine()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// readerSource reads the lines of r through a small pooled buffer; the
// caller releases it.
func readerSource(r io.Reader) *bufSource { return newSmallSource(r) }

// readSourceCapped reads src to its end and returns at most max bytes.
func readSourceCapped(src lineSource, limit int) []byte {
	if m, ok := src.(*memSource); ok && !m.has {
		rest := m.b[m.off:]
		m.off = len(m.b)
		return append([]byte(nil), rest[:min(len(rest), max(limit, 0))]...)
	}
	out := make([]byte, 0, min(limit, 2048))
	for {
		b, _, err := src.readLine()
		if err != nil {
			return out
		}
		if room := limit - len(out); room > 0 {
			out = append(out, b[:min(len(b), room)]...)
		}
	}
}

// memSource yields the lines of text already in memory.
type memSource struct {
	b    []byte
	off  int
	back []byte
	has  bool
}

func (m *memSource) readLine() ([]byte, bool, error) {
	if m.has {
		m.has = false
		return m.back, false, nil
	}
	if m.off >= len(m.b) {
		return nil, false, io.EOF
	}
	rest := m.b[m.off:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		m.off = len(m.b)
		return rest, false, nil
	}
	m.off += i + 1
	return rest[:i+1], false, nil
}

func (m *memSource) unread(line []byte) {
	if n := len(line); n > 0 && n <= m.off && &m.b[m.off-n] == &line[0] {
		m.off -= n // the line just read: read it again
		return
	}
	m.back = append(m.back[:0], line...)
	m.has = true
}

// appendSourceCapped reads src to its end and appends at most limit bytes
// of it to out.
func appendSourceCapped(out []byte, src lineSource, limit int) []byte {
	if m, ok := src.(*memSource); ok && !m.has {
		rest := m.b[m.off:]
		m.off = len(m.b)
		return append(out, rest[:min(len(rest), max(limit, 0))]...)
	}
	n := 0
	for {
		b, _, err := src.readLine()
		if err != nil {
			return out
		}
		if room := limit - n; room > 0 {
			k := min(len(b), room)
			out = append(out, b[:k]...)
			n += k
		}
	}
}
