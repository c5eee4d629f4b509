package milter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	_ "github.com/mattn/go-sqlite3"

	"github.com/senderkit/senderkit/internal/store/sqlitestore"
)

// tempfailed reports whether err is the milter's 451 for a store
// problem.
func tempfailed(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 451 && se.EnhancedCode == smtp.EnhancedCode{4, 3, 0} &&
		strings.HasPrefix(se.Message, "senderkit: store:")
}

// When the store cannot record a send, the message is tempfailed with a
// reason Postfix logs, and nothing leaves: first while another process
// holds the database's write lock past the busy timeout, then, in the
// middle of a run of messages, when the store is gone altogether. Every
// message that did leave is signed and recorded.
func TestStoreKilled(t *testing.T) {
	e := newEnv(t, envOptions{})
	send := func(i int) error {
		to := fmt.Sprintf("m%d@dest.example", i)
		return e.lab.Send("news@example.com", []string{to}, msg("news@example.com", to, fmt.Sprintf("message %d", i)))
	}
	if err := send(0); err != nil {
		t.Fatal(err)
	}

	// Another process (a bouncepipe, an administrator's sqlite3) holds
	// the write lock.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "senderkit.db")+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if err := send(1); !tempfailed(err) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("with the store locked: %v, want 451 4.3.0 senderkit: store: ... locked", err)
	}
	conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	if err := send(2); err != nil {
		t.Errorf("after the lock was released: %v", err)
	}

	// The store dies half-way through a run.
	accepted := map[string]bool{"m0@dest.example": true, "m2@dest.example": true}
	killed := false
	for i := 3; i < 23; i++ {
		if i == 13 {
			e.st.Close()
			killed = true
		}
		err := send(i)
		switch {
		case err == nil && killed:
			t.Errorf("message %d was accepted with the store closed", i)
		case err == nil:
			accepted[fmt.Sprintf("m%d@dest.example", i)] = true
		case !killed:
			t.Errorf("message %d, store alive: %v", i, err)
		case !tempfailed(err):
			t.Errorf("message %d, store closed: %v, want 451 4.3.0 senderkit: store: ...", i, err)
		}
	}
	e.lab.WaitLog(t, `milter-reject: END-OF-MESSAGE .*: 4.3.0 senderkit: store: .*(database|statement) is closed`, wait)

	msgs := e.lab.Sink.Wait(t, len(accepted), wait)
	e.lab.WaitQueueEmpty(t, wait)
	got := byRcpt(t, e.lab.Sink.Messages())
	if len(got) != len(accepted) {
		t.Errorf("%d messages left, %d were accepted", len(got), len(accepted))
	}
	// Reopen the store to see the sends recorded before it died.
	if e.st, err = sqlitestore.Open(context.Background(), filepath.Join(e.dir, "senderkit.db"), sqlitestore.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if !accepted[m.To[0]] {
			t.Errorf("a tempfailed message to %s left", m.To[0])
		}
		if _, send := e.copyOf(m); send.Recipient != m.To[0] {
			t.Errorf("the message to %s was recorded for %q", m.To[0], send.Recipient)
		}
		e.checkSigned(m, "example.com/rsa2026", "example.com/ed2026")
	}
}
