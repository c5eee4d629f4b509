package milter

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/charset"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/milter/dkim"
)

// field is one header field as Postfix passed it: the name, and the
// value with the white space after the colon (we negotiate
// SMFIP_HDR_LEADSPC) and bare LF between folded lines.
type field struct {
	name, value string
}

// fields is a message's header as the milter saw it.
type fields []field

// get returns the values of the fields called name, in order.
func (fs fields) get(name string) []string {
	var vs []string
	for _, f := range fs {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// has reports whether a field called name is present.
func (fs fields) has(name string) bool { return len(fs.get(name)) > 0 }

// edit is a change to the header, in the terms of the milter protocol.
type edit struct {
	del   bool   // delete the index-th field called name (SMFIR_CHGHEADER, empty value)
	index int    // 1-based among the fields called name
	name  string // field name
	value string // for an added field: the value with its leading space
}

// edits collects the header changes of one message, and the header
// block they leave, which is what the DKIM signature covers.
type edits struct {
	in   fields
	list []edit
	gone map[int]bool // positions in in that are deleted
}

func newEdits(in fields) *edits { return &edits{in: in, gone: map[int]bool{}} }

// remove deletes every field called name.
func (e *edits) remove(name string) {
	var pos []int
	for i, f := range e.in {
		if strings.EqualFold(f.name, name) {
			pos = append(pos, i)
		}
	}
	// From the last, so that the indexes of the others stay put
	// (Postfix unlinks a deleted field).
	for n := len(pos); n > 0; n-- {
		e.list = append(e.list, edit{del: true, index: n, name: e.in[pos[n-1]].name})
		e.gone[pos[n-1]] = true
	}
}

// add appends a field; Postfix appends SMFIR_ADDHEADER fields at the end
// of the header, in the order sent.
func (e *edits) add(name, value string) {
	e.list = append(e.list, edit{name: name, value: " " + value})
}

// header returns the header block as it will leave, without Postfix's
// own Received field (which the milter never sees and no signature
// covers): CRLF line ends, the empty line at the end. names lists the
// field names in order.
func (e *edits) header() (block []byte, names []string) {
	var b bytes.Buffer
	for i, f := range e.in {
		if e.gone[i] {
			continue
		}
		b.WriteString(f.name + ":" + f.value + "\r\n")
		names = append(names, f.name)
	}
	for _, ed := range e.list {
		if !ed.del {
			b.WriteString(ed.name + ":" + ed.value + "\r\n")
			names = append(names, ed.name)
		}
	}
	b.WriteString("\r\n")
	return dkim.CRLF(b.Bytes()), names
}

// wordDecoder decodes RFC 2047 encoded words in display names, in any
// charset go-message knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// lenientWords decodes the encoded words it can and keeps the others'
// text as it is, made valid UTF-8: the second try at a From field whose
// display name wordDecoder cannot read (an unknown charset), since the
// address, not the name, decides the keys.
var lenientWords = &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
	if d, err := charset.Reader(cs, r); err == nil {
		return d, nil
	}
	b, err := io.ReadAll(r)
	return strings.NewReader(strings.ToValidUTF8(string(b), "?")), err
}}

// author is the From address of a message.
type author struct {
	user   string // local part as written
	domain string // lower-case, in A-labels (RFC 8616 §4)
}

func (a author) String() string { return a.user + "@" + a.domain }

// parseFrom reads the author from the From fields. strict demands what
// RFC 5322 §3.6 and the mailbox providers' bulk-sender rules demand:
// exactly one From field with exactly one address. Otherwise the first
// address of the first From field is taken, as OpenDKIM does. The error
// says why there is no author.
func parseFrom(fs fields, strict bool) (author, error) {
	vs := fs.get("From")
	if len(vs) == 0 {
		return author{}, fmt.Errorf("no From header field")
	}
	if strict && len(vs) > 1 {
		return author{}, fmt.Errorf("%d From header fields; RFC 5322 §3.6 allows one", len(vs))
	}
	v := strings.TrimSpace(strings.ReplaceAll(vs[0], "\n", ""))
	p := mail.AddressParser{WordDecoder: wordDecoder}
	list, err := p.ParseList(v)
	if err != nil {
		// A display name in a charset nobody knows, or in raw 8-bit
		// text that is not UTF-8: the address is still readable, and
		// OpenDKIM signs such mail.
		lp := mail.AddressParser{WordDecoder: lenientWords}
		if l, lerr := lp.ParseList(strings.ToValidUTF8(v, "?")); lerr == nil {
			list, err = l, nil
		}
	}
	if err != nil || len(list) == 0 {
		return author{}, fmt.Errorf("From header field %q: %v", strings.TrimSpace(vs[0]), err)
	}
	if strict && len(list) > 1 {
		return author{}, fmt.Errorf("From header field names %d authors; senderkit signs mail with one", len(list))
	}
	i := strings.LastIndexByte(list[0].Address, '@')
	if i < 0 {
		return author{}, fmt.Errorf("From address %q has no domain", list[0].Address)
	}
	dom, err := addr.NormalizeDomain(list[0].Address[i+1:])
	if err != nil {
		return author{}, fmt.Errorf("From address %q: %v", list[0].Address, err)
	}
	return author{user: list[0].Address[:i], domain: dom}, nil
}
