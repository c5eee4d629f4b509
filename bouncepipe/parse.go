package bouncepipe

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// errReader remembers the first error other than io.EOF that r returns,
// so Parse can tell a read failure (retry later) from the end of input.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// Parse reads one returned message from r, to its end, and reports what it
// is. The message may have CRLF or LF line endings, a leading mbox "From "
// line or the Return-Path that pipe(8) adds. Parse does not fail on
// malformed mail: what it cannot read gives a Report of kind Unknown or
// Human. It returns an error only when reading r fails; the partial Report
// is returned with it.
func Parse(r io.Reader, opt Options) (*Report, error) {
	return parse(r, opt, maxInMemory)
}

// parse is Parse reading messages of up to inMemory bytes whole.
func parse(r io.Reader, opt Options, inMemory int) (*Report, error) {
	er := &errReader{r: r}
	bp := msgPool.Get().(*[]byte)
	defer msgPool.Put(bp)
	buf, whole := readUpTo(er, (*bp)[:0], inMemory)
	*bp = buf[:0]
	var c *collected
	n := int64(len(buf))
	if whole {
		// The usual bounce: all of it in memory, parts found by search.
		c = walkMessage(&memSource{b: buf}, opt.partCap(), opt.BounceDomain != "")
	} else {
		// A large one: read on line by line, keeping what is needed.
		src := newBufSource(io.MultiReader(bytes.NewReader(buf), er))
		c = walkMessage(src, opt.partCap(), opt.BounceDomain != "")
		src.release()
		n = src.n
	}
	rep := analyse(c, &opt)
	if er.err != nil {
		return rep, fmt.Errorf("bouncepipe: reading message after %d bytes: %w", n, er.err)
	}
	return rep, nil
}

// maxInMemory is the largest message read whole into memory; a larger
// one is read line by line.
const maxInMemory = 1 << 20

// msgPool holds the buffers messages are read into.
var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// readUpTo appends what r gives to buf, up to max bytes; whole reports
// whether r ended (or failed) within them.
func readUpTo(r io.Reader, buf []byte, max int) (b []byte, whole bool) {
	for {
		if len(buf) >= max {
			return buf, false
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, true
		}
	}
}

// analyse decides what the collected message is.
func analyse(c *collected, opt *Options) *Report {
	rep := &Report{}
	rep.Subject = c.header.Text("Subject")
	if from := c.header.Get("From"); from != "" {
		if i := strings.LastIndexByte(from, '<'); i >= 0 {
			from = from[i:] // the address, not a display name that looks like one
		}
		if as := findAddresses(from); len(as) > 0 {
			rep.From = as[0]
		}
	}
	rep.Original = c.original

	m := &mailView{c: c, opt: opt, rep: rep}
	switch {
	case m.isAppleUnsubscribe():
		m.unsubscribe()
	case m.isFeedback():
		m.feedback()
	case m.dsnRecords():
	case m.ses():
	case m.nonStandard():
	case m.autoReply():
	default:
		if c.header.Len() == 0 && len(c.texts) == 0 {
			rep.Kind = Unknown
		} else {
			rep.Kind = Human
			rep.AsksUnsubscribe = IsUnsubscribeRequest(rep.Subject, m.firstText())
		}
	}
	if rep.Original == nil && (rep.Kind == Bounce || rep.Kind == Delay || rep.Kind == Delivered || rep.Kind == Complaint) {
		rep.Original = m.inlineOriginal()
	}
	for i := range rep.Records {
		var x recordCtx
		if i < len(m.ctx) {
			x = m.ctx[i]
		}
		classify(&rep.Records[i], x)
	}
	rep.Tokens = findTokens(rep, c, opt)
	m.reportView.release()
	m.reportView = nil
	if opt.isUnsubscribeAddress(opt.Recipient) && (rep.Kind == Human || rep.Kind == AutoReply || rep.Kind == Unknown) {
		m.unsubscribe()
	}
	return rep
}

// mailView is one message being analysed.
type mailView struct {
	c   *collected
	opt *Options
	rep *Report

	// ctx[i] is what classification reads for rep.Records[i].
	ctx        []recordCtx
	reportStr  *string
	reportView *view
	splitCache [][2]string
	inline     *Header // inlineOriginal's answer, once inlineRead
	inlineRead bool
}

// recordCtx is the wording around one record: its diagnostic, the
// report lines about its recipient, and the whole report.
type recordCtx struct {
	diag   tagSet
	v      *view       // the report's text, nil if none
	seg    []lineRange // the report lines about this recipient
	mailer bool        // the diagnostic is a local program's (X-Unix)
	// shared marks a report about several recipients: its whole text is
	// not evidence about any one of them.
	shared bool
}

// own returns the phrases of the report lines about the recipient.
func (x recordCtx) own() tagSet {
	if x.v == nil {
		return tagSet{}
	}
	return segmentTags(x.v, x.seg)
}

// whole returns the phrases of the whole report.
func (x recordCtx) whole() tagSet {
	if x.v == nil || x.shared {
		return tagSet{}
	}
	return x.v.all()
}

// addRecord appends r with the wording that speaks of it.
func (m *mailView) addRecord(r Record, x recordCtx) {
	m.rep.Records = append(m.rep.Records, r)
	for len(m.ctx) < len(m.rep.Records)-1 {
		m.ctx = append(m.ctx, recordCtx{})
	}
	m.ctx = append(m.ctx, x)
}

// firstText returns the first text part, or "".
func (m *mailView) firstText() string {
	if len(m.c.texts) > 0 {
		return m.c.texts[0]
	}
	return ""
}
