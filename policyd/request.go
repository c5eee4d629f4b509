// Package policyd is senderkit's Postfix SMTP access policy delegation
// server (Postfix SMTPD_POLICY_README): for each RCPT, smtpd sends a
// request of "name=value" lines ended by an empty line, and the server
// answers "action=..." and an empty line, on a connection smtpd keeps open
// for the next requests.
//
// The server refuses suppressed recipients in the sender's scope, and
// defers new mail for destinations that are tempfailing or rate-limiting
// our mail (M3AAWG Sender BCP v3 §3.8), as learnt from Postfix's own log.
package policyd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Request holds the attributes of one policy request that senderkit
// uses; the others are counted and ignored (SMTPD_POLICY_README: "the
// policy server ... must ignore attributes it does not know").
type Request struct {
	Request       string // "smtpd_access_policy"
	ProtocolState string // "RCPT", "DATA", "END-OF-MESSAGE", ...
	Sender        string
	Recipient     string
	ClientAddress string
	SASLUsername  string
	QueueID       string
	Instance      string // unique per message transaction
	PolicyContext string // smtpd_policy_service_policy_context, per master.cf service (Postfix 3.1)
	// Attributes is how many lines the request had.
	Attributes int
}

// Limits bound what one client may send.
type Limits struct {
	MaxLine       int // bytes in one "name=value" line, line end included
	MaxAttributes int // lines in one request
}

// Errors that end a client's connection; test with errors.Is.
var (
	ErrLineTooLong   = errors.New("policyd: request line too long")
	ErrTooManyLines  = errors.New("policyd: too many attributes in a request")
	ErrMalformedLine = errors.New("policyd: request line without '='")
)

// ReadRequest reads one request into req. The reader's buffer must hold
// at least lim.MaxLine bytes. It returns io.EOF when the client closed
// the connection between requests.
func ReadRequest(r *bufio.Reader, req *Request, lim Limits) error {
	*req = Request{}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > lim.MaxLine {
			return fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, lim.MaxLine)
		}
		if err != nil {
			if len(line) > 0 || req.Attributes > 0 {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("policyd: request cut short: %w", err)
			}
			return err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		if len(line) == 0 {
			if req.Attributes == 0 {
				continue // stray empty line between requests
			}
			return nil
		}
		req.Attributes++
		if req.Attributes > lim.MaxAttributes {
			return fmt.Errorf("%w: more than %d", ErrTooManyLines, lim.MaxAttributes)
		}
		name, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return fmt.Errorf("%w: %.40q", ErrMalformedLine, line)
		}
		req.set(name, value)
	}
}

func (req *Request) set(name, value []byte) {
	var dst *string
	switch string(name) { // no allocation: the compiler matches the bytes
	case "request":
		dst = &req.Request
	case "protocol_state":
		dst = &req.ProtocolState
	case "sender":
		dst = &req.Sender
	case "recipient":
		dst = &req.Recipient
	case "client_address":
		dst = &req.ClientAddress
	case "sasl_username":
		dst = &req.SASLUsername
	case "queue_id":
		dst = &req.QueueID
	case "instance":
		dst = &req.Instance
	case "policy_context":
		dst = &req.PolicyContext
	default:
		return
	}
	// The values Postfix repeats are kept without a copy.
	switch string(value) {
	case "RCPT":
		*dst = "RCPT"
	case "smtpd_access_policy":
		*dst = "smtpd_access_policy"
	default:
		*dst = string(value)
	}
}
