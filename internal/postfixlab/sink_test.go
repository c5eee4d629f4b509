package postfixlab

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestSinkAlone(t *testing.T) {
	t.Parallel()
	s := NewSink(t)
	s.SetRcptHandler(func(from, rcpt string) *smtp.SMTPError {
		if rcpt == "nobody@example.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown"}
		}
		return nil
	})

	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"8BITMIME", "SMTPUTF8"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("sink does not advertise %s", ext)
		}
	}
	if err := c.Mail("", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("a@example.test", nil); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("nobody@example.test", nil); !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("RCPT nobody: %v, want 550 5.1.1", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	raw := "Subject: x\r\n\r\n.dot\r\nb\xc3\xa9\r\n"
	w.Write([]byte(raw))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	ms := s.Wait(t, 1, wait)
	m := ms[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != "a@example.test" || !m.UTF8 || m.BodyType != smtp.Body8BitMIME {
		t.Errorf("got from=<%s> to=%v utf8=%v body=%q", m.From, m.To, m.UTF8, m.BodyType)
	}
	if string(m.Data) != raw {
		t.Errorf("data %q, want %q", m.Data, raw)
	}
	if string(m.Body()) != ".dot\r\nb\xc3\xa9\r\n" || string(m.Header()) != "Subject: x\r\n" {
		t.Errorf("header %q body %q", m.Header(), m.Body())
	}

	// A DATA handler refusing a message: nothing is recorded.
	s.Reset()
	s.SetDataHandler(func(m Message) *smtp.SMTPError {
		if strings.Contains(string(m.Data), "spam") {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}
		}
		return nil
	})
	c.Quit()
	err = send(s.Addr, "b@example.test", []string{"a@example.test"}, []byte("Subject: spam\r\n\r\nx\r\n"))
	if !errors.As(err, &se) || se.Code != 554 {
		t.Fatalf("spam: %v, want 554", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages recorded after Reset and a refused message", n)
	}

	// Concurrent senders.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := send(s.Addr, "c@example.test", []string{"d@example.test"}, []byte("Subject: ok\r\n\r\nx\r\n")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ms := s.Wait(t, 8, wait); len(ms) != 8 {
		t.Errorf("got %d messages, want 8", len(ms))
	}
	s.Close()
	s.Close()
}
