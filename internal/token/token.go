// Package token implements senderkit's signed per-copy tokens: the string
// carried in the VERP envelope sender, the List-Unsubscribe mailto and URL,
// and the undo link of the unsubscribe page.
//
// RFC 6449 §4.4 weighs three ways to recognise a returned copy: an opaque
// database key, encrypted data, and a hybrid. A token here is a hybrid: it
// carries the scope, the stream and the send time in the clear (all three
// are needed to attribute a complaint by send day, RFC 6449 §4.3.2), and
// names the recipient only by a random 63-bit send id that the store maps
// to the address, so a feedback provider that redacts the recipient from a
// report (RFC 6449 §4.1.4) does not see it repeated in the token. An
// HMAC-SHA256 truncated to 80 bits authenticates everything.
//
// Wire format, before encoding:
//
//	byte  0     version (high nibble, 1) | kind (low nibble)
//	byte  1     key id (1-255)
//	bytes 2-5   send time, seconds since 2020-01-01T00:00:00Z, big endian
//	bytes 6-13  send id, big endian, top bit clear
//	uvarint     scope id  (< 2^21, so at most 3 bytes)
//	uvarint     stream id (< 2^21)
//	10 bytes    HMAC-SHA256(key, "senderkit token v1" || all of the above)
//
// The bytes are written in lower-case base32 (RFC 4648 alphabet, no
// padding): case-insensitive, so an MTA that lower- or upper-cases the
// local part does no harm, and safe in a local part and in a URL path.
// A token is 42 characters for small ids and never more than MaxLen.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by Decode. Callers count forged tokens by testing
// errors.Is(err, ErrForged); ErrBadMAC and ErrUnknownKey both match it.
var (
	ErrMalformed  = errors.New("token: malformed")
	ErrForged     = errors.New("token: forged")
	ErrBadMAC     = fmt.Errorf("%w: bad mac", ErrForged)
	ErrUnknownKey = fmt.Errorf("%w: unknown key", ErrForged)
	ErrNoKey      = errors.New("token: no signing key")
)

// Kind says what a token may be used for; the kind is covered by the MAC,
// so an undo link cannot be replayed as an unsubscribe and vice versa.
type Kind uint8

const (
	// Copy names one delivered copy: VERP sender and List-Unsubscribe.
	Copy Kind = 1
	// Resubscribe is the signed undo link shown after an unsubscribe.
	Resubscribe Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Copy:
		return "copy"
	case Resubscribe:
		return "resubscribe"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

const (
	version  = 1
	macLen   = 10
	fixedLen = 14
	// MaxID is the largest scope or stream id a token can carry.
	MaxID = 1<<21 - 1
	// MaxSendID is the largest send id (63 bits, so it fits SQLite's
	// signed integer primary key).
	MaxSendID = 1<<63 - 1
	maxRawLen = fixedLen + 3 + 3 + macLen
	// MaxLen is the longest encoded token, in characters.
	MaxLen = (maxRawLen*8 + 4) / 5
	// minLen is the shortest encoded token (one-byte ids).
	minLen = ((fixedLen+2+macLen)*8 + 4) / 5
)

// Epoch is the zero of the token's clock.
var Epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var macPrefix = []byte("senderkit token v1")

// Token is the decoded content of a token string.
type Token struct {
	Kind   Kind
	KeyID  uint8     // key that signed it (set by Encode)
	Time   time.Time // send time, second resolution, UTC
	SendID uint64    // the send row naming scope, stream and recipient
	Scope  uint32    // scope id, as interned by the store
	Stream uint32    // stream id, as interned by the store
}

// Key is one HMAC secret of a key ring.
type Key struct {
	ID     uint8
	Secret []byte
}

// Keyring holds the keys that verify tokens; the one with the highest
// id signs new tokens. It is safe for concurrent use and immutable:
// rotation builds a new Keyring.
type Keyring struct {
	keys   map[uint8][]byte
	signer uint8
}

// MinSecret is the shortest accepted secret, in bytes.
const MinSecret = 16

// NewKeyring builds a key ring from keys; ids must be unique and
// non-zero and secrets at least MinSecret bytes long.
func NewKeyring(keys ...Key) (*Keyring, error) {
	kr := &Keyring{keys: make(map[uint8][]byte, len(keys))}
	for _, k := range keys {
		if k.ID == 0 {
			return nil, fmt.Errorf("token: key id 0 is reserved")
		}
		if len(k.Secret) < MinSecret {
			return nil, fmt.Errorf("token: key %d has a %d-byte secret, at least %d needed", k.ID, len(k.Secret), MinSecret)
		}
		if _, dup := kr.keys[k.ID]; dup {
			return nil, fmt.Errorf("token: key id %d given twice", k.ID)
		}
		kr.keys[k.ID] = append([]byte(nil), k.Secret...)
		if k.ID > kr.signer {
			kr.signer = k.ID
		}
	}
	return kr, nil
}

// Signer returns the id of the key that signs new tokens (0 if none).
func (kr *Keyring) Signer() uint8 { return kr.signer }

// Has reports whether the ring holds key id.
func (kr *Keyring) Has(id uint8) bool { _, ok := kr.keys[id]; return ok }

// Encode signs t with the newest key and returns its text form. t.KeyID
// is ignored.
func (kr *Keyring) Encode(t Token) (string, error) {
	if kr == nil || kr.signer == 0 {
		return "", ErrNoKey
	}
	switch {
	case t.Kind != Copy && t.Kind != Resubscribe:
		return "", fmt.Errorf("token: cannot encode kind %v", t.Kind)
	case t.SendID > MaxSendID:
		return "", fmt.Errorf("token: send id %d above %d", t.SendID, uint64(MaxSendID))
	case t.Scope > MaxID || t.Stream > MaxID:
		return "", fmt.Errorf("token: scope id %d or stream id %d above %d", t.Scope, t.Stream, MaxID)
	}
	secs := t.Time.Unix() - Epoch.Unix()
	if secs < 0 || secs > 1<<32-1 {
		return "", fmt.Errorf("token: time %v outside the token clock", t.Time)
	}
	b := make([]byte, 0, maxRawLen)
	b = append(b, version<<4|byte(t.Kind), kr.signer)
	b = binary.BigEndian.AppendUint32(b, uint32(secs))
	b = binary.BigEndian.AppendUint64(b, t.SendID)
	b = binary.AppendUvarint(b, uint64(t.Scope))
	b = binary.AppendUvarint(b, uint64(t.Stream))
	b = append(b, mac(kr.keys[kr.signer], b)...)
	return enc.EncodeToString(b), nil
}

// Decode parses and verifies s. Upper-case input is accepted. The error
// wraps ErrMalformed when s is not a token at all (truncated, wrong
// alphabet, wrong version), ErrUnknownKey when it names a key not in the
// ring, and ErrBadMAC when the signature does not match.
func (kr *Keyring) Decode(s string) (Token, error) {
	if len(s) < minLen || len(s) > MaxLen {
		return Token{}, fmt.Errorf("%w: %d characters, want %d to %d", ErrMalformed, len(s), minLen, MaxLen)
	}
	// Check the alphabet first, before any case folding (strings.ToLower
	// maps the Kelvin sign U+212A to 'k': a second spelling), and because
	// encoding/base32 skips '\r' and '\n', which would let a shorter
	// token through to the slicing below.
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; !(c >= 'a' && c <= 'z' || s[i] >= '2' && s[i] <= '7') {
			return Token{}, fmt.Errorf("%w: character %q", ErrMalformed, s[i])
		}
	}
	lower := strings.ToLower(s)
	b, err := enc.DecodeString(lower)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(b) < fixedLen+2+macLen {
		return Token{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0]>>4 != version {
		return Token{}, fmt.Errorf("%w: version %d", ErrMalformed, b[0]>>4)
	}
	t := Token{Kind: Kind(b[0] & 0x0f), KeyID: b[1]}
	t.Time = Epoch.Add(time.Duration(binary.BigEndian.Uint32(b[2:6])) * time.Second)
	t.SendID = binary.BigEndian.Uint64(b[6:14])
	rest := b[fixedLen:]
	scope, n := binary.Uvarint(rest)
	if n <= 0 || scope > MaxID {
		return Token{}, fmt.Errorf("%w: bad scope id", ErrMalformed)
	}
	rest = rest[n:]
	stream, n := binary.Uvarint(rest)
	if n <= 0 || stream > MaxID {
		return Token{}, fmt.Errorf("%w: bad stream id", ErrMalformed)
	}
	rest = rest[n:]
	if len(rest) != macLen {
		return Token{}, fmt.Errorf("%w: %d trailing bytes, want %d", ErrMalformed, len(rest), macLen)
	}
	if t.SendID > MaxSendID || (t.Kind != Copy && t.Kind != Resubscribe) {
		return Token{}, fmt.Errorf("%w: bad send id or kind", ErrMalformed)
	}
	// Reject non-canonical encodings (stray bits in the last character),
	// so that one token has exactly one spelling.
	if enc.EncodeToString(b) != lower {
		return Token{}, fmt.Errorf("%w: non-canonical encoding", ErrMalformed)
	}
	t.Scope, t.Stream = uint32(scope), uint32(stream)
	if kr == nil {
		return Token{}, fmt.Errorf("%w %d", ErrUnknownKey, t.KeyID)
	}
	key, ok := kr.keys[t.KeyID]
	if !ok {
		return Token{}, fmt.Errorf("%w %d", ErrUnknownKey, t.KeyID)
	}
	body := b[:len(b)-macLen]
	if !hmac.Equal(mac(key, body), b[len(b)-macLen:]) {
		return Token{}, ErrBadMAC
	}
	return t, nil
}

func mac(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(macPrefix)
	h.Write(body)
	return h.Sum(nil)[:macLen]
}
