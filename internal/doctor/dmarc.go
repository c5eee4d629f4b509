package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"

	"github.com/senderkit/senderkit/milter/dkim"
)

// checkDomain checks one From domain: the DKIM keys that sign its mail,
// then its DMARC record and how its mail aligns with it.
func (x *run) checkDomain(ctx context.Context, fd *fromDomain) {
	var keys []keyToCheck
	if x.o.DKIM != nil {
		locals := make([]string, 0, len(fd.locals))
		for l := range fd.locals {
			locals = append(locals, l)
		}
		sort.Strings(locals)
		seen := map[string]bool{}
		for _, local := range locals {
			choices, steps, _ := x.o.DKIM.Select(local, fd.name)
			for _, st := range steps {
				if st.Err != nil {
					from := local + "@" + fd.name
					x.add(Result{Check: CheckDKIM, What: "DKIM signing " + from, Status: Fail,
						Detail: fmt.Sprintf("mail from %s is tempfailed, not signed: %v", from, st.Err),
						Fix:    fmt.Sprintf("fix the KeyTable or SigningTable; senderkit dkim explain %s shows the choice step by step", from)})
				}
			}
			for _, ch := range choices {
				txt, err := dkim.TXTRecord(ch.Key)
				if err != nil || seen[ch.Domain+"/"+ch.Selector] {
					continue
				}
				seen[ch.Domain+"/"+ch.Selector] = true
				keys = append(keys, keyToCheck{domain: ch.Domain, selector: ch.Selector, txt: txt, key: ch.Key})
			}
		}
	}
	for _, k := range keys {
		x.checkKey(ctx, k)
	}
	x.checkDMARC(ctx, fd, keys)
}

// checkDMARC finds the DMARC record that governs fd (RFC 7489 §6.6.3)
// and says whether senderkit's mail from fd passes it: a verified DKIM
// signature whose d= aligns with fd, or an SPF pass at the bounce domain
// when that aligns (§3.1).
func (x *run) checkDMARC(ctx context.Context, fd *fromDomain, keys []keyToCheck) {
	res := Result{Check: CheckDMARC, What: "DMARC " + fd.label(), Status: Fail}
	org := dkim.OrgDomain(fd.name)
	raw, at, err := x.dmarcRecord(ctx, fd.name)
	suggest := fmt.Sprintf(`_dmarc.%s. IN TXT "v=DMARC1; p=none"`, org)
	switch {
	case err != nil:
		res.Detail, res.Fix = dnsFailure("_dmarc."+fd.name, err)
		x.add(res)
		return
	case len(raw) == 0:
		where := "_dmarc." + fd.name
		if org != fd.name {
			where += " nor at _dmarc." + org
		}
		res.Detail = fmt.Sprintf("no DMARC record at %s: Gmail and Yahoo require one of bulk senders", where)
		res.Fix = "publish " + suggest + "\n(then read the aggregate reports, add rua=mailto:ADDRESS for them, and move to p=quarantine or p=reject)"
		x.add(res)
		return
	case len(raw) > 1:
		// RFC 7489 §6.6.3 step 5: several records mean no policy.
		res.Detail = fmt.Sprintf("%d DMARC records at _dmarc.%s: receivers apply none of them", len(raw), at)
		res.Fix = "keep exactly one DMARC record at _dmarc." + at
		x.add(res)
		return
	}
	rec, err := dmarc.Parse(raw[0])
	if err != nil {
		res.Detail = fmt.Sprintf("the record %s at _dmarc.%s is not valid: %v", quote(raw[0]), at, err)
		res.Fix = "publish a valid record, for instance " + suggest
		x.add(res)
		return
	}
	policy, policyTag := rec.Policy, "p"
	if at != fd.name && rec.SubdomainPolicy != "" {
		policy, policyTag = rec.SubdomainPolicy, "sp" // §6.6.3 step 6: sp= for a subdomain
	}
	found := fmt.Sprintf("_dmarc.%s %s=%s", at, policyTag, policy)

	// DKIM alignment (§3.1.1): relaxed, same organisational domain;
	// strict (adkim=s), the same domain.
	var aligned, alignedBad, unaligned []string
	for _, k := range keys {
		switch {
		case !alignedWith(k.domain, fd.name, rec.DKIMAlignment):
			unaligned = append(unaligned, "d="+k.domain)
		case x.dkimOK[k.name()]:
			aligned = append(aligned, "d="+k.domain+" s="+k.selector)
		default:
			alignedBad = append(alignedBad, "d="+k.domain+" s="+k.selector)
		}
	}
	// SPF alignment (§3.1.2) with the bounce domain, the envelope sender
	// domain of everything senderkit sends.
	bounce := x.cfg.Bounce.Domain
	spfAligned := alignedWith(bounce, fd.name, rec.SPFAlignment)
	switch {
	case len(aligned) > 0:
		res.Status = Pass
		res.Detail = fmt.Sprintf("%s; aligned by DKIM %s", found, strings.Join(aligned, ", "))
		if spfAligned && x.spfPass {
			res.Detail += " and by SPF " + bounce
		}
	case spfAligned && x.spfPass:
		// Aligned, but forwarding breaks SPF and leaves nothing.
		res.Status = Warn
		res.Detail = fmt.Sprintf("%s; aligned by SPF %s only: forwarded mail will fail DMARC", found, bounce)
		res.Fix = x.alignFix(fd, rec, raw[0], at, alignedBad, unaligned)
	default:
		res.Detail = fmt.Sprintf("%s; mail from %s does not align: %s", found, fd.name, x.whyUnaligned(fd, rec, bounce, spfAligned, alignedBad, unaligned))
		res.Fix = x.alignFix(fd, rec, raw[0], at, alignedBad, unaligned)
	}
	if policy == dmarc.PolicyNone && res.Status == Pass {
		res.Status = Warn
		res.Detail += fmt.Sprintf("; %s=none asks receivers to do nothing with mail that fails: Gmail and Yahoo accept it, but it protects no one", policyTag)
		res.Fix = fmt.Sprintf("once the aggregate reports show all your mail aligns, publish _dmarc.%s. IN TXT %s", at, quote(setTag(raw[0], policyTag, "quarantine")))
	}
	x.add(res)
}

// whyUnaligned explains a DMARC failure.
func (x *run) whyUnaligned(fd *fromDomain, rec *dmarc.Record, bounce string, spfAligned bool, alignedBad, unaligned []string) string {
	var why []string
	switch {
	case len(alignedBad) > 0:
		why = append(why, fmt.Sprintf("DKIM %s would align, but its published key fails (see the DKIM line)", strings.Join(alignedBad, ", ")))
	case len(unaligned) > 0:
		why = append(why, fmt.Sprintf("DKIM %s does not align (adkim=%s)", strings.Join(unaligned, ", "), rec.DKIMAlignment))
	default:
		why = append(why, "no DKIM key signs its mail")
	}
	if spfAligned {
		why = append(why, fmt.Sprintf("SPF %s would align, but does not pass (see the SPF lines)", bounce))
	} else {
		why = append(why, fmt.Sprintf("SPF %s does not align (aspf=%s)", bounce, rec.SPFAlignment))
	}
	return strings.Join(why, "; ")
}

// alignFix says how to make fd's mail align through DKIM.
func (x *run) alignFix(fd *fromDomain, rec *dmarc.Record, raw, at string, alignedBad, unaligned []string) string {
	switch {
	case len(alignedBad) > 0:
		return "publish the key record the DKIM line above gives"
	case len(unaligned) > 0 && rec.DKIMAlignment == dmarc.AlignmentStrict && anyRelaxed(unaligned, fd.name):
		return fmt.Sprintf("sign mail from %s with a key whose d= is %s (senderkit dkim keygen -d %s -s SELECTOR, then a KeyTable and a SigningTable line),\nor relax DKIM alignment: _dmarc.%s. IN TXT %s",
			fd.name, fd.name, fd.name, at, quote(setTag(raw, "adkim", "r")))
	}
	return fmt.Sprintf("sign mail from %s with a key whose d= is %s or its parent domain: senderkit dkim keygen -d %s -s SELECTOR,\nthen a KeyTable line and a SigningTable line \"*@%s KEYNAME\"",
		fd.name, dkim.OrgDomain(fd.name), fd.name, fd.name)
}

// anyRelaxed reports whether one of the "d=..." entries would align with
// from in relaxed mode.
func anyRelaxed(ds []string, from string) bool {
	for _, d := range ds {
		if dkim.Aligned(strings.TrimPrefix(d, "d="), from) {
			return true
		}
	}
	return false
}

// alignedWith applies DMARC's alignment modes (RFC 7489 §3.1).
func alignedWith(domain, from string, mode dmarc.AlignmentMode) bool {
	if mode == dmarc.AlignmentStrict {
		return strings.EqualFold(domain, from)
	}
	return dkim.Aligned(domain, from)
}

// dmarcRecord finds the DMARC records for domain: at _dmarc.domain,
// else at _dmarc.<organisational domain> (RFC 7489 §6.6.3). It returns
// the records that start with v=DMARC1 and where they were found.
func (x *run) dmarcRecord(ctx context.Context, domain string) (records []string, at string, err error) {
	lookup := func(d string) ([]string, error) {
		txts, err := x.r.LookupTXT(ctx, "_dmarc."+d)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		var out []string
		for _, t := range txts {
			// §6.6.3 step 3: records that do not start with v=DMARC1 are
			// discarded.
			if v, _, _ := strings.Cut(t, ";"); strings.ReplaceAll(strings.TrimSpace(v), " ", "") == "v=DMARC1" {
				out = append(out, t)
			}
		}
		return out, nil
	}
	recs, err := lookup(domain)
	if err != nil || len(recs) > 0 {
		return recs, domain, err
	}
	if org := dkim.OrgDomain(domain); org != domain {
		recs, err = lookup(org)
		return recs, org, err
	}
	return nil, domain, nil
}

// setTag returns a tag-list record with tag set to value: replaced where
// it is, else added at the end.
func setTag(record, tag, value string) string {
	parts := strings.Split(record, ";")
	var out []string
	found := false
	for _, p := range parts {
		if strings.TrimSpace(p) == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), tag) {
			p = tag + "=" + value
			found = true
		}
		out = append(out, strings.TrimSpace(p))
	}
	if !found {
		out = append(out, tag+"="+value)
	}
	return strings.Join(out, "; ")
}
