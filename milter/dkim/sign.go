package dkim

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// Signed are the header fields a signature covers when present (RFC 6376
// §5.4.1's list, plus the fields senderkit adds: Message-ID,
// List-Unsubscribe-Post (RFC 8058 §4 asks for it) and Feedback-ID, and
// the MIME fields that decide how the body reads).
var Signed = []string{
	"From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"In-Reply-To", "References",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe",
	"List-Post", "List-Owner", "List-Archive", "Feedback-ID",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Message-ID",
}

// Oversigned are named in h= once more than they occur (RFC 6376
// §8.15), so that no instance can be added after signing, absent ones
// included.
var Oversigned = map[string]bool{
	"From": true, "Subject": true, "Date": true, "To": true, "Message-ID": true,
	"List-Unsubscribe": true, "List-Unsubscribe-Post": true, "Feedback-ID": true,
}

// HeaderKeys is the h= list for a header whose fields are named names:
// each field of Signed as often as it occurs, once more if Oversigned.
func HeaderKeys(names []string) []string {
	count := map[string]int{}
	for _, n := range names {
		count[strings.ToLower(n)]++
	}
	var keys []string
	for _, s := range Signed {
		n := count[strings.ToLower(s)]
		if Oversigned[s] {
			n++
		}
		for range n {
			keys = append(keys, s)
		}
	}
	return keys
}

// Signing makes the signatures of one message as it streams past:
// Start takes the final header block, Write the body, Finish returns
// the DKIM-Signature field values.
type Signing struct {
	signers []*msgauth.Signer
	w       io.Writer
	err     error
	aborted atomic.Bool // Abort: the keys refuse to sign
}

// errAborted is what a key says once its message is aborted.
var errAborted = errors.New("dkim: message aborted")

// abortable is a key that refuses to sign once its message is aborted:
// go-msgauth signs when a Signer is closed, and closing is the only way
// to stop one, so without it an aborted message would still pay for
// its signature (an RSA-2048 one is a third of a millisecond).
type abortable struct {
	crypto.Signer
	aborted *atomic.Bool
}

func (a abortable) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if a.aborted.Load() {
		return nil, errAborted
	}
	return a.Signer.Sign(rand, digest, opts)
}

// Start begins signing with choices. header is the complete header
// block as the recipient will see it, each field ending in CRLF, and
// the empty line after it; keys is the h= list.
func Start(choices []Choice, keys []string, header []byte) (*Signing, error) {
	s := &Signing{}
	var ws []io.Writer
	for _, c := range choices {
		sg, err := msgauth.NewSigner(&msgauth.SignOptions{
			Domain:                 c.Domain,
			Selector:               c.Selector,
			Identifier:             c.Identity,
			Signer:                 abortable{c.Key, &s.aborted},
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
			BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
			HeaderKeys:             keys,
		})
		if err != nil {
			s.Abort()
			return nil, fmt.Errorf("dkim: signer d=%s s=%s: %w", c.Domain, c.Selector, err)
		}
		s.signers = append(s.signers, sg)
		ws = append(ws, sg)
	}
	s.w = io.MultiWriter(ws...)
	if _, err := s.w.Write(header); err != nil {
		s.Abort()
		return nil, fmt.Errorf("dkim: header: %w", err)
	}
	return s, nil
}

// Write feeds body bytes (CRLF line ends) to every signer.
func (s *Signing) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Finish completes the signatures and returns each DKIM-Signature field's
// value (what follows "DKIM-Signature:"), folded with CRLF.
func (s *Signing) Finish() ([]string, error) {
	var sigs []string
	var errs []error
	for _, sg := range s.signers {
		if err := sg.Close(); err != nil {
			errs = append(errs, err)
			continue
		}
		f := sg.Signature()
		name, value, ok := strings.Cut(f, ":")
		if !ok || !strings.EqualFold(name, "DKIM-Signature") {
			errs = append(errs, fmt.Errorf("unexpected signature field %q", f))
			continue
		}
		sigs = append(sigs, strings.TrimSuffix(value, "\r\n"))
	}
	s.signers = nil
	if err := errors.Join(s.err, errors.Join(errs...)); err != nil {
		return nil, fmt.Errorf("dkim: sign: %w", err)
	}
	return sigs, nil
}

// Abort stops the signers without signing.
func (s *Signing) Abort() {
	s.aborted.Store(true)
	for _, sg := range s.signers {
		sg.Close()
	}
	s.signers = nil
}

// CRLF returns b with every bare LF turned into CRLF: Postfix hands a
// milter folded header values with LF alone (GO-MILTER-NOTES).
func CRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
