package bouncepipe

import (
	"slices"
	"testing"
)

// TestMatcher: the phrase syntax, each form on made-up text.
func TestMatcher(t *testing.T) {
	m := newMatcher([][]string{
		{"user|mailbox unknown"},  // tag 0: alternatives
		{"no such user?"},         // tag 1: an optional last word
		{"the? mailbox is full"},  // tag 2: an optional first word
		{"spam* detected"},        // tag 3: a word prefix
		{"message ~ rejected"},    // tag 4: a gap of up to maxGap words
		{"quota|quota exceeded"},  // tag 5: two ways to the same words ("quota exceeded")
		{"email address"},         // tag 6: the tokenizer joins "e-mail"
		{"over quota", "quota ~"}, // tag 7: two phrases of one tag
	})
	for _, c := range []struct {
		text string
		want []int // tags found, in order of first hit
	}{
		{"550 User Unknown", []int{0}},
		{"mailbox-unknown here", []int{0}},
		{"unknown user", nil},
		{"there is no such user here", []int{1}},
		{"no such mailbox", []int{1}},
		{"The mailbox is full.", []int{2}},
		{"Mailbox is full", []int{2}},
		{"mailbox is not full", nil},
		{"SPAMMING detected", []int{3}},
		{"spam content detected", nil},
		{"spam detected", []int{3}},
		{"Your message was, sadly, rejected", []int{4}},
		{"message one two three four five six seven rejected", nil},
		{"quota exceeded", []int{5, 7}},
		{"your E-Mail address", []int{6}},
		{"over quota", []int{7}},
		{"nothing to see", nil},
	} {
		var tok tokens
		tok.reset(c.text)
		hits := m.findAll(&tok, 0, tok.n(), nil)
		var got []int
		for _, h := range hits {
			if tag := m.phrases[h.phrase].tag; !slices.Contains(got, tag) {
				got = append(got, tag)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: tags %v, want %v", c.text, got, c.want)
		}
	}
	// One phrase id for every spelling of a written phrase: "no such
	// user" is one hit, not one for "no such" and one more.
	var tok tokens
	tok.reset("no such user")
	if hits := m.findAll(&tok, 0, tok.n(), nil); len(hits) != 1 || m.phrases[hits[0].phrase].text != "no such user?" {
		t.Errorf("no such user: hits %v", hits)
	}
}

// TestMatcherRefusesBadPhrases: a phrase the trie cannot hold is a
// programming error, caught when the tables are built.
func TestMatcherRefusesBadPhrases(t *testing.T) {
	for _, p := range []string{"~ rejected", "User unknown", "user- unknown", "maybe? perhaps?", "a||b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%q: no panic", p)
				}
			}()
			newMatcher([][]string{{p}})
		}()
	}
}
