package bouncepipe

// Wording other than reasons: how reports, delays, auto-replies and the
// returned original announce themselves. All the phrase lists share one
// matcher, so a text is read once for all of them.

const (
	listBounceSubject = iota
	listBounceFrom
	listBounceBody
	listDelay
	listDelayFailed
	listAutoSubject
	listAutoBody
	listChallenge
	listUnsubscribe
	listMarker
	listMarkerLine
	numLists
)

var otherLists = [numLists][]string{
	listBounceSubject: {
		"undeliverable", "undelivered", "not delivered", "delivery status notification", "delivery failed", "delivery has failed",
		"delivery failure", "failure notice", "returned mail", "mail delivery failed|failure|problem|error|system|subsystem|warning",
		"delivery problem", "non delivery", "nondelivery", "nondeliverable", "non deliverable", "could not be? delivered",
		"couldn't be delivered", "cannot be delivered", "unable to deliver", "delivery report", "delivery error",
		"mail system error", "message not delivered", "message delayed", "message blocked", "could not send", "delayed mail",
		"delivery delayed", "delivery ~ delayed", "bounce", "bounced", "returned to sender", "delivery notification", "unzustellbar",
		"nicht zustellbar", "non recapitabile", "non remis", "non distribuable", "onbestelbaar", "no se puede entregar", "no entregado",
		"failed delivery", "permanent error", "mail error", "error sending", "mail failed", "returning ~ to sender", "delivery warning",
		"user unknown", "unknown user", "no such user", "mailbox full", "mailbox is full", "over quota", "rejected",
		"mail failure", "malformed recipient|address",
	},
	listBounceFrom: {
		"mailer daemon", "mailerdaemon", "postmaster", "mail delivery system|subsystem|service", "mail administrator",
		"system administrator", "mail system", "mailsystem", "mail server", "delivery system|subsystem|notification", "mmdf",
		"smtp gateway", "internet mail delivery", "mail router", "mail gateway", "mdaemon",
	},
	listBounceBody: {
		"could|cannot|couldn't|can't not? be delivered|sent|forwarded|transmitted", "was|wasn't|has|hasn't|have not? yet? been delivered|sent",
		"unable|failed to deliver", "not able to deliver", "wasn't able to deliver", "was unable to deliver", "delivery to the following",
		"delivery has failed", "delivery failed", "delivery of your message", "delivery attempts will continue",
		"delivery status notification", "delivery problem", "delivery failure",
		"permanent|fatal|temporary|transient fatal? error|errors|failure|failures", "following address|addresses|recipient|recipients|destination",
		"undeliverable", "undelivered", "non delivery", "not delivered", "not be delivered", "did not reach", "could not reach",
		"message could not", "returned to the? sender", "this is the qmail send", "this is the mail delivery|system",
		"this is the postfix", "mail delivery software|system|subsystem", "was not delivered", "is undeliverable", "user unknown",
		"unknown user", "no such user|mailbox|recipient|address", "mailbox is? full|unavailable", "transcript of session",
		"rcpt to", "remote host|server said|replied", "remote mail server said", "nicht zugestellt", "unzustellbar",
		"no pudo ser entregado", "n'a pas pu", "non è stato", "niet bezorgd", "failed addresses", "no valid recipients", "postponed",
		"full mailbox", "incorrectly constructed", "malformed address",
	},
	listDelay: {
		"has not yet been delivered", "not been delivered yet", "will continue|keep to? try|trying|attempt|attempting",
		"delivery attempts will continue", "will be retried", "still being? retried|trying|queued", "this is just? a warning",
		"you do not need to take any action", "you do not need to resend", "no action is required", "will try again",
		"will try to deliver", "retry will continue", "delayed", "temporarily deferred|delayed", "warning message only",
		"only a temporary failure",
	},
	listDelayFailed: {
		"permanent error|failure", "permanently failed", "i've|i have|has been|have been given up", "giving up",
		"could not be delivered to one or more", "has been removed from the mail? queue", "will not be retried",
		"delivery has failed", "failed permanently", "fatal error|errors",
	},
	listAutoSubject: {
		"automatic|automatische|automatisk|automatique|automatica|auto reply|response|antwort|svar|réponse|respuesta|risposta|antwoord|vastaus",
		"autoreply", "autoresponse", "autoresponder", "autorespond", "out of office", "out of the office", "ooo",
		"away from the? office", "on vacation", "vacation", "abwesenheit*", "abwesend", "réponse automatique", "absence",
		"respuesta automática", "fuera de la oficina", "risposta automatica", "automatisch antwoord", "afwezig", "fravær",
		"automaattinen", "odpowiedź automatyczna",
	},
	listAutoBody: {
		"out of the? office", "i am|i'm|i will be currently? away|out", "i am|i'm|i will be currently? on vacation|holiday|leave",
		"on vacation|holiday|leave until|from|and", "will be back", "return on", "returning on", "return to the office",
		"limited access to my? email", "no|without access to my? email", "away from my? desk|email|office",
		"this is an automatic reply|response|message", "this is an automatically generated reply|response|message",
		"auto reply|response", "automatic reply|response", "automated reply|response",
		"thank you for your? email|message ~ will|shall respond|reply|get back", "i|we will|shall ~ respond|reply as soon as",
		"get back to you as soon as|shortly",
	},
	listChallenge: {
		"verify|confirm|prove that? you are|you're a? human|real person", "verify|confirm|prove that? you are|you're not a robot|spammer",
		"link ~ confirm|verify", "link ~ to be added", "have your address added", "whitelist", "allowed list", "approved senders",
		"added to ~ allowed|approved|white|safe|trusted list|senders", "sender verification", "challenge response",
		"antispam verification|confirmation", "anti spam verification|confirmation", "awaiting your? verification|confirmation",
		"held pending your? verification|confirmation", "held until you verify|confirm", "this account|mailbox|address is protected by",
	},
	listUnsubscribe: {
		"unsubscribe", "unsub", "remove me", "opt out", "optout", "stop sending|emailing me", "take me off", "remove me from",
		"désabonner", "desinscription", "désinscription", "abmelden", "austragen", "darse de baja", "baja", "cancellami",
		"uitschrijven", "afmelden",
	},
	listMarker: {
		"original message|mail|email", "copy of the|your message|mail", "returned message|mail", "unsent message|mail",
		"undelivered message|mail", "undeliverable message|mail", "rejected message", "bounced message",
		"message|mail header|headers|text|body|envelope follows|follow|below|following", "header|headers of the? original|returned|your message|mail",
		"below this line", "message follows", "rfc822", "rfc 822", "attached message", "included is a copy", "your message reads",
		"summary of the undelivered message", "message header", "message headers",
	},
	listMarkerLine: {
		"original message follows", "original message", "the original message follows", "original message headers",
		"below this line is a copy of the message", "a copy of the original message below this line",
		"copy of the original message below|follows", "the original message is attached", "original message attached",
		"your message reads in part", "your message reads", "a summary of the undelivered message you sent follows",
		"returned message follows", "unsent message follows", "original message below", "message header follows",
	},
}

// wording is the one matcher for the reason rules and the lists above:
// tag i < len(textRules) is textRules[i], tag len(textRules)+L is list L.
var wording = func() *matcher {
	var lists [][]string
	for _, r := range textRules {
		lists = append(lists, r.phrases)
	}
	lists = append(lists, otherLists[:]...)
	return newMatcher(lists)
}()

func listTag(l int) int { return len(textRules) + l }
