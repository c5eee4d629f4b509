package unsubscribe

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/senderkit/senderkit/internal/postfixlab"
)

// TestBrowserUnsubscribe drives the pages in a real headless browser
// (Debian's chromium, installed when missing): it opens the link from a
// message, presses the button, and the recipient is suppressed; then it
// follows the undo link. A screenshot of each page is saved in the test's
// artifact directory (go test -artifacts -outputdir DIR keeps them).
func TestBrowserUnsubscribe(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("-short: skipping the browser test outside CI")
	}
	postfixlab.EnsurePackages(t, map[string]string{"chromium": "chromium"})
	w := newWorld(t, "")
	path := w.send("acme", "news", "browser@example.com")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, // as root in a container
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(800, 600),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	dir := t.ArtifactDir()
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; below 100 gives JPEG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	heading := func(h string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(`//h1[text()="` + h + `"]`) // a plain string is a DevTools search, XPath included
	}

	do(chromedp.Navigate(w.ts.URL+path), chromedp.WaitVisible(chromedp.CSS("button")))
	confirm := text()
	shot("1-confirm.png")
	if _, ok := w.suppressed("acme", "", "browser@example.com"); ok {
		t.Fatal("opening the page unsubscribed")
	}
	do(chromedp.Click(chromedp.CSS("button")), heading("You are unsubscribed"))
	done := text()
	shot("2-unsubscribed.png")
	if s, ok := w.suppressed("acme", "", "browser@example.com"); !ok {
		t.Fatalf("pressing the button did not unsubscribe: %+v", s)
	}
	do(chromedp.Click(chromedp.CSS("a")), chromedp.WaitVisible(chromedp.CSS("button")))
	undoPage := text()
	shot("3-undo-confirm.png")
	do(chromedp.Click(chromedp.CSS("button")), heading("You are subscribed again"))
	undone := text()
	shot("4-subscribed-again.png")
	do(chromedp.Navigate(w.ts.URL+"/u/"+strings.Repeat("a", 42)), heading("This link is not valid"))
	shot("5-invalid.png")
	if _, ok := w.suppressed("acme", "", "browser@example.com"); ok {
		t.Error("still suppressed after the undo")
	}
	for _, c := range []struct{ page, want string }{
		{confirm, "Unsubscribe from Acme Newsletter?"}, {done, "b•••@example.com will get no more mail from Acme Newsletter."},
		{undoPage, "Subscribe again to Acme Newsletter?"}, {undone, "You are subscribed again"},
	} {
		if !strings.Contains(c.page, c.want) {
			t.Errorf("page lacks %q:\n%s", c.want, c.page)
		}
	}
	t.Logf("screenshots in %s", dir)
}
