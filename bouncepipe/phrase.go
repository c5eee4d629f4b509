package bouncepipe

import (
	"fmt"
	"strings"
	"sync"
)

// Phrases. Bounce wording is matched word by word, not with regular
// expressions: a report is split into lower-case words once, and every
// phrase that starts with a word is looked up by that word, so the cost
// is one map lookup per word however many phrases there are.
//
// A phrase is written as words separated by spaces:
//
//	user unknown            the two words in a row
//	user|mailbox unknown    either word, then "unknown"
//	mail* full              a word starting with "mail", then "full"
//	mailbox ~ full          up to maxGap words between
//	no such user?           "user" may be missing (expanded to two phrases)
//
// Words are runs of letters, digits, apostrophes and non-ASCII bytes; any
// other character separates them, so "user-unknown", "User Unknown" and
// "user_unknown" all read "user unknown", and a phrase never matches
// inside a word. A hyphen after a single letter joins ("e-mail" reads
// "email", "X-Unix" reads "xunix"). Only ASCII letters are lower-cased, so
// the words keep the byte offsets of the text.

const maxGap = 6

type ptok struct {
	word   string
	prefix bool // matches any word starting with word
	gap    bool // skips up to maxGap words
}

type phrase struct {
	text string // as written, for explanations
	tag  int
}

// matcher finds phrases in text. The phrases are compiled into a trie
// of words, so the work at each word of a text is the length of the
// longest phrase that matches there, not the number of phrases.
type matcher struct {
	phrases []phrase
	root    *node
	ntags   int
	// first has a bit for the first two bytes of every word that starts
	// a phrase, so most words of a text cost no lookup.
	first [1 << 16 / 64]uint64
	// vocab numbers every word the phrases spell out; a text's words are
	// looked up in it once each, and the trie is walked by number.
	vocab map[string]int32
	// inVocab has a bit for the first two bytes of every vocab word.
	inVocab [1 << 16 / 64]uint64
	// rootByID is the root's edges by word number.
	rootByID []*node
	// preFirst has a bit for the first two bytes of every word prefix
	// that starts a phrase ("spam*").
	preFirst [1 << 16 / 64]uint64
}

// firstKey is the filter key of a word: its first two bytes.
func firstKey(w []byte) int {
	k := int(w[0]) << 8
	if len(w) > 1 {
		k |= int(w[1])
	}
	return k
}

func (m *matcher) mayStart(w []byte) bool {
	k := firstKey(w)
	return m.first[k>>6]&(1<<(k&63)) != 0
}

// node is one word position in the trie.
type node struct {
	next []edge    // the next word, by number
	pre  []preEdge // the next word starts with
	gap  *node     // after up to maxGap words
	ends []int32   // phrases that end here
}

type edge struct {
	id int32
	to *node
}

type preEdge struct {
	prefix string
	to     *node
}

func newNode() *node { return &node{} }

// wordID returns the number of a vocabulary word, adding it.
func (m *matcher) wordID(w string) int32 {
	id, ok := m.vocab[w]
	if !ok {
		id = int32(len(m.vocab))
		m.vocab[w] = id
		k := firstKey([]byte(w))
		m.inVocab[k>>6] |= 1 << (k & 63)
		if len(w) == 1 {
			// A one-letter word ends the key at its own end.
			k = int(w[0]) << 8
			m.inVocab[k>>6] |= 1 << (k & 63)
		}
	}
	return id
}

// newMatcher compiles phrases; lists[tag] are the phrases of that tag.
// Each written phrase is one phrase id, at the end of every trie path
// its alternatives and optional words spell.
func newMatcher(lists [][]string) *matcher {
	if len(lists) > maxTags {
		panic(fmt.Sprintf("bouncepipe: %d phrase lists, at most %d", len(lists), maxTags))
	}
	m := &matcher{root: newNode(), ntags: len(lists), vocab: map[string]int32{}}
	for tag, list := range lists {
		for _, text := range list {
			id := int32(len(m.phrases))
			m.phrases = append(m.phrases, phrase{text: text, tag: tag})
			m.insert(m.root, parsePhrase(text), id, text)
		}
	}
	for _, e := range m.root.pre {
		k := firstKey([]byte(e.prefix))
		m.preFirst[k>>6] |= 1 << (k & 63)
		if len(e.prefix) == 1 {
			for c := 0; c < 256; c++ {
				k = int(e.prefix[0])<<8 | c
				m.preFirst[k>>6] |= 1 << (k & 63)
			}
		}
	}
	m.rootByID = make([]*node, len(m.vocab))
	for _, e := range m.root.next {
		m.rootByID[e.id] = e.to
	}
	return m
}

func (n *node) child(m *matcher, t ptok) *node {
	switch {
	case t.gap:
		if n.gap == nil {
			n.gap = newNode()
		}
		return n.gap
	case t.prefix:
		for _, e := range n.pre {
			if e.prefix == t.word {
				return e.to
			}
		}
		c := newNode()
		n.pre = append(n.pre, preEdge{t.word, c})
		return c
	}
	id := m.wordID(t.word)
	for _, e := range n.next {
		if e.id == id {
			return e.to
		}
	}
	c := newNode()
	n.next = append(n.next, edge{id, c})
	return c
}

func appendUnique(s []int, n int) []int {
	for _, v := range s {
		if v == n {
			return s
		}
	}
	return append(s, n)
}

// phraseWord is one written word of a phrase: its alternatives, and
// whether it may be missing.
type phraseWord struct {
	alts     []ptok
	optional bool
}

// parsePhrase reads a written phrase into its words.
func parsePhrase(text string) []phraseWord {
	var out []phraseWord
	for _, w := range strings.Fields(text) {
		pw := phraseWord{optional: strings.HasSuffix(w, "?") && len(w) > 1}
		w = strings.TrimSuffix(w, "?")
		if w == "~" {
			pw.alts = []ptok{{gap: true}}
		} else {
			for _, a := range strings.Split(w, "|") {
				t := ptok{word: a}
				if strings.HasSuffix(a, "*") {
					t = ptok{word: strings.TrimSuffix(a, "*"), prefix: true}
				}
				if !isPlainWord(t.word) && (t.word == "" || t.word != normWord(t.word)) {
					panic(fmt.Sprintf("bouncepipe: bad word %q in phrase %q", a, text))
				}
				pw.alts = append(pw.alts, t)
			}
		}
		out = append(out, pw)
	}
	return out
}

// insert adds phrase id, the words ws, below trie node n: a path for
// every combination of alternatives and optional words.
func (m *matcher) insert(n *node, ws []phraseWord, id int32, text string) {
	if len(ws) == 0 {
		if n == m.root {
			panic(fmt.Sprintf("bouncepipe: phrase %q can match no word", text))
		}
		for _, e := range n.ends {
			if e == id {
				return // "a|a", or two ways to the same words
			}
		}
		n.ends = append(n.ends, id)
		return
	}
	if ws[0].optional {
		m.insert(n, ws[1:], id, text)
	}
	for _, t := range ws[0].alts {
		if n == m.root {
			m.markFirst(t, text)
		}
		m.insert(n.child(m, t), ws[1:], id, text)
	}
}

// markFirst sets the filter bits of t, a word that starts a phrase.
func (m *matcher) markFirst(t ptok, text string) {
	if t.gap {
		panic(fmt.Sprintf("bouncepipe: phrase %q starts with a gap", text))
	}
	w := []byte(t.word)
	if t.prefix && len(w) == 1 {
		for c := 0; c < 256; c++ {
			k := int(w[0])<<8 | c
			m.first[k>>6] |= 1 << (k & 63)
		}
		return
	}
	k := firstKey(w)
	m.first[k>>6] |= 1 << (k & 63)
	if len(w) == 1 {
		// A one-letter word ends the key at its own end.
		k = int(w[0]) << 8
		m.first[k>>6] |= 1 << (k & 63)
	}
}

// isPlainWord reports whether w is lower-case ASCII letters and digits
// only: a word the tokenizer writes as it is, checked without it.
func isPlainWord(w string) bool {
	for i := 0; i < len(w); i++ {
		if c := w[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return w != ""
}

// normWord returns w as the tokenizer would write it, to check phrases.
func normWord(w string) string {
	var t tokens
	t.reset(w)
	if t.n() != 1 {
		return ""
	}
	return t.word(0)
}

// tokens is a text split into lower-case words.
type tokens struct {
	buf   []byte  // the text, ASCII lower-cased, same length
	spans []int32 // start, end of each word in buf
	// ids memoises each word's vocabulary number: 0 not looked up yet,
	// -1 not in the vocabulary, else number + 1.
	ids []int32
}

// id returns the vocabulary number of word i, or -1.
func (t *tokens) id(m *matcher, i int) int32 {
	if v := t.ids[i]; v != 0 {
		if v < 0 {
			return -1
		}
		return v - 1
	}
	w := t.wordBytes(i)
	k := firstKey(w)
	v := int32(-1)
	if m.inVocab[k>>6]&(1<<(k&63)) != 0 {
		if id, ok := m.vocab[string(w)]; ok {
			v = id + 1
		}
	}
	t.ids[i] = v
	if v < 0 {
		return -1
	}
	return v - 1
}

// lowerByte lower-cases ASCII letters; wordByte marks the bytes of words
// (isWordByte), both by table for the tokenizer's inner loop.
var lowerByte, wordByte = func() (lo [256]byte, word [256]bool) {
	for i := range lo {
		c := byte(i)
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lo[i] = c
		word[i] = isWordByte(byte(i))
	}
	return
}()

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80 || c == '\''
}

// reset splits s into words, reusing the buffers.
func (t *tokens) reset(s string) {
	if cap(t.buf) < len(s) {
		t.buf = make([]byte, len(s))
	}
	t.buf = t.buf[:len(s)]
	if t.spans == nil {
		t.spans = make([]int32, 0, len(s)/3+2)
	}
	t.spans = t.spans[:0]
	t.ids = t.ids[:0]
	start := -1
	buf := t.buf
	for i := 0; i < len(s); i++ {
		c := lowerByte[s[i]]
		buf[i] = c
		if wordByte[c] {
			if start < 0 {
				if c == '\'' {
					continue // an apostrophe starts no word
				}
				start = i
			}
			continue
		}
		if c == '@' && start >= 0 && i+1 < len(s) && isDomainByte(s[i+1]) {
			// An address is one word, so that no phrase runs through
			// its parts.
			for i+1 < len(s) && isDomainByte(s[i+1]) {
				i++
				if s[i] >= 'A' && s[i] <= 'Z' {
					t.buf[i] = s[i] + 'a' - 'A'
				} else {
					t.buf[i] = s[i]
				}
			}
			t.endWord(start, i+1)
			start = -1
			continue
		}
		if c == '-' && start >= 0 && i-start == 1 && i+1 < len(s) && isLetter(s[i+1]) {
			// "e-mail": keep going, the hyphen is dropped below
			continue
		}
		if start >= 0 {
			t.endWord(start, i)
			start = -1
		}
	}
	if start >= 0 {
		t.endWord(start, len(s))
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (t *tokens) endWord(start, end int) {
	for end > start && t.buf[end-1] == '\'' {
		end--
	}
	if end <= start {
		return
	}
	if end-start > 2 && t.buf[start+1] == '-' {
		// "e-mail": close the hyphen up in place.
		copy(t.buf[start+1:end-1], t.buf[start+2:end])
		end--
		t.buf[end] = ' '
	}
	t.spans = append(t.spans, int32(start), int32(end))
}

func (t *tokens) n() int { return len(t.spans) / 2 }

func (t *tokens) word(i int) string {
	return string(t.buf[t.spans[2*i]:t.spans[2*i+1]])
}

func (t *tokens) wordBytes(i int) []byte {
	return t.buf[t.spans[2*i]:t.spans[2*i+1]]
}

// pos returns the byte offset of word i in the text.
func (t *tokens) pos(i int) int { return int(t.spans[2*i]) }

// hit is one phrase found in a text.
type hit struct {
	phrase int32
	word   int32 // index of its first word
}

// findAll appends to hits every phrase that starts among words
// [from, to) of t, in text order.
func (m *matcher) findAll(t *tokens, from, to int, hits []hit) []hit {
	if n := t.n(); len(t.ids) != n {
		if cap(t.ids) < n {
			t.ids = make([]int32, n)
		}
		t.ids = t.ids[:n]
		clear(t.ids)
	}
	for i := from; i < to; i++ {
		w := t.wordBytes(i)
		if !m.mayStart(w) {
			continue
		}
		var c *node
		if id := t.id(m, i); id >= 0 {
			c = m.rootByID[id]
		}
		k := firstKey(w)
		pre := m.preFirst[k>>6]&(1<<(k&63)) != 0
		if c == nil && !pre {
			continue
		}
		start := len(hits)
		if c != nil {
			hits = c.walk(m, t, i+1, int32(i), hits)
		}
		if pre {
			for _, e := range m.root.pre {
				if len(w) >= len(e.prefix) && string(w[:len(e.prefix)]) == e.prefix {
					hits = e.to.walk(m, t, i+1, int32(i), hits)
				}
			}
		}
		hits = dedupe(hits, start)
	}
	return hits
}

// dedupe drops repeated phrases among hits[start:], found through gaps
// of different lengths.
func dedupe(hits []hit, start int) []hit {
	if len(hits)-start < 2 {
		return hits
	}
	out := hits[:start]
	for k := start; k < len(hits); k++ {
		dup := false
		for _, h := range out[start:] {
			if h.phrase == hits[k].phrase {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, hits[k])
		}
	}
	return out
}

// walk appends the phrases that match from the trie node n, the next word
// being i, each as starting at word at.
func (n *node) walk(m *matcher, t *tokens, i int, at int32, hits []hit) []hit {
	for _, id := range n.ends {
		hits = append(hits, hit{id, at})
	}
	if i < t.n() {
		if len(n.next) > 0 {
			if id := t.id(m, i); id >= 0 {
				for _, e := range n.next {
					if e.id == id {
						hits = e.to.walk(m, t, i+1, at, hits)
						break
					}
				}
			}
		}
		if len(n.pre) > 0 {
			w := t.wordBytes(i)
			for _, e := range n.pre {
				if len(w) >= len(e.prefix) && string(w[:len(e.prefix)]) == e.prefix {
					hits = e.to.walk(m, t, i+1, at, hits)
				}
			}
		}
	}
	if n.gap != nil {
		for g := 0; g <= maxGap && i+g <= t.n(); g++ {
			hits = n.gap.walk(m, t, i+g, at, hits)
		}
	}
	return hits
}

// has reports whether s contains a phrase of tag, reading s with scratch
// buffers.
func (m *matcher) has(s string, tag int) bool { return m.hasShort(s, tag, 0) }

// hasShort is has for a text of at most maxWords words (0: any).
func (m *matcher) hasShort(s string, tag int, maxWords int) bool {
	t := tokenPool.Get().(*tokens)
	defer tokenPool.Put(t)
	t.reset(s)
	if maxWords > 0 && t.n() > maxWords {
		return false
	}
	hp := hitPool.Get().(*[]hit)
	defer hitPool.Put(hp)
	*hp = m.findAll(t, 0, t.n(), (*hp)[:0])
	for _, h := range *hp {
		if m.phrases[h.phrase].tag == tag {
			return true
		}
	}
	return false
}

var (
	tokenPool = sync.Pool{New: func() any { return new(tokens) }}
	hitPool   = sync.Pool{New: func() any { h := make([]hit, 0, 16); return &h }}
)

// maxTags is the most tags a matcher may have: tagSet is a fixed array.
const maxTags = 64

// tagSet records which tags a text matched, and the first phrase of each.
type tagSet struct {
	first [maxTags]int32 // phrase id + 1 of the first hit per tag, 0 for none
}

// add records a hit.
func (ts *tagSet) add(m *matcher, h hit) {
	if tag := m.phrases[h.phrase].tag; ts.first[tag] == 0 {
		ts.first[tag] = h.phrase + 1
	}
}

// merge adds the tags of o that ts lacks.
func (ts *tagSet) merge(o *tagSet) {
	for i, p := range o.first {
		if ts.first[i] == 0 {
			ts.first[i] = p
		}
	}
}

// has reports whether a phrase of tag was found.
func (ts *tagSet) has(tag int) bool { return tag >= 0 && tag < maxTags && ts.first[tag] != 0 }

// phraseOf returns the phrase that gave tag, as written, or "".
func (ts *tagSet) phraseOf(tag int) string {
	if !ts.has(tag) {
		return ""
	}
	return wording.phrases[ts.first[tag]-1].text
}

// scan returns the tags of the phrases in s, read with scratch buffers.
func (m *matcher) scan(s string) tagSet {
	var ts tagSet
	t := tokenPool.Get().(*tokens)
	t.reset(s)
	hp := hitPool.Get().(*[]hit)
	*hp = m.findAll(t, 0, t.n(), (*hp)[:0])
	for _, h := range *hp {
		ts.add(m, h)
	}
	hitPool.Put(hp)
	tokenPool.Put(t)
	return ts
}
