package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/senderkit/senderkit/internal/store"
)

// forward passes the message, intact, to the role address and records
// that it did. A relay that refuses for now gives ErrTemporary (Postfix
// retries the whole message: what was already recorded is not recorded
// twice); one that refuses for good quarantines the message instead, so
// it is still not lost.
//
// Forwarding is at least once: should the process die between the relay
// accepting the message and its exit, Postfix hands the message over
// again and it is forwarded again.
func (p *processing) forward(ctx context.Context) error {
	to := p.in.Config.Bounce.ForwardTo
	fwd := p.in.Forward
	if fwd == nil {
		fwd = SMTPForward(p.in.Config.Bounce.ForwardRelay)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%w: %w", ErrTemporary, err)
	}
	err := fwd(ctx, to, p.env.Recipient, p.f)
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		p.log.Error("the relay refused the forwarded message for good", "to", to, "err", err)
		_, qerr := p.quarantine(ctx, fmt.Sprintf("forwarding to %s refused: %v", to, err))
		return qerr
	}
	if err != nil {
		return fmt.Errorf("%w: forward to %s: %v", ErrTemporary, to, err)
	}
	ev := p.event(0, "")
	ev.Type, ev.Key = store.Forwarded, p.key+":forwarded"
	if p.attr != nil {
		ev.Address = p.recipient(nil)
	}
	ev.Diagnostic = fmt.Sprintf("%s mail to %s, from %q, subject %q, forwarded to %s", p.rep.Kind, p.env.Recipient, p.rep.From, p.rep.Subject, to)
	p.log.Info("forwarded to a person", "kind", p.rep.Kind, "to", to, "from", p.rep.From, "subject", p.rep.Subject)
	if err := p.record(p.rules().Note(ctx, ev)); err != nil {
		return err
	}
	p.out.Action = "forwarded"
	return nil
}

// SMTPForward returns a forwarder that hands messages to the SMTP server
// at relay with the null sender (RFC 5321 §4.5.5: a role mailbox that
// fails must not bounce back into the bounce domain) and a trace header
// naming the address the message came to.
func SMTPForward(relay string) func(ctx context.Context, to, forRcpt string, msg io.Reader) error {
	return func(ctx context.Context, to, forRcpt string, msg io.Reader) error {
		d := net.Dialer{Timeout: 30 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", relay)
		if err != nil {
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		} else {
			conn.SetDeadline(time.Now().Add(5 * time.Minute))
		}
		c := smtp.NewClient(conn)
		defer c.Close()
		if err := c.Hello("senderkit-bouncepipe"); err != nil {
			return err
		}
		if err := c.Mail("", nil); err != nil {
			return err
		}
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		// Only a trace field is added: the message itself is passed on
		// intact (RFC 5321 §4.4 allows prepending trace information).
		clean := strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return -1
			}
			return r
		}, forRcpt)
		if _, err := fmt.Fprintf(w, "X-Senderkit-Forwarded-For: <%s>\r\n", clean); err != nil {
			return err
		}
		if _, err := io.Copy(w, msg); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	}
}
