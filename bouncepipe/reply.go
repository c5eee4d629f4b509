package bouncepipe

// ClassifyReply classifies one failed or deferred delivery as an MTA's
// log reports it: status is the RFC 3463 enhanced status code the MTA
// logged ("5.1.1", Postfix's dsn=), text its explanation, which may
// quote the remote's reply and the command it answered, as Postfix
// writes "host mx.example.com[192.0.2.1] said: 550 5.1.1 <a@example.com>:
// Recipient address rejected: User unknown (in reply to RCPT TO
// command)". It returns what the returned DSN of the same failure would
// give: the Sisimai v5 reason name, whether the failure is hard
// (suppress the recipient at once) and whether it blames the sender
// (M3AAWG Sender BCP v3 §3.8). The rules are the ones Parse applies to a
// DSN's Status and Diagnostic-Code fields (RFC 3464 §2.3.4, §2.3.6).
//
// A status of class 2 gives "delivered"; a class 4 status is a
// deferral, never hard (RFC 5321 §4.2.1).
func ClassifyReply(status, text string) (reason string, hard, senderProblem bool) {
	r := Record{Status: findStatus(status)}
	reply := unfoldReply(text)
	if s := failureStatus(text); s != "" && (r.Status == "" || isGenericStatus(r.Status) && s[0] == r.Status[0]) {
		r.Status = s // a detail the logged code left out
	}
	r.ReplyCode = failureReplyCode(text)
	r.Command = commandIn(text)
	r.Action = actionFromStatus(r.Status)
	if r.Status == "" && len(r.ReplyCode) == 3 && r.ReplyCode[0] == '4' {
		r.Action = "delayed" // RFC 5321 §4.2.1: 4yz is transient
	}
	r.Diagnostic = trimDiagnostic(text)
	classify(&r, recordCtx{diag: scanTags(reply)})
	return r.Reason, r.Hard, r.SenderProblem
}
