// Package suppcsv reads and writes the suppression list as CSV: the
// format of `senderkit suppress import` and `export`, meant to travel to
// and from an ESP or another senderkit.
//
// The first row names the columns; on import their order is free and
// only address is required:
//
//	address  user@example.com, or *@example.com for a whole domain
//	scope    a scope name, or * for every scope (default: --scope)
//	stream   a stream name; empty for every stream of the scope
//	reason   hard-bounce, soft-bounce, complaint, unsubscribe or manual
//	         (default: --reason, else manual)
//	created  when the entry was listed, RFC 3339 ("2026-11-02T10:00:00Z"),
//	         "2026-11-02 10:00:00" or "2026-11-02", UTC unless a zone is
//	         given (default: the time of the import)
//	expires  when it lapses, same forms; empty for never
//	times    how many times it was listed (default 1)
//	source   where the evidence came from (default: import:<file name>)
//	detail   the evidence: status code and diagnostic text, or feedback type
//
// Import also takes "email", "email address" and "e-mail" for address,
// so many ESPs' exports load as they are, and ignores columns it does not
// know. Export writes every column, times in RFC 3339 UTC, sorted by
// scope, address and stream; exporting what was imported gives the same
// bytes back.
package suppcsv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
)

// Header is the column row Export writes.
var Header = []string{"address", "scope", "stream", "reason", "created", "expires", "times", "source", "detail"}

var aliases = map[string]string{"email": "address", "email address": "address", "e-mail": "address", "emailaddress": "address"}

// Defaults fill in columns a file does not have.
type Defaults struct {
	Scope   string
	Reason  store.Reason // "" means manual
	Created time.Time
	Source  string
}

// Reader reads entries from a CSV file.
type Reader struct {
	r    *csv.Reader
	cols map[string]int
	def  Defaults
	opt  addr.Options
	// Ignored lists the columns the file has and the format does not.
	Ignored []string
}

// NewReader reads the header row.
func NewReader(r io.Reader, def Defaults, o addr.Options) (*Reader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("suppcsv: empty file: want a header row (%s)", strings.Join(Header, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("suppcsv: header: %w", err)
	}
	rd := &Reader{r: cr, cols: map[string]int{}, def: def, opt: o}
	for i, h := range head {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if a, ok := aliases[name]; ok {
			name = a
		}
		known := false
		for _, k := range Header {
			known = known || k == name
		}
		if !known {
			rd.Ignored = append(rd.Ignored, h)
			continue
		}
		if _, dup := rd.cols[name]; dup {
			return nil, fmt.Errorf("suppcsv: header: column %q appears twice", name)
		}
		rd.cols[name] = i
	}
	if _, ok := rd.cols["address"]; !ok {
		return nil, fmt.Errorf("suppcsv: header %q has no address column", strings.Join(head, ","))
	}
	if _, ok := rd.cols["scope"]; !ok && def.Scope == "" {
		return nil, fmt.Errorf("suppcsv: the file has no scope column; give one with --scope")
	}
	return rd, nil
}

func (rd *Reader) field(rec []string, name string) string {
	i, ok := rd.cols[name]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// Read returns the next entry, or io.EOF. Errors name the line.
func (rd *Reader) Read() (store.Suppression, error) {
	rec, err := rd.r.Read()
	if err == io.EOF {
		return store.Suppression{}, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return store.Suppression{}, fmt.Errorf("suppcsv: line %d: %v", pe.Line, pe.Err)
		}
		return store.Suppression{}, fmt.Errorf("suppcsv: %w", err)
	}
	line, _ := rd.r.FieldPos(0)
	bad := func(col, format string, a ...any) (store.Suppression, error) {
		return store.Suppression{}, fmt.Errorf("suppcsv: line %d, column %s: %s", line, col, fmt.Sprintf(format, a...))
	}
	var s store.Suppression
	if s.Address, err = addr.NormalizePattern(rd.field(rec, "address"), rd.opt); err != nil {
		return bad("address", "%v", err)
	}
	if s.Scope = rd.field(rec, "scope"); s.Scope == "" {
		s.Scope = rd.def.Scope
	}
	if s.Scope == "" {
		return bad("scope", "empty, and no --scope given")
	}
	s.Stream = rd.field(rec, "stream")
	s.Reason = store.Reason(rd.field(rec, "reason"))
	if s.Reason == "" {
		s.Reason = rd.def.Reason
	}
	if s.Reason == "" {
		s.Reason = store.Manual
	}
	if !s.Reason.Valid() {
		return bad("reason", "%q: want one of %v", s.Reason, store.Reasons)
	}
	s.Created = rd.def.Created
	if v := rd.field(rec, "created"); v != "" {
		if s.Created, err = parseTime(v); err != nil {
			return bad("created", "%v", err)
		}
	}
	if s.Created.IsZero() {
		return bad("created", "empty, and no default")
	}
	if v := rd.field(rec, "expires"); v != "" {
		if s.Expires, err = parseTime(v); err != nil {
			return bad("expires", "%v", err)
		}
		if !s.Expires.After(s.Created) {
			return bad("expires", "%s is not after created %s", v, s.Created.Format(time.RFC3339))
		}
	}
	s.Times = 1
	if v := rd.field(rec, "times"); v != "" {
		if s.Times, err = strconv.Atoi(v); err != nil || s.Times < 1 {
			return bad("times", "%q: want a whole number, 1 or more", v)
		}
	}
	s.Cause = &store.Event{Source: rd.def.Source, Diagnostic: rd.field(rec, "detail")}
	if v := rd.field(rec, "source"); v != "" {
		s.Cause.Source = v
	}
	return s, nil
}

var timeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"}

func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2026-11-02T10:00:00Z), 2026-11-02 10:00:00 or 2026-11-02", v)
}

// Detail renders an entry's evidence as one text: for an imported entry
// the detail it came with, otherwise the status code, reply code,
// feedback type and diagnostic text that are present.
func Detail(ev *store.Event) string {
	if ev == nil {
		return ""
	}
	if ev.Type == store.Imported {
		return ev.Diagnostic
	}
	var parts []string
	for _, p := range []string{ev.Status, ev.ReplyCode, ev.FeedbackType} {
		// A remote's text usually starts with its codes: say them once.
		if p != "" && !strings.Contains(ev.Diagnostic, p) {
			parts = append(parts, p)
		}
	}
	if ev.Diagnostic != "" {
		parts = append(parts, ev.Diagnostic)
	}
	return strings.Join(parts, " ")
}

// Writer writes entries in the export format.
type Writer struct{ w *csv.Writer }

// NewWriter writes the header row.
func NewWriter(w io.Writer) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return nil, err
	}
	return &Writer{w: cw}, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Write writes one entry.
func (w *Writer) Write(s store.Suppression) error {
	source := ""
	if s.Cause != nil {
		source = s.Cause.Source
	}
	return w.w.Write([]string{s.Address, s.Scope, s.Stream, string(s.Reason), formatTime(s.Created),
		formatTime(s.Expires), strconv.Itoa(max(s.Times, 1)), source, Detail(s.Cause)})
}

// Flush writes out what is buffered and reports any write error.
func (w *Writer) Flush() error {
	w.w.Flush()
	return w.w.Error()
}
