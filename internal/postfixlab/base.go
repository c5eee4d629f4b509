package postfixlab

import (
	"os"
	"os/exec"
	"path/filepath"
)

// DebianConfig writes into dir the configuration Debian's postfix
// package writes to /etc/postfix for "Internet Site" (its postinst:
// main.cf.debian, master.cf.dist and the settings it applies), with
// myhostname given. Tests add to it what an administrator would.
func DebianConfig(t TB, dir, myhostname string) {
	t.Helper()
	EnsurePackages(t, Packages)
	for src, dst := range map[string]string{"/usr/share/postfix/main.cf.debian": "main.cf", "/usr/share/postfix/master.cf.dist": "master.cf"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatalf("postfixlab: %v", err)
		}
	}
	out, err := exec.Command("postconf", "-c", dir, "-e",
		"smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"myhostname="+myhostname,
		"alias_maps=hash:/etc/aliases",
		"alias_database=hash:/etc/aliases",
		"mydestination=$myhostname, localhost",
		"relayhost=",
		"mynetworks=127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
		"mailbox_size_limit=0",
		"recipient_delimiter=+",
		"inet_interfaces=all",
		"inet_protocols=all",
	).CombinedOutput()
	if err != nil {
		t.Fatalf("postfixlab: postconf on the Debian configuration: %v: %s", err, out)
	}
	backdate(filepath.Join(dir, "main.cf"))
}
