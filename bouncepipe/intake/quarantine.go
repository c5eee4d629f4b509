package intake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/senderkit/senderkit/internal/store"
)

// quarantine keeps the message in the quarantine directory with a note
// saying why, records that it did, and acknowledges the message: the
// bounce pipe must never make Postfix bounce a bounce. If the message
// cannot be kept, the error is ErrTemporary, so Postfix keeps it instead.
func (p *processing) quarantine(ctx context.Context, why string) (Outcome, error) {
	dir := p.in.Config.Path(p.in.Config.Bounce.QuarantineDir)
	name := strings.TrimPrefix(p.key, "bp:")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return p.out, fmt.Errorf("%w: quarantine: %v", ErrTemporary, err)
	}
	if err := p.copyTo(filepath.Join(dir, name+".eml")); err != nil {
		return p.out, fmt.Errorf("%w: quarantine: %v", ErrTemporary, err)
	}
	note := fmt.Sprintf("recipient: %s\nsender: %s\nreceived: %s\nwhy: %s\n", p.env.Recipient, p.env.Sender, p.at.UTC().Format("2006-01-02T15:04:05Z"), why)
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(note), 0o640); err != nil {
		return p.out, fmt.Errorf("%w: quarantine: %v", ErrTemporary, err)
	}
	p.log.Warn("message quarantined", "file", filepath.Join(dir, name+".eml"), "why", why)
	ev := store.Event{At: p.at, Type: store.Quarantined, Source: "bouncepipe", Diagnostic: why + " (" + name + ".eml)", Key: p.key + ":quarantined"}
	if err := p.record(p.rules().Note(ctx, ev)); err != nil {
		// Kept on disk, but the event could not be written: retrying
		// keeps the count honest and overwrites the same file.
		return p.out, err
	}
	p.out.Action = "quarantined"
	return p.out, nil
}

// copyTo writes the message to path through a temporary file, so that a
// crash never leaves half a message behind.
func (p *processing) copyTo(path string) error {
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".quarantine-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, p.f)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
