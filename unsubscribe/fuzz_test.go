package unsubscribe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/senderkit/senderkit/internal/store"
)

// FuzzHandler sends arbitrary requests: no panic, no 5xx, and nothing is
// ever suppressed but the one recipient whose real link is in the seeds.
func FuzzHandler(f *testing.F) {
	w := newWorld(f, "")
	path := w.send("acme", "news", "seed@example.com")
	f.Add("GET", path, "", "")
	f.Add("POST", path, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	f.Add("POST", path, "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n")
	f.Add("POST", path+"x", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	f.Add("PUT", "/u/../etc/passwd", "text/plain", "%zz")
	f.Add("POST", strings.ToUpper(path), "application/x-www-form-urlencoded", "confirm=yes")
	f.Fuzz(func(t *testing.T, method, path, ctype, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://unsubscribe.acme.example"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", ctype)
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		w.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q (%q, %q): %d\n%s", method, path, ctype, body, rec.Code, rec.Body.String())
		}
		w.store.Suppressions(context.Background(), store.Filter{Lapsed: true}, func(s store.Suppression) error {
			if s.Address != "seed@example.com" {
				t.Fatalf("%s %q suppressed %s", method, path, s.Address)
			}
			return nil
		})
	})
}
