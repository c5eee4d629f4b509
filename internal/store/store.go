// Package store defines the state senderkit keeps (sends, events and the
// suppression list) and the interface every storage backend implements.
//
// The plug-ins (milter, policy server, bounce pipe, unsubscribe endpoint)
// and the CLI only ever see Store. The embedded backend is SQLite
// (package sqlitestore); the shared backend for a fleet of relays is
// PostgreSQL (package pgstore); package storetest holds the suite every
// backend must pass.
//
// In a fleet each relay opens the store under its own name (Relay): the
// sends, events and throttle state it writes carry that name, so reports
// can sum the fleet or split it by relay.
//
// Every change to the suppression list goes through Record, which appends
// an event and applies its effect in one transaction: the list can always
// explain itself, and history is never erased.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/senderkit/senderkit/internal/addr"
)

// Errors shared by all backends; test with errors.Is.
var (
	// ErrNotFound: no such send, name or suppression.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: an event with the same key was recorded before, or
	// a send id is already taken. Nothing was changed.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrBusy: the store stayed locked by another writer for longer than
	// the configured timeout, or (a shared store) could not be reached
	// within it. The caller should retry later (milter: tempfail, bounce
	// pipe: exit 75).
	ErrBusy = errors.New("store: busy")
	// ErrInvalid: the caller passed something the store cannot keep.
	ErrInvalid = errors.New("store: invalid argument")
)

// AllScopes is the scope of a suppression that applies to every scope
// (an administrator's "never mail this address, whoever sends").
const AllScopes = "*"

// NameKind tells scope names from stream names when interning.
type NameKind int

// Name kinds.
const (
	ScopeName  NameKind = 1
	StreamName NameKind = 2
)

func (k NameKind) String() string {
	switch k {
	case ScopeName:
		return "scope"
	case StreamName:
		return "stream"
	}
	return fmt.Sprintf("NameKind(%d)", int(k))
}

// Send is one delivered copy, as named by a token.
type Send struct {
	ID        uint64 // the token's send id
	Scope     string
	Stream    string
	Recipient string // normalised; "" for a message-level token (transactional mail to several recipients)
	QueueID   string // Postfix queue ID of the copy
	At        time.Time
	// MessageKey identifies the submission the copy came from (the
	// milter's fingerprint of a bulk message), so that a submission
	// retried after a failure finds the copies already queued and does
	// not send them twice. "" for none.
	MessageKey string
	// Relay is the relay that recorded the copy (set by the store from
	// the handle's name; ignored on input).
	Relay string
}

// EventType says what happened.
type EventType string

// Event types.
const (
	Delivered     EventType = "delivered"      // status=sent in Postfix's log
	Deferred      EventType = "deferred"       // status=deferred, or a delayed DSN
	Bounced       EventType = "bounced"        // a DSN or log line saying the copy failed
	Complaint     EventType = "complaint"      // an ARF report
	Unsubscribed  EventType = "unsubscribe"    // one-click POST or mail to the mailto address
	Resubscribed  EventType = "resubscribe"    // the undo link
	AutoReply     EventType = "auto-reply"     // vacation, challenge-response
	SenderProblem EventType = "sender-problem" // a bounce blaming us (blocklist, policy)
	Suppressed    EventType = "suppressed"     // an administrator added an entry
	Unsuppressed  EventType = "unsuppressed"   // an administrator removed an entry
	Imported      EventType = "imported"       // an entry came from a CSV import
	Expired       EventType = "expired"        // a lapsing entry lapsed (recorded on relisting)
	Unattributed  EventType = "unattributed"   // a report whose token did not verify
	Forwarded     EventType = "forwarded"      // mail for a person, passed to the role address
	Quarantined   EventType = "quarantined"    // a message the bounce pipe could not read, kept aside
	Paused        EventType = "scope-paused"   // a scope's bulk mail put on hold (vetting, or an administrator)
	Resumed       EventType = "scope-resumed"  // an administrator let a paused scope send again
)

// Event is one row of history, with its evidence.
type Event struct {
	ID           int64
	At           time.Time
	Type         EventType
	Scope        string // "" when not attributed to a scope
	Stream       string
	Address      string // normalised recipient, or a "*@domain" pattern
	SendID       uint64 // 0 when not attributed to a send
	Reason       string // classifier reason (Sisimai names) or suppression reason
	Hard         bool   // a permanent failure
	Status       string // RFC 3463 enhanced status code, "5.1.1"
	ReplyCode    string // SMTP reply code, "550"
	Diagnostic   string // the remote's text, or a note
	FeedbackType string // ARF Feedback-Type (RFC 5965 §3.1)
	ReportingMTA string
	Source       string // which path: "bouncepipe", "log", "http", "cli", a feedback loop's name
	// Key makes recording idempotent: a second event with the same
	// non-empty Key is refused with ErrDuplicate and changes nothing.
	Key string
	// Relay is the relay that recorded the event (set by the store from
	// the handle's name; ignored on input).
	Relay string
}

// Reason is why an address is suppressed.
type Reason string

// Literal returns t as an SQL string literal, and false when t is not
// lower-case letters and hyphens only, as every event type is; such a t
// must be passed as a parameter instead. A literal lets a backend use an
// index of that one type (a parameter does not select a partial index).
func (t EventType) Literal() (string, bool) {
	if t == "" {
		return "", false
	}
	for _, c := range t {
		if (c < 'a' || c > 'z') && c != '-' {
			return "", false
		}
	}
	return "'" + string(t) + "'", true
}

// Suppression reasons.
const (
	HardBounce  Reason = "hard-bounce"
	SoftBounce  Reason = "soft-bounce"
	Complained  Reason = "complaint"
	Unsubscribe Reason = "unsubscribe"
	Manual      Reason = "manual"
)

// Reasons lists the valid reasons.
var Reasons = []Reason{HardBounce, SoftBounce, Complained, Unsubscribe, Manual}

// Valid reports whether r is one of Reasons.
func (r Reason) Valid() bool {
	for _, v := range Reasons {
		if r == v {
			return true
		}
	}
	return false
}

// Suppression is one entry of the suppression list.
type Suppression struct {
	Scope   string // a scope name, or AllScopes
	Stream  string // "" for every stream of the scope
	Address string // normalised address, or "*@domain"
	Reason  Reason
	Created time.Time // when the current listing began
	Expires time.Time // zero: never
	Times   int       // how many times the entry was listed (relisting doubles the TTL)
	EventID int64     // the event that caused the current listing
	// Cause is the event EventID names; filled by Suppressions, not by Lookup.
	Cause *Event
}

// Active reports whether s is in force at t.
func (s Suppression) Active(t time.Time) bool { return s.Expires.IsZero() || t.Before(s.Expires) }

// Op is what a Change does to the suppression list.
type Op int

// Ops.
const (
	NoOp Op = iota
	// Suppress lists Change.Address (a permanent entry is never weakened).
	Suppress
	// Unsuppress removes the entry with exactly this scope, stream and
	// address.
	Unsuppress
	// CountSoftBounce counts the event's send (Event.SendID, required) in the
	// recipient's streak of soft bounces, and lists the address with
	// Reason SoftBounce, TTL and MaxTTL once the streak holds at least
	// MinBounces distinct sends spanning at least MinSpan (M3AAWG Sender
	// BCP v3 §3.8: "after consecutive bounces over at least two sends
	// spanning at least 14 days"). Counting and listing happen in one
	// transaction, so concurrent bounce pipes cannot both miss the
	// threshold.
	CountSoftBounce
	// ResetStreak ends the recipient's streak of soft bounces: a
	// delivery (status=sent in Postfix's log) does this.
	ResetStreak
	// PauseScope puts Change.Scope on hold (see Pause), with the event
	// as its cause. Changed is false, and the event is still recorded,
	// when the scope was already paused: the first cause is kept.
	PauseScope
	// ResumeScope ends Change.Scope's pause. Changed is false when the
	// scope was not paused.
	ResumeScope
)

// Change is the effect an event has on the suppression list.
type Change struct {
	Op      Op
	Scope   string // AllScopes allowed, but for PauseScope and ResumeScope
	Stream  string // "" for every stream
	Address string // normalised address or "*@domain"
	Reason  Reason // for Suppress
	// TTL makes a Suppress lapse after this long (0: never). An entry
	// that lapsed and is listed again gets twice its previous TTL, up to
	// MaxTTL.
	TTL    time.Duration
	MaxTTL time.Duration
	// MinBounces and MinSpan are the thresholds of a CountSoftBounce.
	MinBounces int
	MinSpan    time.Duration
}

// Streak is a recipient's run of soft bounces since its last delivery.
type Streak struct {
	Sends       int       // distinct sends that bounced
	First, Last time.Time // the first and the last of those bounces
}

// Result tells what Record did.
type Result struct {
	EventID int64
	// Changed is false when the change had no effect: the entry was
	// already there (a permanent entry is never weakened) or was absent.
	Changed bool
	// Entry is the suppression after the change (zero after Unsuppress,
	// and after a CountSoftBounce below the thresholds).
	Entry Suppression
	// Streak is the recipient's streak after a CountSoftBounce.
	Streak Streak
}

// Query asks whether a recipient is suppressed.
type Query struct {
	Scope   string
	Stream  string // "" when unknown: only whole-scope entries match
	Address string // normalised
	At      time.Time
}

// Filter selects suppressions to list.
type Filter struct {
	Scope   string    // "" for all
	Reason  Reason    // "" for all
	Since   time.Time // listed at or after
	Address string    // exact address or pattern, "" for all
	// Lapsed includes entries whose expiry has passed (at At).
	Lapsed bool
	At     time.Time
}

// EventFilter selects events.
type EventFilter struct {
	Scope   string // "" for all
	Address string // "" for all; an address also matches its domain pattern
	SendID  uint64
	Types   []EventType
	Since   time.Time
	Until   time.Time // exclusive; zero for no bound
}

// Throttle is the state of one throttled destination, or of one scope
// suspended at a destination, as the policy server last saved it.
type Throttle struct {
	Destination string // destination group, "google.com"
	Scope       string // "" for the whole destination, else the suspended scope
	State       string // ThrottleLimited or ThrottleSuspended
	Rate        float64
	Since       time.Time
	Until       time.Time // suspended until; zero for a rate limit
	Tempfails   int       // temporary failures in the current window
	Successes   int       // deliveries in the current window
	Reason      string    // "rate-limited", "tempfail", "blocklisted"
	Reply       string    // the remote's reply that caused it
	Updated     time.Time
	// Relay is the relay whose policy server saved the state (set by
	// the store from the handle's name; ignored on input).
	Relay string
}

// Throttle states.
const (
	ThrottleLimited   = "throttled" // new mail accepted at Rate messages a minute
	ThrottleSuspended = "suspended" // the scope's mail deferred until Until
)

// DeliveryKey is the Event.Key of a copy's delivery to a recipient.
func DeliveryKey(sendID uint64, recipient string) string {
	return fmt.Sprintf("delivered/%d/%s", sendID, recipient)
}

// BounceKey is the Event.Key of a copy's failure for a recipient. Postfix's
// log follower and the bounce pipe (which gets Postfix's DSN about the
// same failure by mail) both use it, so that one bounce is counted once,
// whichever path reports it first.
func BounceKey(sendID uint64, recipient string) string {
	return fmt.Sprintf("bounced/%d/%s", sendID, recipient)
}

// ComplaintKey is the Event.Key of a complaint about a copy: a feedback
// loop that sends its report again (its first delivery's reply lost)
// counts once.
func ComplaintKey(sendID uint64, recipient, feedbackType string) string {
	return fmt.Sprintf("complaint/%d/%s/%s", sendID, recipient, feedbackType)
}

// DayCount is what became of the copies one stream of one scope sent on
// one day (UTC). Each copy counts at most once per column, and is
// counted on the day it was sent, whenever its events were reported
// (RFC 6449 §4.3.2: a complaint read on Monday is about Saturday's mail).
type DayCount struct {
	Scope, Stream string
	Day           time.Time // 00:00 UTC
	Sent          int       // copies sent
	Delivered     int       // copies the receiving server accepted
	Deferred      int       // copies deferred at least once
	HardBounced   int       // copies that failed for good at the recipient
	SoftBounced   int       // copies that failed for a passing reason
	UnknownUser   int       // of HardBounced, copies whose recipient does not exist (reason "userunknown")
	SenderProblem int       // copies refused for a reason that blames the sender
	Complaints    int       // copies complained about ("not-spam" reports excluded)
	Unsubscribes  int       // copies whose recipient unsubscribed through them
	// Relay is the relay that sent the copies, from SendDaysByRelay;
	// "" from SendDays, which sums the fleet.
	Relay string
}

// ReasonCount is how many copies sent in a period bounced for one
// classifier reason.
type ReasonCount struct {
	Scope  string
	Reason string // Sisimai reason name: userunknown, mailboxfull, ...
	Hard   bool
	Count  int
}

// ProblemCount is the sender problems (blocklist, policy, reputation
// refusals) one scope met at one recipient domain.
type ProblemCount struct {
	Scope   string
	Domain  string
	Count   int
	Last    time.Time
	Example string // the remote's text of the last one
}

// Pause is a scope on hold: its bulk mail is deferred until an
// administrator resumes it.
type Pause struct {
	Scope   string
	Since   time.Time // the cause's time
	EventID int64     // the Paused event that began it
	// Cause is the event EventID names: its Reason says which threshold
	// was passed ("complaint-rate", "hard-bounce-rate", "manual", ...)
	// and its Diagnostic the figures.
	Cause Event
}

// WarmupDay is one warm-up's traffic to one destination group on one
// day of its schedule.
type WarmupDay struct {
	Warmup      string    // the warm-up's name in the configuration
	Destination string    // destination group, "google.com"
	Day         time.Time // 00:00 of the day in the warm-up's time zone, as UTC
	Sent        int       // recipients accepted
	// Held is true when the destination deferred or refused the
	// warm-up's mail that day: the schedule does not grow past it.
	Held bool
	// Relay is the relay that counted (set by the store from the
	// handle's name; ignored on input, "" from WarmupDays).
	Relay string
}

// EventCount is how many events of one type, reason and scope there are.
type EventCount struct {
	Type   EventType
	Reason string
	Scope  string
	Count  int64
}

// Store is what the plug-ins and the CLI need from persistent state.
// Implementations are safe for concurrent use, and writes from several
// processes (serve and many bounce pipes) are serialised without loss.
type Store interface {
	// Relay is the name this handle writes under (its relay in a fleet;
	// "" when none was given).
	Relay() string

	// ID returns the number that stands for a scope or stream name in
	// tokens, creating it on first use. Ids are never reused.
	ID(ctx context.Context, kind NameKind, name string) (uint32, error)
	// Name is the inverse of ID.
	Name(ctx context.Context, kind NameKind, id uint32) (string, error)

	// AddSend records a delivered copy. A taken id gives ErrDuplicate.
	AddSend(ctx context.Context, s Send) error
	// Send returns the copy with the given id.
	Send(ctx context.Context, id uint64) (Send, error)
	// SendsByQueueID returns the copies Postfix queued under qid.
	SendsByQueueID(ctx context.Context, qid string) ([]Send, error)
	// AddSends records copies in one transaction, all or none. A send
	// with a MessageKey is skipped when a send with the same MessageKey
	// and Recipient was recorded within window before its At; added[i]
	// says whether sends[i] was recorded. A taken id fails the whole
	// call with ErrDuplicate.
	AddSends(ctx context.Context, sends []Send, window time.Duration) (added []bool, err error)
	// SendsByMessageKey returns the copies recorded with key at or after
	// since.
	SendsByMessageKey(ctx context.Context, key string, since time.Time) ([]Send, error)

	// Record appends ev (ev.ID and the returned EventID are set) and
	// applies ch, in one transaction.
	Record(ctx context.Context, ev Event, ch Change) (Result, error)
	// Import adds suppressions in one transaction, each with an Imported
	// event carrying its Cause's Source and Diagnostic. An address that is
	// already listed keeps its entry. It returns how many were added.
	Import(ctx context.Context, entries []Suppression, at time.Time) (int, error)

	// Lookup returns the entry in force that covers q, considering the
	// scope and AllScopes, the stream and all streams, the address and
	// its domain pattern.
	Lookup(ctx context.Context, q Query) (Suppression, bool, error)
	// Suppressions calls fn for each matching entry, Cause filled, in
	// (scope, address, stream) order.
	Suppressions(ctx context.Context, f Filter, fn func(Suppression) error) error
	// Events calls fn for each matching event in the order recorded.
	Events(ctx context.Context, f EventFilter, fn func(Event) error) error

	// CountEvents counts the events recorded after event afterID, by
	// type, reason and scope, and returns the last event id counted: the
	// metrics keep their totals current by asking only for what is new.
	CountEvents(ctx context.Context, afterID int64) ([]EventCount, int64, error)

	// SendDays counts, per scope, stream and send day, what became of
	// the copies sent in [since, until).
	SendDays(ctx context.Context, since, until time.Time) ([]DayCount, error)
	// SendTotals is SendDays over the whole of [since, until): one row
	// per scope and stream, with Day set to since. Scope health is
	// judged on it over sliding windows.
	SendTotals(ctx context.Context, since, until time.Time) ([]DayCount, error)
	// SendDaysByRelay is SendDays split by the relay that sent each
	// copy, in (relay, scope, stream, day) order.
	SendDaysByRelay(ctx context.Context, since, until time.Time) ([]DayCount, error)
	// BounceReasons counts the bounces of copies sent in [since, until)
	// by reason, most frequent first.
	BounceReasons(ctx context.Context, since, until time.Time) ([]ReasonCount, error)
	// SenderProblems counts the sender problems of copies sent in
	// [since, until) by scope and recipient domain, most first.
	SenderProblems(ctx context.Context, since, until time.Time) ([]ProblemCount, error)
	// ListedSince calls fn with the address (or "*@domain" pattern) and
	// event id of every entry listed or relisted by an event after
	// afterEvent (0: every entry), in event order, lapsed entries
	// included. The policy server keeps its in-memory filter current
	// with it.
	ListedSince(ctx context.Context, afterEvent int64, fn func(address string, eventID int64) error) error

	// SetThrottles replaces the throttle state this handle's relay
	// saved with ts; other relays' state stays.
	SetThrottles(ctx context.Context, ts []Throttle) error
	// Throttles returns the throttle state every relay last set, by
	// destination, scope and relay.
	Throttles(ctx context.Context) ([]Throttle, error)

	// Pauses returns the scopes on hold, by scope name.
	Pauses(ctx context.Context) ([]Pause, error)

	// AddWarmup adds each day's Sent to what this handle's relay counted
	// for the same warm-up, destination and day, and sets Held when
	// given (Held is never cleared), in one transaction.
	AddWarmup(ctx context.Context, days []WarmupDay) error
	// WarmupDays returns a warm-up's days from since on, summed over
	// the relays (Held when any relay saw the destination defer), by
	// destination and day.
	WarmupDays(ctx context.Context, warmup string, since time.Time) ([]WarmupDay, error)

	Close() error
}

// Why says why and since when the recipient is suppressed, as a reply
// to the sender may: the reason and the day, without the evidence's
// details (a diagnostic may quote other mail). The policy server and
// the milter give it when they refuse a suppressed recipient.
func (e Suppression) Why() string {
	day := e.Created.UTC().Format("2006-01-02")
	who := "recipient"
	if addr.IsDomainPattern(e.Address) {
		who = "recipient domain " + addr.Domain(e.Address)
	}
	var why string
	switch e.Reason {
	case Unsubscribe:
		why = fmt.Sprintf("%s unsubscribed on %s", who, day)
	case Complained:
		why = fmt.Sprintf("%s complained about earlier mail on %s", who, day)
	case HardBounce:
		why = fmt.Sprintf("%s address bounced permanently on %s", who, day)
	case SoftBounce:
		why = fmt.Sprintf("%s address bounced repeatedly; suppressed on %s until %s", who, day, e.Expires.UTC().Format("2006-01-02"))
	default:
		why = fmt.Sprintf("%s suppressed by the administrator on %s", who, day)
	}
	if e.Scope == AllScopes {
		why += " (for every sender)"
	}
	return why
}
