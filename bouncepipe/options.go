package bouncepipe

// Options tell Parse who the message was delivered to and which addresses
// are ours. All fields are optional: without them Parse still classifies,
// it only finds no token candidates.
type Options struct {
	// Recipient is the envelope recipient of the returned message, as
	// pipe(8) passes it in ${recipient}: our VERP address
	// "<VERPPrefix>+<token>@<BounceDomain>", our unsubscribe address, or
	// a feedback-loop address.
	Recipient string
	// Sender is the envelope sender, pipe(8) ${sender}; "" for the null
	// sender that bounces use (RFC 5321 §4.5.5).
	Sender string

	// BounceDomain is the domain of our VERP and unsubscribe addresses.
	// Only addresses in it yield token candidates.
	BounceDomain string
	// VERPPrefix is the local-part prefix of the VERP envelope sender,
	// before the "+": "b" in "b+<token>@bounces.example.com".
	VERPPrefix string
	// UnsubscribePrefix is the local-part prefix of the List-Unsubscribe
	// mailto address: "u" in "u+<token>@bounces.example.com".
	UnsubscribePrefix string
	// UnsubscribeURL, when set, is the start of our List-Unsubscribe
	// https link ("https://example.com/u/"); a token is taken from a
	// link only when it starts so. When empty, the last path segment of
	// any https link in List-Unsubscribe is taken if it is shaped like a
	// token.
	UnsubscribeURL string

	// MaxPartBytes caps how much of each text part, and of the returned
	// original's header, is kept; 0 means DefaultMaxPartBytes.
	MaxPartBytes int
}

// Limits that keep memory bounded whatever the input.
const (
	// DefaultMaxPartBytes is the default Options.MaxPartBytes.
	DefaultMaxPartBytes = 32 << 10
	// maxHeaderBytes caps the top-level header and part headers.
	maxHeaderBytes = 256 << 10
	// maxKeptBytes caps everything kept from one message.
	maxKeptBytes = 2 << 20
	// maxParts caps the number of MIME parts looked at.
	maxParts = 256
	// maxDepth caps multipart nesting.
	maxDepth = 12
	// maxOriginalBody caps how much of the returned original's body is
	// kept to look for tokens.
	maxOriginalBody = 16 << 10
)

func (o *Options) partCap() int {
	if o.MaxPartBytes > 0 {
		return o.MaxPartBytes
	}
	return DefaultMaxPartBytes
}
