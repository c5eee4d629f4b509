package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

func day(d int, hour int) time.Time { return time.Date(2026, 11, d, hour, 0, 0, 0, time.UTC) }

// script writes a scenario into a store as the milter (sends), the log
// follower (deliveries, deferrals) and the bounce pipe (bounces,
// complaints, unsubscribes) would.
type script struct {
	t    *testing.T
	st   store.Store
	next uint64
}

func (s *script) send(scope, stream string, at time.Time) uint64 {
	s.t.Helper()
	s.next++
	err := s.st.AddSend(context.Background(), store.Send{ID: s.next, Scope: scope, Stream: stream,
		Recipient: fmt.Sprintf("r%d@dest.example", s.next), At: at})
	if err != nil {
		s.t.Fatal(err)
	}
	return s.next
}

func (s *script) event(id uint64, typ store.EventType, at time.Time, f func(*store.Event)) {
	s.t.Helper()
	snd, err := s.st.Send(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	ev := store.Event{At: at, Type: typ, Scope: snd.Scope, Stream: snd.Stream, Address: snd.Recipient, SendID: id, Source: "script"}
	if f != nil {
		f(&ev)
	}
	if _, err := s.st.Record(context.Background(), ev, store.Change{}); err != nil {
		s.t.Fatal(err)
	}
}

func hard(reason string) func(*store.Event) {
	return func(e *store.Event) { e.Reason, e.Hard = reason, true }
}

func soft(reason string) func(*store.Event) { return func(e *store.Event) { e.Reason = reason } }

func feedback(ft string) func(*store.Event) { return func(e *store.Event) { e.FeedbackType = ft } }

func buildScenario(t *testing.T) *Report {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlitestore.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &script{t: t, st: st}

	// Outside the period [Nov 1, Nov 4): mail of Oct 31 complained about
	// on Nov 1, and mail of Nov 4.
	old := s.send("acme", "news", day(0, 23)) // Oct 31
	s.event(old, store.Delivered, day(0, 23), nil)
	s.event(old, store.Complaint, day(1, 9), feedback("abuse"))
	late := s.send("acme", "news", day(4, 1))
	s.event(late, store.Bounced, day(4, 2), hard("userunknown"))

	// acme/news, Nov 1: six copies.
	a1 := s.send("acme", "news", day(1, 8))
	s.event(a1, store.Delivered, day(1, 8), nil)
	a2 := s.send("acme", "news", day(1, 8))
	s.event(a2, store.Delivered, day(1, 8), nil)
	s.event(a2, store.Complaint, day(3, 10), feedback("abuse")) // Saturday's mail, read on Monday
	a3 := s.send("acme", "news", day(1, 8))
	s.event(a3, store.Bounced, day(1, 8), hard("userunknown"))
	a4 := s.send("acme", "news", day(1, 8))
	s.event(a4, store.Deferred, day(1, 9), soft("mailboxfull"))
	s.event(a4, store.Deferred, day(2, 9), soft("mailboxfull"))
	s.event(a4, store.Bounced, day(4, 9), soft("mailboxfull"))
	a5 := s.send("acme", "news", day(1, 8))
	s.event(a5, store.Delivered, day(1, 8), nil)
	s.event(a5, store.Unsubscribed, day(5, 8), nil)
	a6 := s.send("acme", "news", day(1, 8))
	s.event(a6, store.Delivered, day(1, 8), nil)
	s.event(a6, store.Complaint, day(2, 8), feedback("not-spam")) // rescued from spam: not a complaint

	// acme/news, Nov 2: three copies.
	b1 := s.send("acme", "news", day(2, 8))
	s.event(b1, store.Delivered, day(2, 8), nil)
	b2 := s.send("acme", "news", day(2, 8))
	s.event(b2, store.SenderProblem, day(2, 8), func(e *store.Event) {
		e.Reason, e.Diagnostic = "blocked", "554 5.7.1 Client host [192.0.2.10] blocked using zen.spamhaus.org"
	})
	b3 := s.send("acme", "news", day(2, 8))
	s.event(b3, store.Delivered, day(2, 8), nil)
	s.event(b3, store.Complaint, day(2, 20), feedback("abuse"))

	// globex/bulk: 1,200 delivered on Nov 2 with one complaint (0.083 %),
	// 700 on Nov 3 with one (0.143 %, above 0.1 %).
	for i := range 1200 {
		id := s.send("globex", "bulk", day(2, 12))
		s.event(id, store.Delivered, day(2, 12), nil)
		if i == 0 {
			s.event(id, store.Complaint, day(3, 12), feedback("abuse"))
		}
	}
	for i := range 700 {
		id := s.send("globex", "bulk", day(3, 12))
		s.event(id, store.Delivered, day(3, 12), nil)
		if i == 0 {
			s.event(id, store.Complaint, day(6, 12), feedback("abuse"))
		}
	}
	r, err := Build(context.Background(), st, day(1, 0), day(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// want is the scenario's report, counted by hand.
var want = []jsonDay{
	{Scope: "acme", Stream: "news", Day: "2026-11-01", Sent: 6, Delivered: 4, Deferred: 1, HardBounced: 1, SoftBounced: 1,
		SenderProblem: 0, Complaints: 1, ComplaintRate: ptr(0.25), Unsubscribes: 1, Flag: FlagLimit},
	{Scope: "acme", Stream: "news", Day: "2026-11-02", Sent: 3, Delivered: 2, Deferred: 0, HardBounced: 0, SoftBounced: 0,
		SenderProblem: 1, Complaints: 1, ComplaintRate: ptr(0.5), Unsubscribes: 0, Flag: FlagLimit},
	{Scope: "globex", Stream: "bulk", Day: "2026-11-02", Sent: 1200, Delivered: 1200, Complaints: 1, ComplaintRate: ptr(1.0 / 1200)},
	{Scope: "globex", Stream: "bulk", Day: "2026-11-03", Sent: 700, Delivered: 700, Complaints: 1, ComplaintRate: ptr(1.0 / 700), Flag: FlagWarn},
}

func ptr(f float64) *float64 { return &f }

func TestScenarioJSON(t *testing.T) {
	r := buildScenario(t)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Since, Until string
		Days         []jsonDay     `json:"days"`
		Reasons      []jsonReason  `json:"bounce_reasons"`
		Problems     []jsonProblem `json:"sender_problems"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(got.Days) != len(want) {
		t.Fatalf("%d days, want %d:\n%s", len(got.Days), len(want), b.String())
	}
	for i, w := range want {
		g := got.Days[i]
		if *g.ComplaintRate != *w.ComplaintRate {
			t.Errorf("day %d: rate %v, want %v", i, *g.ComplaintRate, *w.ComplaintRate)
		}
		g.ComplaintRate, w.ComplaintRate = nil, nil
		if g != w {
			t.Errorf("day %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	wantReasons := []jsonReason{{"acme", "mailboxfull", "soft", 1}, {"acme", "userunknown", "hard", 1}}
	if fmt.Sprint(got.Reasons) != fmt.Sprint(wantReasons) {
		t.Errorf("reasons = %+v", got.Reasons)
	}
	if len(got.Problems) != 1 || got.Problems[0].Scope != "acme" || got.Problems[0].Domain != "dest.example" || got.Problems[0].Copies != 1 ||
		!strings.Contains(got.Problems[0].LastReply, "zen.spamhaus.org") {
		t.Errorf("problems = %+v", got.Problems)
	}
	if got.Since != "2026-11-01T00:00:00Z" || got.Until != "2026-11-04T00:00:00Z" {
		t.Errorf("period %s to %s", got.Since, got.Until)
	}
}

func TestScenarioCSV(t *testing.T) {
	r := buildScenario(t)
	var b bytes.Buffer
	if err := r.WriteCSV(&b, SectionDays); err != nil {
		t.Fatal(err)
	}
	wantCSV := `scope,stream,day,sent,delivered,deferred,hard_bounced,soft_bounced,sender_problem,complaints,complaint_rate,unsubscribes,flag
acme,news,2026-11-01,6,4,1,1,1,0,1,0.25,1,above 0.3%
acme,news,2026-11-02,3,2,0,0,0,1,1,0.5,0,above 0.3%
globex,bulk,2026-11-02,1200,1200,0,0,0,0,1,0.0008333333333333334,0,
globex,bulk,2026-11-03,700,700,0,0,0,0,1,0.0014285714285714286,0,above 0.1%
`
	if b.String() != wantCSV {
		t.Errorf("days CSV:\n%s\nwant\n%s", b.String(), wantCSV)
	}
	b.Reset()
	r.WriteCSV(&b, SectionReasons)
	if b.String() != "scope,reason,kind,copies\nacme,mailboxfull,soft,1\nacme,userunknown,hard,1\n" {
		t.Errorf("reasons CSV:\n%s", b.String())
	}
	b.Reset()
	r.WriteCSV(&b, SectionProblems)
	if !strings.HasPrefix(b.String(), "scope,domain,copies,last,last_reply\nacme,dest.example,1,2026-11-02T08:00:00Z,554 5.7.1 Client host [192.0.2.10] blocked using zen.spamhaus.org\n") {
		t.Errorf("problems CSV:\n%s", b.String())
	}
	if err := r.WriteCSV(&b, "nonsense"); err == nil {
		t.Error("unknown section accepted")
	}
}

func TestScenarioTable(t *testing.T) {
	r := buildScenario(t)
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	for _, w := range []string{
		"SCOPE STREAM DAY SENT DELIVERED DEFERRED HARD SOFT SENDER-PROBLEM COMPLAINTS RATE UNSUBSCRIBES FLAG",
		"acme news 2026-11-01 6 4 1 1 1 0 1 25.000% 1 above 0.3%",
		"acme news 2026-11-02 3 2 0 0 0 1 1 50.000% 0 above 0.3%",
		"globex bulk 2026-11-02 1200 1200 0 0 0 0 1 0.083% 0",
		"globex bulk 2026-11-03 700 700 0 0 0 0 1 0.143% 0 above 0.1%",
		"acme mailboxfull soft 1",
		"acme userunknown hard 1",
	} {
		if !rows[w] {
			t.Errorf("table lacks the row %q:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "Mail sent from 2026-11-01 to 2026-11-03 (UTC)") || !rows["acme dest.example 1 2026-11-02 08:00 554 5.7.1 Client host [192.0.2.10] blocked using zen.spamhaus.org"] {
		t.Errorf("table:\n%s", out)
	}
}
