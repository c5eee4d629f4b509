package unsubscribe

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
)

// pageData fills the one page template.
type pageData struct {
	Title   string
	Message string
	// A form with one hidden field and a button, when Action is set.
	Action, Field, Value, Button string
	// A link, when set.
	Link, LinkText string
	Note           string
}

// The page needs no script, sets no cookie, and reads well with a screen
// reader: one heading, one paragraph, one labelled button.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body { font: 1.1rem/1.5 system-ui, sans-serif; margin: 0; padding: 2rem 1rem; color: #1b1b1b; background: #fafafa; }
main { max-width: 34rem; margin: 0 auto; background: #fff; padding: 2rem; border: 1px solid #ddd; border-radius: 6px; }
h1 { font-size: 1.5rem; margin-top: 0; }
button { font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: 4px; background: #0b57d0; color: #fff; cursor: pointer; }
button:focus { outline: 3px solid #f9a825; outline-offset: 2px; }
.note { color: #555; font-size: .95rem; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Action}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="{{.Field}}" value="{{.Value}}">
<button type="submit">{{.Button}}</button>
</form>
{{- end}}
{{- if .Link}}
<p><a href="{{.Link}}">{{.LinkText}}</a></p>
{{- end}}
{{- if .Note}}
<p class="note">{{.Note}}</p>
{{- end}}
</main>
</body>
</html>
`))

func (s *Server) page(w http.ResponseWriter, status int, d pageData) {
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, d); err != nil {
		s.Log.Error("render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// Mask shows an address so that its owner recognises it and a passer-by
// learns little: the local part's first character, the domain whole.
// "bob@example.com" becomes "b•••@example.com".
func Mask(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return "•••"
	}
	r := []rune(a[:i])
	return string(r[0]) + "•••" + a[i:]
}
