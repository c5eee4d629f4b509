package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// The send lookups on the milter's and the log follower's paths use
// their indexes: a scan would cost a read of every send ever made. (The
// partial indexes are only used when the query says the value is not
// empty.)
func TestSendLookupsUseIndexes(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, c := range []struct {
		sql   string
		args  []any
		index string
	}{
		{addSendSQL[strings.Index(addSendSQL, "SELECT 1"):strings.LastIndex(addSendSQL, ")")], []any{1, 2, 3, 4, 5, 6, 7, "k", 9}, "sends_message_key"},
		{sendsByQueueIDSQL, []any{"4ABC"}, "sends_queue_id"},
		{sendsByKeySQL, []any{"k", 0}, "sends_message_key"},
		// The health windows and reports: the copies of the period by
		// time, then each copy's events by send id (see sendDaysSQL).
		{fmt.Sprintf(sendDaysSQL, "''", "0"), []any{1, 2}, "sends_at"},
		{fmt.Sprintf(sendDaysSQL, "''", "0"), []any{1, 2}, "events_send_id (send_id=?)"},
	} {
		p := queryPlan(t, d, c.sql, c.args...)
		if !strings.Contains(p, "USING COVERING INDEX "+c.index) && !strings.Contains(p, "USING INDEX "+c.index) {
			t.Errorf("%s\nplan: %s\nwant it to use %s", c.sql, p, c.index)
		}
	}
}

// The suppression lookup, run per RCPT, is four searches of the primary
// key and builds no temporary B-tree: neither for an IN list nor for an
// ORDER BY (see lookupSQL for what one cost).
func TestLookupUsesThePrimaryKeyOnly(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	args := []any{1, 2, "a@example.com", "*@example.com", 3, 4}
	p := queryPlan(t, d, lookupSQL, args...)
	if n := strings.Count(p, "SEARCH suppressions USING PRIMARY KEY (scope_id=? AND address=?)"); n != 4 {
		t.Errorf("plan: %s\nwant four searches of the primary key by scope and address, found %d", p, n)
	}
	if strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("plan: %s\nwant no temporary B-tree", p)
	}
	// The query plan does not show the ephemeral table of an IN list;
	// the program does.
	rows, err := d.r.Query("EXPLAIN "+lookupSQL, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if op := fmt.Sprint(vals[1]); op == "OpenEphemeral" || op == "SorterOpen" {
			t.Errorf("the lookup's program opens a temporary table (%s at address %v)", op, vals[0])
		}
	}
}

// queryPlan returns the details of EXPLAIN QUERY PLAN for query, joined
// by "; ".
func queryPlan(t *testing.T, d *DB, query string, args ...any) string {
	t.Helper()
	rows, err := d.r.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// The health check's read of a week of resumes uses the partial index
// of resumes, not every event of the week. The query is captured from
// Events with the filter the health check passes.
func TestResumesUseTheirIndex(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q, args := eventsQuery(store.EventFilter{Types: []store.EventType{store.Resumed}, Since: time.Unix(1700000000, 0)})
	if p := queryPlan(t, d, q, args...); !strings.Contains(p, "USING INDEX events_resumes") {
		t.Errorf("%s\nplan: %s\nwant it to use events_resumes", q, p)
	}
	// Two types: parameters, and still a correct query.
	q, args = eventsQuery(store.EventFilter{Types: []store.EventType{store.Resumed, store.Paused}})
	if !strings.Contains(q, "e.type IN (?, ?)") || len(args) != 2 {
		t.Errorf("two types: %s %v, want parameters", q, args)
	}
}
