#!/bin/sh
# Add senderkit's lines to a Postfix configuration, or take them out again.
#
#   sh contrib/postfix/install.sh -b bounces.example.com        # /etc/postfix
#   sh contrib/postfix/install.sh -u                            # roll back
#
# It applies milter.main.cf, policy.main.cf and bouncepipe.main.cf with
# "postconf -e", and appends milter.master.cf and bouncepipe.master.cf to
# master.cf between "# BEGIN senderkit" and "# END senderkit" lines. Before
# the first change it saves main.cf and master.cf as *.before-senderkit;
# -u puts them back. It refuses to overwrite a setting you already use for
# something else (smtpd_recipient_restrictions, milters, transport_maps,
# relay_domains) and says how to merge instead. Run "postfix reload" after.
#
# Options:
#   -C DIR   Postfix configuration directory (default /etc/postfix)
#   -b NAME  the bounce domain (bounce.domain in senderkit.toml); required
#   -s PATH  the senderkit binary (default /usr/local/bin/senderkit)
#   -c PATH  senderkit's configuration (default /etc/senderkit/senderkit.toml)
#   -n       print what would be done, change nothing
#   -u       roll back: restore the saved main.cf and master.cf
set -eu

here=$(cd "$(dirname "$0")" && pwd)
confdir=/etc/postfix
bounce=
binary=/usr/local/bin/senderkit
config=/etc/senderkit/senderkit.toml
dry=
undo=

while getopts C:b:s:c:nu opt; do
	case $opt in
	C) confdir=$OPTARG ;;
	b) bounce=$OPTARG ;;
	s) binary=$OPTARG ;;
	c) config=$OPTARG ;;
	n) dry=1 ;;
	u) undo=1 ;;
	*) sed -n '2,24s/^# \{0,1\}//p' "$0" >&2; exit 64 ;;
	esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
run() { if [ -n "$dry" ]; then echo "$*"; else "$@"; fi; }

[ -f "$confdir/main.cf" ] || die "$confdir/main.cf not found (-C DIR?)"

if [ -n "$undo" ]; then
	for f in main.cf master.cf; do
		[ -f "$confdir/$f.before-senderkit" ] || die "no $confdir/$f.before-senderkit to restore"
	done
	for f in main.cf master.cf; do
		run cp -p "$confdir/$f.before-senderkit" "$confdir/$f"
	done
	echo "restored main.cf and master.cf as they were before senderkit; now: postfix reload"
	exit 0
fi

[ -n "$bounce" ] || die "give the bounce domain with -b (bounce.domain in senderkit.toml)"
case $bounce in *[!A-Za-z0-9.-]* | .* | *. | "") die "-b $bounce: not a domain name" ;; esac

# Settings senderkit needs for itself: refuse to overwrite one that holds
# something else already.
conflicts=
check_free() { # name wanted
	have=$(postconf -c "$confdir" -nh "$1" 2>/dev/null || true)
	if [ -n "$have" ] && [ "$have" != "$2" ]; then
		conflicts="$conflicts
  $1 is already \"$have\"; add senderkit's part by hand: $3"
	fi
}
check_free smtpd_recipient_restrictions "check_policy_service { inet:127.0.0.1:10040, timeout=10s }" \
	"put check_policy_service { inet:127.0.0.1:10040, timeout=10s } after your reject_ rules and before any permit_"
check_free smtpd_milters "inet:127.0.0.1:10026" "append inet:127.0.0.1:10026, last (it must see the final header)"
check_free non_smtpd_milters "inet:127.0.0.1:10026" "append inet:127.0.0.1:10026, last"
check_free transport_maps "inline:{$bounce=senderkit-bounce:}" "add \"$bounce senderkit-bounce:\" to your transport map"
check_free relay_domains "$bounce" "add $bounce to relay_domains"
[ -z "$conflicts" ] || die "not changing $confdir:$conflicts"

# Save the files once, before the first change.
for f in main.cf master.cf; do
	[ -f "$confdir/$f.before-senderkit" ] || run cp -p "$confdir/$f" "$confdir/$f.before-senderkit"
done

# main.cf: each "name = value" of the snippets (continuation lines, which
# start with white space, are joined), through postconf -e.
for snip in milter.main.cf policy.main.cf bouncepipe.main.cf; do
	sed "s/bounces\.example\.com/$bounce/g" "$here/$snip" | awk '
		/^[ \t]*#/ || /^[ \t]*$/ { next }
		/^[ \t]/ { sub(/^[ \t]+/, ""); line = line " " $0; next }
		{ if (line != "") print line; line = $0 }
		END { if (line != "") print line }' |
	while IFS= read -r setting; do
		run postconf -c "$confdir" -e "$setting"
	done
done

# master.cf: the services, once (a second run replaces them).
for snip in milter.master.cf bouncepipe.master.cf; do
	begin="# BEGIN senderkit $snip"
	end="# END senderkit $snip"
	if grep -qxF "$begin" "$confdir/master.cf"; then
		run sed -i "\|^$begin\$|,\|^$end\$|d" "$confdir/master.cf"
	fi
	if [ -n "$dry" ]; then
		echo "append $here/$snip to $confdir/master.cf"
	else
		{
			echo "$begin"
			sed -e "s|/usr/local/bin/senderkit|$binary|g" -e "s|/etc/senderkit/senderkit.toml|$config|g" "$here/$snip"
			echo "$end"
		} >>"$confdir/master.cf"
	fi
done

[ -n "$dry" ] || echo "senderkit's lines are in $confdir/main.cf and master.cf; check with: postfix check && postconf -n; then: postfix reload"
