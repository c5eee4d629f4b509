package bouncepipe

import (
	"encoding/json"
	"fmt"
	"io"
)

// Token verdicts, as ClassifyJSON writes them.
const (
	TokenVerified = "verified"
	TokenForged   = "forged"
	TokenNone     = "none"
)

// ClassifyLine is one line of `senderkit bouncepipe classify` output: one
// per record of a report, or one with an empty recipient for a report
// without records. The field order is the output's.
type ClassifyLine struct {
	File         string `json:"file"`
	Recipient    string `json:"recipient"`
	Reason       string `json:"reason"`
	Hard         bool   `json:"hard"`
	Status       string `json:"status"`
	ReplyCode    string `json:"reply_code"`
	FeedbackType string `json:"feedback_type"`
	Token        string `json:"token"`
}

// TokenVerdict sums up the report's token candidates: "verified" when
// status says so of any of them, else "forged" when it says so of any,
// else "none". status is the caller's check against its key ring; it
// returns TokenVerified, TokenForged or TokenNone (not a token at all). A
// nil status verifies nothing.
func TokenVerdict(rep *Report, status func(Candidate) string) string {
	if status == nil {
		return TokenNone
	}
	verdict := TokenNone
	for _, c := range rep.Tokens {
		switch status(c) {
		case TokenVerified:
			return TokenVerified
		case TokenForged:
			verdict = TokenForged
		}
	}
	return verdict
}

// ClassifyLines returns the output lines for one parsed file.
func ClassifyLines(file string, rep *Report, status func(Candidate) string) []ClassifyLine {
	tok := TokenVerdict(rep, status)
	ft := ""
	if rep.Kind == Complaint || rep.Kind == Unsubscribe {
		ft = rep.FeedbackType
	}
	if len(rep.Records) == 0 {
		return []ClassifyLine{{File: file, FeedbackType: ft, Token: tok}}
	}
	out := make([]ClassifyLine, 0, len(rep.Records))
	for _, r := range rep.Records {
		out = append(out, ClassifyLine{
			File:         file,
			Recipient:    r.Recipient,
			Reason:       r.Reason,
			Hard:         r.Hard,
			Status:       r.Status,
			ReplyCode:    r.ReplyCode,
			FeedbackType: ft,
			Token:        tok,
		})
	}
	return out
}

// ClassifyJSON writes the classify lines of one parsed file to w, one
// JSON object per line:
//
//	{"file":"x.eml","recipient":"a@example.com","reason":"userunknown","hard":true,"status":"5.1.1","reply_code":"550","feedback_type":"","token":"none"}
func ClassifyJSON(w io.Writer, file string, rep *Report, status func(Candidate) string) error {
	for _, l := range ClassifyLines(file, rep, status) {
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("bouncepipe: encoding the result for %s: %w", file, err)
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("bouncepipe: writing the result for %s: %w", file, err)
		}
	}
	return nil
}
