package suppcsv

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
	"github.com/senderkit/senderkit/internal/store"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func readAll(t *testing.T, in string, def Defaults) ([]store.Suppression, error) {
	t.Helper()
	rd, err := NewReader(strings.NewReader(in), def, addr.Options{})
	if err != nil {
		return nil, err
	}
	var out []store.Suppression
	for {
		s, err := rd.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
}

func TestESPExport(t *testing.T) {
	in := "\ufeffEmail Address,First Name,Unsubscribed At\r\nBob@Example.COM,Bob,2026-01-01\r\n*@spam.example,,\r\n"
	got, err := readAll(t, in, Defaults{Scope: "acme", Reason: store.Unsubscribe, Created: now, Source: "import:esp.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Address != "bob@example.com" || got[0].Scope != "acme" || got[0].Reason != store.Unsubscribe ||
		!got[0].Created.Equal(now) || got[0].Times != 1 || got[0].Cause.Source != "import:esp.csv" || got[1].Address != "*@spam.example" {
		t.Errorf("entries = %+v", got)
	}
}

func TestRoundTrip(t *testing.T) {
	in := strings.Join(Header, ",") + "\n" +
		"*@example.org,*,,manual,2026-11-01T00:00:00Z,,1,cli,\"legal request, ticket 42\"\n" +
		"bob@example.com,acme,news,soft-bounce,2026-11-02T10:00:00Z,2026-12-02T10:00:00Z,2,bouncepipe,4.2.2 452 mailbox full\n"
	entries, err := readAll(t, in, Defaults{Created: now})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, _ := NewWriter(&b)
	for _, e := range entries {
		e.Cause.Type = store.Imported
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.String() != in {
		t.Errorf("round trip:\n%s\nwant\n%s", b.String(), in)
	}
}

func TestDetail(t *testing.T) {
	ev := &store.Event{Type: store.Bounced, Status: "5.1.1", ReplyCode: "550", Diagnostic: "no such user"}
	if d := Detail(ev); d != "5.1.1 550 no such user" {
		t.Errorf("Detail = %q", d)
	}
	ev.Diagnostic = "550 5.1.1 <a@b.example>: user unknown"
	if d := Detail(ev); d != ev.Diagnostic {
		t.Errorf("codes said twice: Detail = %q", d)
	}
	if d := Detail(&store.Event{Type: store.Complaint, FeedbackType: "abuse"}); d != "abuse" {
		t.Errorf("Detail = %q", d)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty file"},
		{"name,scope\n", "no address column"},
		{"address\nbob@example.com\n", "no scope column"},
		{"address,address\n", "appears twice"},
		{"address,scope\nbob@example.com,acme\nnot-an-address,acme\n", "line 3, column address"},
		{"address,scope,reason\nbob@example.com,acme,gone\n", "line 2, column reason"},
		{"address,scope,created\nbob@example.com,acme,yesterday\n", "line 2, column created"},
		{"address,scope,created,expires\nb@example.com,acme,2026-01-02,2026-01-01\n", "is not after created"},
		{"address,scope,times\nbob@example.com,acme,0\n", "line 2, column times"},
		{"address,scope\n\"bob@example.com,acme\n", "line 2"},
	} {
		_, err := readAll(t, c.in, Defaults{Created: now})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.in, err, c.want)
		}
	}
}

// FuzzRead: any file reads without panic, and every entry read is valid
// for the store and writes out again.
func FuzzRead(f *testing.F) {
	f.Add("address,scope,stream,reason,created,expires,times,source,detail\nbob@example.com,acme,,manual,2026-11-01T00:00:00Z,,1,cli,x\n")
	f.Add("Email\n*@example.com\n")
	f.Add("address,scope\n\"a\"\"b\"@x,acme\n")
	f.Fuzz(func(t *testing.T, in string) {
		rd, err := NewReader(strings.NewReader(in), Defaults{Scope: "s", Created: now}, addr.Options{})
		if err != nil {
			return
		}
		w, _ := NewWriter(io.Discard)
		for range 1000 {
			s, err := rd.Read()
			if err != nil {
				return
			}
			if s.Address == "" || s.Scope == "" || !s.Reason.Valid() || s.Created.IsZero() || s.Times < 1 {
				t.Fatalf("invalid entry read: %+v", s)
			}
			if err := w.Write(s); err != nil {
				t.Fatal(err)
			}
		}
	})
}
