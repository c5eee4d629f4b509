// Package report builds senderkit's sender report: for a period, per
// scope, stream and send day, what became of the mail (delivered,
// deferred, bounced hard and soft, complaints, unsubscribes), the
// complaint rate against delivered mail of that day (RFC 6449 §4.3.2),
// flagged above Gmail's and Yahoo's limits, the top bounce reasons, and
// the sender problems met at each destination.
package report

import (
	"context"
	"time"

	"github.com/senderkit/senderkit/internal/store"
)

// Complaint-rate thresholds from Gmail's and Yahoo's bulk-sender
// requirements (2024): keep below 0.3 %, aim for 0.1 %.
const (
	WarnRate  = 0.001
	LimitRate = 0.003
)

// Flags on a day's complaint rate.
const (
	FlagNone  = ""
	FlagWarn  = "above 0.1%"
	FlagLimit = "above 0.3%"
)

// Day is one row of the report.
type Day struct {
	store.DayCount
	// ComplaintRate is Complaints / Delivered; nil when nothing was
	// delivered.
	ComplaintRate *float64
	Flag          string
}

// Report is the whole report.
type Report struct {
	Since, Until time.Time
	// ByRelay says the days are split by the relay that sent the mail
	// (Day.Relay), as BuildByRelay makes them; else they sum the fleet.
	ByRelay  bool
	Days     []Day
	Reasons  []store.ReasonCount
	Problems []store.ProblemCount
}

// Build reads the report of the mail sent in [since, until), summed
// over every relay that shares the store.
func Build(ctx context.Context, st store.Store, since, until time.Time) (*Report, error) {
	return build(ctx, st, since, until, false)
}

// BuildByRelay is Build with each day split by the relay that sent the
// mail (a fleet of relays sharing one store).
func BuildByRelay(ctx context.Context, st store.Store, since, until time.Time) (*Report, error) {
	return build(ctx, st, since, until, true)
}

func build(ctx context.Context, st store.Store, since, until time.Time, byRelay bool) (*Report, error) {
	r := &Report{Since: since.UTC(), Until: until.UTC(), ByRelay: byRelay}
	days, err := st.SendDays(ctx, since, until)
	if byRelay {
		days, err = st.SendDaysByRelay(ctx, since, until)
	}
	if err != nil {
		return nil, err
	}
	for _, d := range days {
		row := Day{DayCount: d}
		if d.Delivered > 0 {
			rate := float64(d.Complaints) / float64(d.Delivered)
			row.ComplaintRate = &rate
			switch {
			case rate > LimitRate:
				row.Flag = FlagLimit
			case rate > WarnRate:
				row.Flag = FlagWarn
			}
		}
		r.Days = append(r.Days, row)
	}
	if r.Reasons, err = st.BounceReasons(ctx, since, until); err != nil {
		return nil, err
	}
	if r.Problems, err = st.SenderProblems(ctx, since, until); err != nil {
		return nil, err
	}
	return r, nil
}
