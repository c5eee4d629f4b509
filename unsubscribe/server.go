// Package unsubscribe is the one-click unsubscribe endpoint: the HTTPS
// URL that the milter writes into every bulk copy's List-Unsubscribe
// header, as RFC 8058 defines it and as Gmail and Yahoo require of bulk
// senders.
//
//	POST base_url+TOKEN with body List-Unsubscribe=One-Click
//	    a mailbox provider's one-click request (RFC 8058 §3.1): the
//	    unsubscribe is recorded before the answer, which is 200, with no
//	    redirect, no cookie, no login.
//	GET base_url+TOKEN
//	    a page that asks, with a button that makes the same POST. A GET
//	    never changes anything: link scanners and security gateways fetch
//	    every URL in a message (RFC 8058 §3.2, "anti-spam software").
//
// After an unsubscribe the page offers an undo link, itself a signed
// token (kind Resubscribe), valid for http.undo_days. A forged, tampered
// or unknown token gets a plain "this link is not valid" page and changes
// nothing; it is counted and logged. Pages are plain, accessible HTML
// with no JavaScript.
package unsubscribe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/senderkit/senderkit/conf"
	"github.com/senderkit/senderkit/internal/rules"
	"github.com/senderkit/senderkit/internal/store"
	"github.com/senderkit/senderkit/internal/token"
)

// Server serves the unsubscribe pages.
type Server struct {
	Config func() *conf.Config
	Keys   func() *token.Keyring
	Store  store.Store
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	limits limiter
	stats  Stats
}

// Stats counts what the endpoint did, for metrics.
type Stats struct {
	Unsubscribed atomic.Int64 // unsubscribes recorded
	Repeated     atomic.Int64 // requests for an address already unsubscribed
	Resubscribed atomic.Int64 // undos recorded
	Pages        atomic.Int64 // confirmation pages shown
	Malformed    atomic.Int64 // not a token at all
	Forged       atomic.Int64 // a token that does not verify
	Unknown      atomic.Int64 // a good token naming no send we know, or expired
	RateLimited  atomic.Int64 // answered 429
	Errors       atomic.Int64 // answered 5xx
}

// Stats returns the counters.
func (s *Server) Stats() *Stats { return &s.stats }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// maxBody bounds a request body: the one-click body is 26 bytes.
const maxBody = 4 << 10

// storeTimeout bounds the store work of one request.
const storeTimeout = 10 * time.Second

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")

	client := clientAddr(r, &cfg.HTTP)
	log := s.Log.With("client", client.String(), "method", r.Method)
	// The allowance stops a client guessing links. A link that verifies
	// is served whatever the client's allowance: a mailbox provider
	// posts the one-click requests of many users from few addresses,
	// and RFC 8058 expects a 2xx; a bad link or two among them must not
	// cost a user the unsubscribe.
	limited := !s.limits.allow(client, cfg.HTTP.RatePerMinute, s.now(), 1)
	tooMany := func() {
		s.stats.RateLimited.Add(1)
		h.Set("Retry-After", "60")
		s.page(w, http.StatusTooManyRequests, pageData{Title: "Too many requests", Message: "Too many requests from your address. Please try again in a minute."})
	}
	tokText, ok := strings.CutPrefix(r.URL.Path, cfg.HTTP.Path())
	if !ok || tokText == "" || strings.Contains(tokText, "/") {
		if limited {
			tooMany()
			return
		}
		s.invalid(w, r, client, cfg, "malformed", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		h.Set("Allow", "GET, HEAD, POST")
		s.page(w, http.StatusMethodNotAllowed, pageData{Title: "Not allowed", Message: "This address answers GET and POST only."})
		return
	}
	tok, err := s.Keys().Decode(tokText)
	switch {
	case err != nil && limited:
		tooMany()
		return
	case errors.Is(err, token.ErrForged):
		log.Warn("unsubscribe link with a token that does not verify", "err", err)
		s.invalid(w, r, client, cfg, "forged", http.StatusNotFound)
		return
	case err != nil:
		s.invalid(w, r, client, cfg, "malformed", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	c, err := s.copyOf(ctx, tok)
	if errors.Is(err, store.ErrNotFound) {
		log.Info("unsubscribe link for a send the store does not have", "send", tok.SendID)
		s.invalid(w, r, client, cfg, "unknown", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, log, err)
		return
	}
	switch tok.Kind {
	case token.Copy:
		s.unsubscribe(ctx, w, r, log, cfg, tokText, c)
	case token.Resubscribe:
		if s.now().Sub(tok.Time) > time.Duration(cfg.HTTP.UndoDays)*24*time.Hour {
			s.invalid(w, r, client, cfg, "unknown", http.StatusGone)
			return
		}
		s.resubscribe(ctx, w, r, log, cfg, tokText, c)
	}
}

// copyOf is the delivered copy a token names.
type copyOf struct {
	tok     token.Token
	send    store.Send
	display string // the sender's name for pages
	scope   *conf.Scope
}

func (s *Server) copyOf(ctx context.Context, tok token.Token) (copyOf, error) {
	send, err := s.Store.Send(ctx, tok.SendID)
	if err != nil {
		return copyOf{}, err
	}
	if send.Recipient == "" {
		// A message-level token (transactional mail to several
		// recipients) does not say whom to unsubscribe.
		return copyOf{}, fmt.Errorf("%w: send %d names no single recipient", store.ErrNotFound, tok.SendID)
	}
	sc, err := s.Store.Name(ctx, store.ScopeName, tok.Scope)
	if err != nil {
		return copyOf{}, err
	}
	if sc != send.Scope {
		return copyOf{}, fmt.Errorf("%w: token scope %q, send scope %q", store.ErrNotFound, sc, send.Scope)
	}
	c := copyOf{tok: tok, send: send, display: send.Scope}
	if c.scope = s.Config().Scope(send.Scope); c.scope != nil {
		c.display = c.scope.DisplayName
	}
	return c, nil
}

// oneClick reports whether the request body is the RFC 8058 §3.1 one:
// List-Unsubscribe=One-Click, form-encoded or multipart.
func oneClick(r *http.Request) bool {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return false
		}
		return r.PostForm.Get("List-Unsubscribe") == "One-Click"
	case "application/x-www-form-urlencoded", "":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return false
		}
		v, err := url.ParseQuery(strings.TrimSpace(string(b)))
		return err == nil && v.Get("List-Unsubscribe") == "One-Click"
	}
	return false
}

// covers says what an unsubscribe stops, for the pages: "all mail from
// Acme" and "no more mail from Acme", or "the "news" mail from Acme"
// and "no more of the "news" mail from Acme".
func covers(c copyOf) (what, noMore string) {
	if c.scope != nil && c.scope.UnsubscribeCovers == conf.CoverStream {
		w := fmt.Sprintf("the %q mail from %s", c.send.Stream, c.display)
		return w, "no more of " + w
	}
	return "all mail from " + c.display, "no more mail from " + c.display
}

func (s *Server) unsubscribe(ctx context.Context, w http.ResponseWriter, r *http.Request, log *slog.Logger, cfg *conf.Config, tokText string, c copyOf) {
	masked := Mask(c.send.Recipient)
	what, noMore := covers(c)
	if r.Method != http.MethodPost {
		s.stats.Pages.Add(1)
		s.page(w, http.StatusOK, pageData{
			Title:   "Unsubscribe from " + c.display + "?",
			Message: fmt.Sprintf("This stops %s to %s.", what, masked),
			Action:  cfg.HTTP.Path() + tokText, Field: "List-Unsubscribe", Value: "One-Click", Button: "Unsubscribe",
			Note: "Nothing changes unless you press the button.",
		})
		return
	}
	if !oneClick(r) {
		s.page(w, http.StatusBadRequest, pageData{Title: "Not understood", Message: "An unsubscribe request carries List-Unsubscribe=One-Click (RFC 8058)."})
		return
	}
	ev := store.Event{At: s.now(), Scope: c.send.Scope, Stream: c.send.Stream, Address: c.send.Recipient, SendID: c.tok.SendID,
		Source: "http", Diagnostic: "one-click unsubscribe (" + r.UserAgent() + ")"}
	stream := ""
	if c.scope != nil && c.scope.UnsubscribeCovers == conf.CoverStream {
		stream = c.send.Stream
	}
	prev, already, err := s.Store.Lookup(ctx, store.Query{Scope: c.send.Scope, Stream: stream, Address: c.send.Recipient, At: ev.At})
	if err != nil {
		s.fail(w, log, err)
		return
	}
	recorded := false
	if already && prev.Reason == store.Unsubscribe && prev.Address == c.send.Recipient && prev.Scope == c.send.Scope {
		// A provider retrying, or a second click: nothing to record.
		s.stats.Repeated.Add(1)
	} else {
		recorded = true
		if _, err := (rules.Rules{Store: s.Store, Config: cfg}).Unsubscribe(ctx, ev); err != nil {
			s.fail(w, log, err)
			return
		}
		s.stats.Unsubscribed.Add(1)
		log.Info("unsubscribed", "address", c.send.Recipient, "scope", c.send.Scope, "stream", c.send.Stream, "send", c.tok.SendID)
	}
	d := pageData{
		Title:   "You are unsubscribed",
		Message: fmt.Sprintf("%s will get %s.", masked, noMore),
	}
	// Only what this request did can be undone: an old link posted again
	// must not give its holder a way to take back an unsubscribe made
	// long ago.
	if cfg.HTTP.UndoDays > 0 && recorded {
		undo := c.tok
		undo.Kind, undo.Time = token.Resubscribe, ev.At
		if ut, err := s.Keys().Encode(undo); err == nil {
			d.Link, d.LinkText = cfg.HTTP.Path()+ut, "I did not mean to: subscribe me again"
			d.Note = fmt.Sprintf("The link to undo this works for %d days.", cfg.HTTP.UndoDays)
		}
	}
	// RFC 8058 §3.1: the answer to the POST is not a redirect.
	s.page(w, http.StatusOK, d)
}

func (s *Server) resubscribe(ctx context.Context, w http.ResponseWriter, r *http.Request, log *slog.Logger, cfg *conf.Config, tokText string, c copyOf) {
	masked := Mask(c.send.Recipient)
	if r.Method != http.MethodPost {
		s.stats.Pages.Add(1)
		s.page(w, http.StatusOK, pageData{
			Title:   "Subscribe again to " + c.display + "?",
			Message: fmt.Sprintf("This undoes the unsubscribe of %s.", masked),
			Action:  cfg.HTTP.Path() + tokText, Field: "confirm", Value: "yes", Button: "Subscribe again",
			Note: "Nothing changes unless you press the button.",
		})
		return
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("confirm") != "yes" {
		s.page(w, http.StatusBadRequest, pageData{Title: "Not understood", Message: "Use the button on the page to subscribe again."})
		return
	}
	// Undo only what the unsubscribe this link was given for did: its
	// entry (made when the link was, or later), and not when a bounce or
	// a complaint has come since (the entry in force keeps its first
	// reason, so removing it would lift those too).
	since := c.tok.Time
	var entry *store.Suppression
	err := s.Store.Suppressions(ctx, store.Filter{Scope: c.send.Scope, Address: c.send.Recipient, At: s.now()}, func(e store.Suppression) error {
		if e.Reason == store.Unsubscribe && (e.Stream == "" || e.Stream == c.send.Stream) && e.Address == c.send.Recipient &&
			!e.Created.Before(since) {
			entry = &e
		}
		return nil
	})
	if err != nil {
		s.fail(w, log, err)
		return
	}
	later := false
	if entry != nil {
		err = s.Store.Events(ctx, store.EventFilter{Scope: c.send.Scope, Address: c.send.Recipient, Since: since,
			Types: []store.EventType{store.Bounced, store.Complaint}}, func(ev store.Event) error {
			if ev.Type == store.Complaint || ev.Hard {
				later = true
			}
			return nil
		})
		if err != nil {
			s.fail(w, log, err)
			return
		}
	}
	if entry == nil || later {
		s.page(w, http.StatusOK, pageData{Title: "Nothing to undo", Message: fmt.Sprintf("%s is not unsubscribed from %s by a request this link can undo.", masked, c.display)})
		return
	}
	ev := store.Event{At: s.now(), Type: store.Resubscribed, Scope: c.send.Scope, Stream: entry.Stream, Address: c.send.Recipient,
		SendID: c.tok.SendID, Source: "http", Diagnostic: "undo link"}
	if _, err := s.Store.Record(ctx, ev, store.Change{Op: store.Unsuppress, Scope: c.send.Scope, Stream: entry.Stream, Address: c.send.Recipient}); err != nil {
		s.fail(w, log, err)
		return
	}
	s.stats.Resubscribed.Add(1)
	log.Info("subscribed again", "address", c.send.Recipient, "scope", c.send.Scope, "send", c.tok.SendID)
	what, _ := covers(c)
	s.page(w, http.StatusOK, pageData{Title: "You are subscribed again", Message: fmt.Sprintf("%s will get %s again.", masked, what)})
}

// invalid answers a link that is not valid: it changes nothing.
func (s *Server) invalid(w http.ResponseWriter, r *http.Request, client fmtAddr, cfg *conf.Config, why string, status int) {
	switch why {
	case "forged":
		s.stats.Forged.Add(1)
	case "unknown":
		s.stats.Unknown.Add(1)
	default:
		s.stats.Malformed.Add(1)
	}
	// A client that keeps trying bad links uses up its allowance fast.
	s.limits.allow(client, cfg.HTTP.RatePerMinute, s.now(), 9)
	s.page(w, status, pageData{Title: "This link is not valid", Message: "This unsubscribe link is not valid, or no longer is. If you still get mail you do not want, reply to it and ask to be removed."})
}

func (s *Server) fail(w http.ResponseWriter, log *slog.Logger, err error) {
	s.stats.Errors.Add(1)
	log.Error("unsubscribe request failed", "err", err)
	w.Header().Set("Retry-After", "60")
	s.page(w, http.StatusServiceUnavailable, pageData{Title: "Please try again", Message: "Your request could not be recorded just now. Please try again in a minute."})
}
