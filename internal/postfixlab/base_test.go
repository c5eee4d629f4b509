package postfixlab

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestBaseConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		Unavailable(t, "postfixlab: running a private Postfix needs root")
	}
	base := t.TempDir()
	DebianConfig(t, base, "mail.example.org")
	lab := Start(t, Options{Base: base})
	if err := lab.Send("a@example.org", []string{"b@dest.example"}, []byte("Subject: x\r\n\r\nthrough Debian's own configuration\r\n")); err != nil {
		t.Fatal(err)
	}
	msgs := lab.Sink.Wait(t, 1, 30*time.Second)
	if msgs[0].To[0] != "b@dest.example" {
		t.Errorf("sink got %v", msgs[0].To)
	}
	// The lab changed where Postfix runs, not how: Debian's banner and
	// relay restrictions are still there.
	out, err := exec.Command("postconf", "-c", lab.ConfigDir(), "-h", "smtpd_banner", "smtpd_relay_restrictions").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "$myhostname ESMTP $mail_name (Debian/GNU)\npermit_mynetworks permit_sasl_authenticated defer_unauth_destination\n" {
		t.Errorf("kept settings: %q", out)
	}
}
