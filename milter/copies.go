package milter

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strings"
	"sync"
)

// Per-copy tokens (issue #4, item 5). A milter sees one envelope, and
// one header, for all the recipients of a message; but the VERP sender
// and the List-Unsubscribe links of a bulk copy must name exactly one
// recipient. So a bulk message for N recipients leaves as N messages:
// the milter keeps the first recipient on the original and, before it
// accepts the original, submits one copy per other recipient to a
// dedicated Postfix smtpd service (milter.copy_service). Each copy
// passes through this milter again, on its own, and is signed, VERPed
// and recorded with its own queue ID like any one-recipient message.
//
// The copy carries a ticket in copyHeader (removed on its pass) that
// names the scope, stream and message key the original's pass chose.
// Tickets live only in this process's memory for as long as the
// original's pass waits for its copies, so they cannot be forged and
// need no key.
//
// A retried submission must not mail anyone twice. Every bulk send is
// recorded with the message's fingerprint (its message key: envelope
// sender, header and body as submitted) before the milter lets Postfix
// queue it; the original's pass skips the recipients whose copy is
// already recorded within milter.dedupe_window, and a copy or original
// that turns out to be already recorded is discarded.

// copyHeader carries a copy's ticket from the original's pass to the
// copy's own pass.
const copyHeader = "X-Senderkit-Copy"

// pendingCopy is what the original's pass decided for one copy.
type pendingCopy struct {
	scope, stream string
	key           string // the original's message key
	rcpt          string // the normalised recipient
	origQueueID   string
}

// tickets holds the copies being queued, by ticket.
type tickets struct {
	mu sync.Mutex
	m  map[string]*pendingCopy
}

// put registers a copy and returns its ticket.
func (t *tickets) put(c *pendingCopy) string {
	b := make([]byte, 16)
	rand.Read(b)
	tk := hex.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*pendingCopy{}
	}
	t.m[tk] = c
	return tk
}

// get returns the copy a ticket names.
func (t *tickets) get(tk string) (*pendingCopy, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[strings.TrimSpace(tk)]
	return c, ok
}

// drop forgets a ticket.
func (t *tickets) drop(tk string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, tk)
}

// fingerprint hashes a submission: the envelope sender, the header as
// submitted and the body. It leaves out what differs between two
// submissions of the same message: trace fields, a Message-ID that
// Postfix made up because the message had none (it holds the queue ID,
// new for each submission), and the Date of any message with a
// Message-ID: the application's Message-ID names its message, and a
// Date that Postfix added (to a message from a local client that set
// none) is new for each submission too.
type fingerprint struct{ h hash.Hash }

func newFingerprint(sender string, fs fields, queueID string) *fingerprint {
	h := sha256.New()
	h.Write([]byte("senderkit message v1\x00" + sender + "\x00"))
	ids := fs.get("Message-ID")
	postfixMade := false
	if queueID != "" {
		for _, v := range ids {
			if strings.Contains(v, "."+queueID+"@") {
				postfixMade = true
			}
		}
	}
	for _, f := range fs {
		switch strings.ToLower(f.name) {
		case "received", "return-path", strings.ToLower(copyHeader):
			continue
		case "message-id":
			if postfixMade {
				continue
			}
		case "date":
			if len(ids) > 0 {
				continue
			}
		}
		h.Write([]byte(strings.ToLower(f.name) + ":" + strings.TrimSpace(f.value) + "\x00"))
	}
	h.Write([]byte{0})
	return &fingerprint{h}
}

func (f *fingerprint) Write(p []byte) (int, error) { return f.h.Write(p) }

// key is the message key: 128 bits of the hash, in base64url.
func (f *fingerprint) key() string {
	return base64.RawURLEncoding.EncodeToString(f.h.Sum(nil)[:16])
}
