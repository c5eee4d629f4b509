package bouncepipe

// The wording of failure replies, per reason. The rules are tried in
// order on the words of a diagnostic; the first that matches decides. The
// wording is what MTAs and the large mailbox providers write in their
// replies, in general terms (phrase syntax in phrase.go); the order puts
// the specific before the general: a "mailbox full" reply often also says
// "user", a blocklist reply often also says "rejected".

// A textRule names a reason and the phrases that say it.
type textRule struct {
	reason  string
	phrases []string
	// early marks a rule placed before the others of its reason for its
	// specific wording; a status code naming the reason is weighed at the
	// reason's main rule, not here.
	early bool
	// weak marks wording too vague to stand against a precise status
	// code: it is read only when the code names nothing.
	weak bool
	// directory marks the words a recipient's own mail system writes
	// when its directory has no such address.
	directory bool
}

func rule(reason string, phrases ...string) textRule {
	return textRule{reason: reason, phrases: phrases}
}

func earlyRule(reason string, phrases ...string) textRule {
	return textRule{reason: reason, phrases: phrases, early: true}
}

func directoryRule(reason string, phrases ...string) textRule {
	return textRule{reason: reason, phrases: phrases, early: true, directory: true}
}

func weakRule(reason string, phrases ...string) textRule {
	return textRule{reason: reason, phrases: phrases, weak: true}
}

var textRules = []textRule{
	// The recipient's own filtering, said in so many words.
	earlyRule("filtered",
		"user|recipient refuses|rejects", "user|recipient has refused", "user|recipient does not want",
		"refused due|by to? the? recipient", "refused due to recipient preferences",
		"blocked by the? recipient", "recipient preferences", "recipient has blocked",
		"recipient's filter|rules|settings", "user's|user filter|rules", "user rules",
		"only accepting|accepts|accept mail|messages|email from", "you have been blocked by",
		"sender is on the? user's|recipient's block*", "badrcptto", "badrecipientto", "bad recipient list"),

	// Too many connections or too fast from our address: a limit, not a
	// blocklist.
	earlyRule("toomanyconn", "connection rate|frequency ~ limit*|exceeded", "ip frequency limit*", "frequency limited", "too many connections"),
	// A blocklisted link in the message is its content, not our address.
	earlyRule("spamdetected", "blacklisted|blocklisted|listed url|urls|link|links|uri|uris", "uribl", "surbl"),
	// Postfix's reject_unknown_client_hostname and its likes say "Client
	// host rejected" too: the missing reverse name is the reason.
	earlyRule("requireptr", "cannot|can't|couldn't find|resolve your reverse? hostname", "cannot|can't|couldn't find|resolve your reverse? host name",
		"could not find|resolve your reverse? hostname", "could not find|resolve your reverse? host name",
		"reverse dns|hostname|lookup ~ failed|missing|required|mismatch",
		// An IP whose name does not verify: the receiver takes mail
		// from only so many of them.
		"unverifiable|unverifyable sending|client? ip|ips|host|hosts"),
	// Blocklists name the sender's IP or domain: they come before the
	// wording about the recipient, which such replies often also have.
	rule("blocked",
		"blocked using", "is|are|was|been|currently|ip|host|address|domain|sender|server listed at|in|on|by",
		"is|are|was|been|currently|ip|host|address|domain|sender|server ~ listed at|in|on|by",
		"blacklist*", "black list*", "blocklist*", "block list*", "denylist*", "deny list*",
		"spamhaus", "barracuda*", "spamcop", "sorbs", "cbl", "psbl", "uceprotect", "dnsbl", "rbl", "rbls",
		"your|the|sender's|sending|client|connecting|remote ip|host|server|network|netblock|mta ~ blocked|banned|blacklisted|blocklisted",
		"blocked|banned|rejected|refused because|due to? your|the ip|sending|server|host|network",
		"client host ~ rejected|blocked|refused", "connection refused|rejected|denied|blocked by|from|due|because",
		"dynamic ip|address|pool", "dialup", "dial up", "residential ip|address|range",
		"use the smtp server of your isp", "use your isp|isp's|provider|provider's smtp|mail|relay",
		"not allowed to send mail from", "your ip|host|server|network|domain address? is|has ~ on|in|listed|blocked|banned",
		"refused to talk to me", "banned|blocked|blacklisted|blocklisted sending|client|your|source? ip",
		"not accepting connections", "ip address ~ blocked|banned|blacklisted|blocklisted", "too many unwanted messages"),
	rule("badreputation", "reputation", "senderscore", "sender score", "sender is? untrusted", "sender is? not trusted"),
	rule("notcompliantrfc",
		"not rfc|standard|standards compliant", "rfc 5322|2822|822|5321|2821 compliant|compliance|violation|standard|format|section",
		"rfc5322|rfc2822|rfc822|rfc5321 compliant|compliance|violation|standard|format|section",
		"multiple|duplicate header|headers", "multiple|duplicate from|to|subject|date|sender header?", "multiple|duplicate message id header?",
		"more than one from|to|subject|date|sender|message header|field|headers", "multiple addresses in from", "missing a? required? from|date|message|to|subject? header",
		"header|headers is|are? malformed|invalid|missing", "bare lf|cr|newline", "invalid header|from", "invalid message id"),
	rule("spamdetected",
		"spam*", "antispam", "dspam", "junk", "unsolicited", "bulk mail|email", "uribl", "surbl", "dbl", "spamassassin",
		"content filter*|reject*|blocked|scan*", "message content? was? rejected|blocked as|by|due content|spam|our",
		"rejected as|due to? content|bulk|suspicious", "suspicious|objectionable|prohibited|forbidden|blocked content|url|link|words",
		"looks like spam", "appears to be spam|unsolicited|bulk", "classified as", "high spam? score", "score too high", "phish*",
		"message was? identified|detected|flagged|considered as", "mail flood", "url in the? message|body", "blocked url"),
	// Not "virus*": scanners' names ("InterScan VirusWall") and
	// banners ("virus-checked") are no finding.
	rule("virusdetected", "virus", "viruses", "virusdetected", "malware", "worm", "trojan*", "infected", "malicious content|attachment|code|software"),
	// A quota on what we send is a rate limit, not a full mailbox.
	earlyRule("speeding", "daily|hourly|relay|sending|send|outbound ~ quota", "quota ~ per hour|day"),
	// A mailbox over its size is full, whatever the message's size.
	earlyRule("mailboxfull", "mailbox|inbox|account exceeds|exceeded", "user mailbox exceeds|exceeded"),
	rule("mesgtoobig",
		"message ~ exceeds|exceed", "message is? larger than", "message is? too big|large|long", "mail|message|email|message's size ~ exceed*|limit|too",
		"size limit", "too big|large for", "exceeds the? maximum? allowed|permitted? message size", "maximum message? size",
		"message length exceeds", "file too large", "size exceeds", "larger than the? maximum|allowed", "line limit exceeded"),
	rule("exceedlimit", "exceed* the? per mailbox size? limit", "exceed* the? administrative|mailbox size? limit", "message length exceeds administrative"),
	rule("mailboxfull",
		"mailbox ~ full|overquota|overfull", "mailbox ~ over quota", "quota", "overquota", "over quota",
		"mailfolder is? full", "mail folder is? full", "storage|space|disk quota|limit|full", "exceeded the? storage|size|mailbox|quota",
		"inbox|account|user|recipient|mailbox|box|user's|recipient's ~ full", "inbox|account|mailbox is|has full|exceeded",
		"too many messages", "has too many messages", "not enough disk|storage? space in|for the|this? mailbox|account|user",
		"insufficient mailbox|account|user space|storage", "mailbox size", "full mailbox", "would exceed mailbox|quota",
		"exceed|exceeds|exceeded its|their|his|her|the mailbox|quota|storage|space",
		"postfach ist? voll", "boîte aux? lettres? pleine", "casella piena", "buzón|buzon|casilla|mailbox lleno|llena"),
	rule("systemfull", "system storage|disk? full", "insufficient system storage", "disk|filesystem|spool|partition is? full",
		"file system is? full", "out of disk|storage? space", "no space left", "insufficient disk|storage? space", "not enough disk|system? space|storage", "mail system full"),
	rule("suspend",
		"account|mailbox|user|address|recipient|account's ~ disabled|suspended|deactivated|inactive|locked|frozen|closed|terminated|cancelled|canceled|discontinued",
		"account|mailbox ~ blocked|expired", "account|mailbox ~ on hold",
		"disabled|suspended|deactivated|inactive|locked|closed|expired account|mailbox|user|address",
		"account is? temporarily? unavailable", "no longer active"),
	rule("hasmoved", "has moved", "address has? changed", "no longer at|with|uses", "no longer valid at", "moved to|permanently", "forwarding address"),
	rule("norelaying",
		"relay|relaying access? denied", "relay|relaying access? not permitted|allowed|authorized", "not|isn't permitted|allowed|authorized to relay",
		"unable to relay", "not configured to relay", "we|i do not relay", "no relay*", "relay is? prohibited|refused|rejected", "cannot relay", "relaying",
		"not a? local|valid domain|host", "rcpthosts", "domain isn't in my list", "no such local? domain here",
		// A sending service (Amazon SES) that relays only for the
		// identities its customer verified.
		"email address is not verified", "identities failed the check"),
	rule("authfailure",
		"spf", "dkim", "dmarc", "sender policy framework", "domainkeys", "authenticat* check? fail*|result*",
		"not|isn't authorized|authorised to send", "does not designate|authorize", "arc validation", "unauthenticated email|mail|sender",
		"must pass|be authenticated", "does not have authentication information", "fails to pass authentication"),
	rule("requireptr",
		"reverse dns|lookup|resolution|hostname|name", "ptr", "rdns", "no valid? reverse|ptr",
		"cannot find|resolve your hostname|reverse", "cannot find|resolve your host name",
		"client hostname|host|address ~ not|cannot|doesn't resolve|match|verified|found", "hostname lookup fail*", "hostname does not|doesn't resolve|match",
		"ip address? has no|without a? name|hostname", "fcrdns", "forward confirmed", "ip name lookup failed", "mismatches client ip", "does not match ~ ip"),
	rule("speeding", "rate limit*", "ratelimit*", "too many|much messages|mail|email", "sending rate", "sending too fast", "too fast", "throttl*",
		"exceeded the? maximum? number|rate|sending", "hourly|daily sending? limit|quota", "message|connection rate", "unusual rate|volume", "high volume", "receiving mail at a rate", "at a rate that prevents", "too many recipients|messages|emails this|per hour|day|minute", "sent to too many recipients"),
	// The envelope sender refused: its address, its domain, or its
	// right to post (mailing lists that take mail from members only).
	rule("rejected",
		"sender address|domain|email? rejected|refused|denied|blocked", "sender address|domain|email? not allowed|accepted|permitted",
		"invalid|unknown|bad|unverified|illegal sender", "sender verify|verification|check failed|fail",
		"domain of sender", "sender domain", "from|sender|return address rejected|refused|invalid|not", "mail from address? rejected|refused|not",
		"envelope sender|from ~ rejected|refused|invalid|denied|not", "null sender", "return path ~ rejected|refused|invalid|denied", "sender is? not|unknown",
		"not accepting|accept mail from this|your sender|address|domain", "your email? address has|is been? blocked|banned|rejected",
		"permission to post", "not allowed|authorized|authorised|permitted to post", "only members|subscribers can|may post", "non member", "nonmember",
		"from|sender domain is? invalid|unknown", "not a registered gateway user",
		// RFC 4407: Sender ID could not find the purported responsible
		// address, the sender's own.
		"purported responsible address"),
	// The recipient's own mail system saying, in its own words, that its
	// directory has no such recipient: Exchange and X.400 gateways ("The
	// recipient name is not recognized"), Lotus Domino and Notes ("not
	// listed in Domino Directory", "... in public Name & Address Book"),
	// Gmail ("Address not found"), IMail ("Invalid final delivery
	// userid"). Such a report needs no X.1.x code or RCPT TO reply behind
	// it to be about the address (see refine).
	directoryRule("userunknown",
		"recipient name is not recognized|recognised", "not listed in ~ directory|book", "invalid final delivery userid",
		"address couldn't|could not be found", "address not found", "check if address is correct", "no valid recipients for"),
	rule("userunknown",
		"user unknown", "userunknown", "unknown local? user|recipient|mailbox|address|alias|account|email",
		"recipient|address|user|mailbox|account name? is? unknown",
		"no such user|mailbox|recipient|person|address|account", "no such local user",
		"user|mailbox|recipient|address|account|email|addressee|destination ~ does|dose|did not exist*", "user|mailbox|recipient|address|account|email|addressee|destination ~ doesn't|not exist*",
		"user|mailbox|recipient|address|account|addressee ~ not found|known|listed|present|recognized|recognised|valid|accepted",
		"invalid|bad|unknown|illegal|nonexistent|nonexisting|undeliverable|inactive recipient|mailbox|user|address|email|account|destination|alias",
		"non existent user|recipient|mailbox|address|account", "not a valid|known|local user|mailbox|recipient|address",
		"recipient|user|mailbox|address is? invalid", "recipient|user|mailbox|address is? not valid",
		"no mailbox|account|user|one here? by that name", "no mailbox|account|user|one at this address", "no mail box here? by that name",
		"no mailbox|mail box here|found|available", "mailbox|mail box invalid|inactive", "mailbox not found",
		"unknown or invalid|illegal", "recipient address rejected access denied", "please check if address is correct",
		"couldn't|could not be found", "was not found", "recipnotfound", "recipientnotfound", "not listed in", "invalid final delivery",
		"no valid recipients", "doesn't have a|an ~ account", "bad destination mailbox", "not our customer", "is not a known user",
		"not an active address|user|mailbox", "does not have an account", "disabled or unknown",
		"address is wrong", "address is? no longer valid",
		"inconnu", "unbekannt", "desconocido", "inesistente", "sconosciuto", "onbekend", "nicht gefunden", "existiert nicht",
		"n'existe pas", "no existe"),
	rule("filtered", "message filtered", "filtered", "has restricted", "mailing list expansion"),
	// A name server that failed to answer is a network problem, not a
	// domain that does not exist.
	earlyRule("networkerror", "name server failure|error|timeout|reply", "dns query|lookup|resolution failed|failure|error|timeout|timed",
		"hostname|host|dns|mx lookup failure|failed|error|timeout|timed", "host name lookup failure|failed|error", "not found try again", "temporary dns|lookup|name failure|error",
		"malformed or? unexpected? name server reply", "servfail"),
	// The domain takes no mail at all: a null MX (RFC 7505), or no MX
	// and no address to deliver to.
	rule("notaccept", "does not accept any? mail", "not accepting any? network? mail|messages", "null mx", "accepts no mail",
		"no mail is accepted", "does not|doesn't receive mail|email", "no mx record* found", "no mx found", "no mx or a",
		"couldn't|can't|cannot find a|any mail exchanger", "could not find a|any mail exchanger", "find a mail exchanger"),
	rule("hostunknown",
		"host unknown", "hostunknown", "unknown host|domain", "domain|host name? ~ not found|known", "domain|host name? ~ does not exist",
		"domain|host name? ~ doesn't|unknown", "domain|host name? lookup failed", "domain|host name? could not be found",
		"no such domain|host", "unrouteable|unroutable mail? domain|address", "name or service not known", "host not found", "nxdomain",
		"no dns", "no a record", "dns record? not found", "domain is? invalid", "domain is? not valid",
		"invalid domain", "bad destination system", "unknown mail domain", "domain name not found", "domain ~ not reachable|unreachable",
		"host or domain name not found"),
	rule("toomanyconn", "too many simultaneous|concurrent|open? connections", "connection limit", "too many sessions|recipients",
		"concurrency", "maximum number? of? connections", "too many hosts"),
	rule("policyviolation", "policy", "policies", "violat*", "prohibited", "header error", "not permitted|allowed by", "against our|the terms|rules",
		"acceptable use", "terms of service|use", "administratively prohibited|denied", "administrative prohibition",
		"illegal|prohibited|forbidden|unacceptable|banned attachment|attachments"),
	// RFC 3207: one side wants TLS and the other cannot or will not.
	rule("failedstarttls", "does not support tls|starttls|encryption", "doesn't support tls|starttls|encryption",
		"tls|starttls ~ required|failed|failure|negotiation|handshake", "must issue a starttls command", "requires? tls|starttls|encryption",
		"encryption required|needed"),
	rule("securityerror", "starttls", "tls", "ssl", "encrypt*", "certificate", "authentication is? required", "must authenticate|issue",
		"not authorized|authorised", "unauthorized|unauthorised", "access denied", "permission denied", "security policy|violation|reasons"),
	// A local program that could not reach its own daemon (a virus
	// scanner, a filter), or a mail system that could not reach its own
	// directory (qmail-ldap, Exim and Postfix LDAP lookups), is the
	// system's failure, not the remote's; a queue that expired meanwhile
	// only followed from it.
	earlyRule("systemerror", "unable|failed to connect to ~ daemon", "cannot|can't|couldn't connect to ~ daemon", "could not connect to ~ daemon",
		"unable|failed to contact|connect|reach to? the? ldap", "cannot|can't|couldn't contact|connect|reach to? the? ldap",
		"could not contact|connect|reach to? the? ldap", "ldap lookup|search|query|server|connection ~ failed|failure|error|timeout|unavailable|down"),
	// Time ran out: the remote never answered, or the message sat in
	// the queue until it expired.
	rule("expired",
		"delivery time expired", "retry time|timeout exceeded", "retry time not reached", "too long in the? queue", "expired in the? queue",
		"in the queue too long", "message has? expired", "could not be delivered within|for|in", "unable to deliver in", "undeliverable for",
		"for a long time", "giving up", "gave up", "has been delayed", "will continue|keep trying", "will continue|keep to try",
		"not yet been delivered", "delivery attempts will continue", "queue time", "queuetime", "maximum time", "delivery failed ~ attempts",
		"maximum delivery|retry attempts|retries",
		"connection timed out", "timed out", "timeout", "time out", "connection refused", "could not|couldn't|unable to connect",
		"not accept ~ to connect", "not reachable", "unreachable", "no route to host", "could not find a gateway", "expired"),
	rule("networkerror",
		"connection reset|lost|closed|failed|dropped", "connection was dropped", "lost connection", "connect to ~ failed",
		"dns lookup|resolution|query|error|failure", "temporary dns|lookup fail*", "host lookup did not complete", "name server",
		"mail loop", "loop detected", "looping", "too many hops", "routing loop", "loops back to myself", "hop count", "mail for ~ loops",
		"unable to route", "network error", "network is? unreachable", "name service error"),
	rule("systemerror", "system error", "internal server? error", "could not load", "couldn't|cannot|can't load", "unable|failed to load", "server error", "configuration error", "local error", "misconfigur*",
		"temporary local? failure|problem|error", "service not available", "service ~ unavailable", "try later", "i o error", "directory server? failure|lookup",
		"out of memory", "resource|resources temporarily? unavailable", "processing error", "try again later", "write error"),
	rule("mailererror", "xunix", "mailer error|failure", "pipe to", "command died|failed", "exit code|status", "exited with",
		"procmail", "program exited|failed", "unknown mailer", "mailer program"),
	rule("syntaxerror", "syntax error", "command unrecognized", "command not recognized", "unrecognized command", "bad sequence of commands",
		"invalid command", "command not implemented", "line too long", "improper sequence", "sequence of commands",
		"malformed address", "incorrectly constructed", "syntactically invalid"),
	// Postfix's "Recipient address rejected" says only that the address
	// was refused, and "mailbox unavailable" is RFC 5321's own text for
	// any 550 (§4.2.2: "mailbox not found, no access, or command rejected
	// for policy reasons"); the status code, when it names something,
	// says why.
	weakRule("userunknown", "recipient address? rejected", "address rejected", "rejected recipient|address",
		"recipient|recipients|address|addresses was|were rejected",
		"user|mailbox|recipient|address|account|addressee ~ unavailable|available", "mailbox|mail box is? currently? unavailable|available"),
}

// Tags of the reason rules in the shared matcher are their indexes in
// textRules; the other phrase lists follow.
var (
	tagFirstOther = len(textRules)
)
