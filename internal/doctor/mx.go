package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// checkMX checks that mail to the bounce domain (bounces, complaint
// reports, unsubscribe mail) reaches this Postfix: the domain's MX hosts
// resolve to the inbound addresses (RFC 5321 §5.1).
func (x *run) checkMX(ctx context.Context) {
	bounce := x.cfg.Bounce.Domain
	inbound := x.cfg.Check.Inbound()
	res := Result{Check: CheckMX, What: "MX " + bounce, Status: Fail}
	if len(inbound) == 0 {
		res.Detail = "no inbound address is configured, so where the MX must lead is unknown"
		res.Fix = "list the addresses this Postfix receives mail at in [check] inbound_addresses (or sending_addresses)"
		x.add(res)
		return
	}
	fix := x.mxFix(ctx, bounce, inbound)
	mxs, err := x.r.LookupMX(ctx, bounce)
	switch {
	case err != nil && !isNotFound(err):
		res.Detail, res.Fix = dnsFailure(bounce+" MX", err)
		x.add(res)
		return
	case len(mxs) == 1 && mxs[0].Host == ".":
		// RFC 7505 §3: a null MX says the domain accepts no mail.
		res.Detail = "a null MX (RFC 7505) says the domain accepts no mail: bounces and complaints to it are refused before they are sent"
		res.Fix = "replace it: " + fix
		x.add(res)
		return
	case len(mxs) == 0:
		// RFC 5321 §5.1: without MX records the domain's own address is
		// the implicit MX.
		as, aerr := x.r.LookupNetIP(ctx, bounce)
		if aerr == nil && intersects(as, inbound) {
			res.Status = Warn
			res.Detail = fmt.Sprintf("no MX record; mail reaches %s only through its address record (the implicit MX of RFC 5321 §5.1)", joinAddrs(as))
		} else {
			res.Detail = "no MX record and no address record: bounces and complaints cannot be delivered"
		}
		res.Fix = "publish " + fix
		x.add(res)
		return
	}
	var ours, elsewhere, stray []string
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Host, ".")
		as, err := x.r.LookupNetIP(ctx, host)
		switch {
		case err != nil:
			elsewhere = append(elsewhere, fmt.Sprintf("%s (%v)", host, shortErr(err)))
		case intersects(as, inbound):
			ours = append(ours, fmt.Sprintf("%d %s (%s)", mx.Pref, host, joinAddrs(as)))
			for _, a := range as {
				if !slices.Contains(inbound, a) {
					stray = append(stray, fmt.Sprintf("%s also resolves to %s", host, a))
				}
			}
		default:
			elsewhere = append(elsewhere, fmt.Sprintf("%s (%s)", host, joinAddrs(as)))
		}
	}
	switch {
	case len(ours) == 0:
		res.Detail = fmt.Sprintf("the MX hosts %s do not lead to this Postfix (%s): bounces and complaints go elsewhere", strings.Join(elsewhere, ", "), joinAddrs(inbound))
		res.Fix = "publish " + fix + "\n(in place of the current MX records, unless those hosts relay the bounce domain here)"
	case len(elsewhere) > 0 || len(stray) > 0:
		res.Status = Warn
		res.Detail = fmt.Sprintf("%s lead here, but %s: mail that goes there must be relayed here", strings.Join(ours, ", "), strings.Join(append(elsewhere, stray...), ", "))
		res.Fix = "point every MX of the bounce domain at this Postfix's inbound addresses: " + fix
	default:
		res.Status = Pass
		res.Detail = strings.Join(ours, ", ")
	}
	x.add(res)
}

// mxFix is the MX record to publish: at the HELO name when it resolves
// to an inbound address, else at a new name whose address record is
// given too.
func (x *run) mxFix(ctx context.Context, bounce string, inbound []netip.Addr) string {
	if helo := strings.TrimSuffix(x.o.HELOName, "."); helo != "" {
		if as, err := x.r.LookupNetIP(ctx, helo); err == nil && intersects(as, inbound) {
			return fmt.Sprintf("%s. IN MX 10 %s.", bounce, helo)
		}
	}
	host := "mx." + bounce
	fix := fmt.Sprintf("%s. IN MX 10 %s.", bounce, host)
	for _, a := range inbound {
		fix += "\nand " + addressRecord(host, a)
	}
	return fix
}

func intersects(as, bs []netip.Addr) bool {
	for _, a := range as {
		if slices.Contains(bs, a) {
			return true
		}
	}
	return false
}

// shortErr is the reason a lookup found nothing, in a few words.
func shortErr(err error) string {
	if isNotFound(err) {
		return "no address record"
	}
	return err.Error()
}
