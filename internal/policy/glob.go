package policy

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// A pattern is lexed into tokens: literal text, the IAM wildcards * and ?, and policy
// variables. Variable values are substituted as literal tokens, never re-lexed, so a
// value such as "*" or "+" matches only itself.

type tokKind uint8

const (
	tokLit   tokKind = iota // literal text
	tokStar                 // * : any run of characters, including none and including "/"
	tokQuest                // ? : exactly one character
	tokVar                  // ${key}
)

type token struct {
	kind tokKind
	lit  string // tokLit
	key  keyRef // tokVar
}

// appendLit appends literal text, merging it with a preceding literal.
func appendLit(toks []token, s string) []token {
	if s == "" {
		return toks
	}
	if n := len(toks); n > 0 && toks[n-1].kind == tokLit {
		toks[n-1].lit += s
		return toks
	}
	return append(toks, token{kind: tokLit, lit: s})
}

// lexLiteralWild lexes s with * and ? as wildcards and no variables.
func lexLiteralWild(s string) []token {
	var toks []token
	for s != "" {
		i := strings.IndexAny(s, "*?")
		if i < 0 {
			return appendLit(toks, s)
		}
		toks = appendLit(toks, s[:i])
		if s[i] == '*' {
			toks = append(toks, token{kind: tokStar})
		} else {
			toks = append(toks, token{kind: tokQuest})
		}
		s = s[i+1:]
	}
	return toks
}

// lexPattern lexes s. With wild set, * and ? are wildcards; otherwise they are literal
// (StringEquals values). "${name}" is a policy variable; "${*}", "${?}" and "${$}" are the
// literal characters *, ? and $. A "$" not followed by "{" is literal (as in "$aws/...").
func lexPattern(s string, wild bool) ([]token, error) {
	var toks []token
	special := "$"
	if wild {
		special = "$*?"
	}
	for s != "" {
		i := strings.IndexAny(s, special)
		if i < 0 {
			return appendLit(toks, s), nil
		}
		toks = appendLit(toks, s[:i])
		switch s[i] {
		case '*':
			toks = append(toks, token{kind: tokStar})
			s = s[i+1:]
			continue
		case '?':
			toks = append(toks, token{kind: tokQuest})
			s = s[i+1:]
			continue
		}
		// '$'
		if !strings.HasPrefix(s[i:], "${") {
			toks = appendLit(toks, "$")
			s = s[i+1:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("variable %q is not closed with }", truncate(s[i:], 60))
		}
		name := s[i+2 : i+end]
		s = s[i+end+1:]
		switch name {
		case "*", "?", "$":
			toks = appendLit(toks, name)
			continue
		case "":
			return nil, fmt.Errorf("empty variable ${}")
		}
		if strings.Contains(name, ",") {
			return nil, fmt.Errorf("variable ${%s}: default values are not supported", name)
		}
		k, err := parseKey(name)
		if err != nil {
			return nil, fmt.Errorf("variable ${%s}: %v", name, err)
		}
		toks = append(toks, token{kind: tokVar, key: k})
	}
	return toks, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func hasVars(toks []token) bool {
	for _, t := range toks {
		if t.kind == tokVar {
			return true
		}
	}
	return false
}

// globKind selects a fast path for common shapes.
type globKind uint8

const (
	globGeneral globKind = iota
	globExact            // no wildcards: s == lit
	globPrefix           // lit*: strings.HasPrefix(s, lit)
	globAny              // *
	globLevels           // lit + one of set + rest: a relational variable's values (relations.go)
)

// glob is a compiled IAM wildcard pattern (tokens without variables).
// The pattern is segs[0] * segs[1] * ... * segs[n-1]; the first and last segments may be
// empty (leading or trailing *), the others are not.
type glob struct {
	kind globKind
	lit  string
	segs []segment
	// level is set for globLevels.
	level *levelSet
}

// piece is literal text followed by q "?" wildcards.
type piece struct {
	lit string
	q   int
}

// segment is a run of the pattern without "*". pieces is nil when it has no "?".
type segment struct {
	lit    string
	pieces []piece
}

func compileGlob(toks []token) glob {
	segs := []segment{{}}
	var ps []piece // pieces of the current segment
	hasQ := false
	flush := func() {
		s := &segs[len(segs)-1]
		if hasQ {
			s.pieces = ps
		} else if len(ps) > 0 {
			s.lit = ps[0].lit
		}
		ps, hasQ = nil, false
	}
	prevStar := false
	for _, t := range toks {
		switch t.kind {
		case tokLit:
			if n := len(ps); n > 0 && ps[n-1].q == 0 {
				ps[n-1].lit += t.lit
			} else {
				ps = append(ps, piece{lit: t.lit})
			}
		case tokQuest:
			hasQ = true
			if n := len(ps); n > 0 {
				ps[n-1].q++
			} else {
				ps = append(ps, piece{q: 1})
			}
		case tokStar:
			if prevStar {
				continue
			}
			flush()
			segs = append(segs, segment{})
		case tokVar:
			panic("policy: compileGlob called with an unsubstituted variable")
		}
		prevStar = t.kind == tokStar
	}
	flush()
	g := glob{segs: segs}
	switch {
	case len(segs) == 1 && segs[0].pieces == nil:
		g.kind, g.lit = globExact, segs[0].lit
	case len(segs) == 2 && segs[0].pieces == nil && segs[1].empty():
		if segs[0].lit == "" {
			g.kind = globAny
		} else {
			g.kind, g.lit = globPrefix, segs[0].lit
		}
	}
	return g
}

func (g *segment) empty() bool { return g.pieces == nil && g.lit == "" }

// at reports where the segment ends if it matches s starting at i, or -1.
func (g *segment) at(s string, i int) int {
	if g.pieces == nil {
		if strings.HasPrefix(s[i:], g.lit) {
			return i + len(g.lit)
		}
		return -1
	}
	for _, p := range g.pieces {
		if !strings.HasPrefix(s[i:], p.lit) {
			return -1
		}
		i += len(p.lit)
		for range p.q {
			if i >= len(s) {
				return -1
			}
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
		}
	}
	return i
}

// before reports where the segment starts if it matches s ending at j, or -1.
func (g *segment) before(s string, j int) int {
	if g.pieces == nil {
		if strings.HasSuffix(s[:j], g.lit) {
			return j - len(g.lit)
		}
		return -1
	}
	for k := len(g.pieces) - 1; k >= 0; k-- {
		p := g.pieces[k]
		for range p.q {
			if j <= 0 {
				return -1
			}
			_, n := utf8.DecodeLastRuneInString(s[:j])
			j -= n
		}
		if !strings.HasSuffix(s[:j], p.lit) {
			return -1
		}
		j -= len(p.lit)
	}
	return j
}

// find returns the end of the leftmost match of the segment inside s[lo:hi], or -1.
func (g *segment) find(s string, lo, hi int) int {
	if g.pieces == nil {
		k := strings.Index(s[lo:hi], g.lit)
		if k < 0 {
			return -1
		}
		return lo + k + len(g.lit)
	}
	first := g.pieces[0].lit
	s = s[:hi]
	for i := lo; i <= hi; {
		if first != "" {
			k := strings.Index(s[i:], first)
			if k < 0 {
				return -1
			}
			i += k
		}
		if e := g.at(s, i); e >= 0 {
			return e
		}
		if i >= hi {
			break
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	return -1
}

// match reports whether s matches the pattern. s must be valid UTF-8 for "?" to count
// characters rather than bytes; callers check that.
func (g *glob) match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globAny:
		return true
	case globLevels:
		return g.level.match(g.lit, s)
	}
	segs := g.segs
	n := len(segs)
	if n == 1 {
		return segs[0].at(s, 0) == len(s)
	}
	lo := segs[0].at(s, 0)
	if lo < 0 {
		return false
	}
	hi := segs[n-1].before(s, len(s))
	if hi < lo {
		return false
	}
	for k := 1; k < n-1; k++ {
		e := segs[k].find(s, lo, hi)
		if e < 0 {
			return false
		}
		lo = e
	}
	return true
}

// residuals returns the patterns the rest of a string must match, given that the string
// starts with prefix and the whole string must match toks. prefix is ASCII without
// wildcards (a resource-type word and "/"). Variables must only occur after the first
// literal "/" of toks, which is what consumes the prefix's final "/", so they are never
// reached while consuming the prefix.
func residuals(toks []token, prefix string) [][]token {
	cur := addState(nil, nfaState{}, toks)
	for c := 0; c < len(prefix); c++ {
		var next []nfaState
		for _, st := range cur {
			if st.i >= len(toks) {
				continue
			}
			t := toks[st.i]
			switch t.kind {
			case tokLit:
				if t.lit[st.off] == prefix[c] {
					if st.off+1 == len(t.lit) {
						next = addState(next, nfaState{st.i + 1, 0}, toks)
					} else {
						next = addState(next, nfaState{st.i, st.off + 1}, toks)
					}
				}
			case tokQuest:
				next = addState(next, nfaState{st.i + 1, 0}, toks)
			case tokStar:
				next = addState(next, st, toks)
			case tokVar:
				// Unreachable for validated resources (see above).
			}
		}
		cur = next
		if len(cur) == 0 {
			return nil
		}
	}
	var out [][]token
	for _, st := range cur {
		// A state just after a star is subsumed by the star state itself ("*" matches "").
		if st.off == 0 && st.i > 0 && toks[st.i-1].kind == tokStar && slices.Contains(cur, nfaState{st.i - 1, 0}) {
			continue
		}
		var r []token
		if st.off > 0 {
			r = append(r, token{kind: tokLit, lit: toks[st.i].lit[st.off:]})
			r = append(r, toks[st.i+1:]...)
		} else {
			r = append(r, toks[st.i:]...)
		}
		out = append(out, r)
	}
	return out
}

// nfaState is a position in a token list: token i, byte off inside a literal token.
type nfaState struct{ i, off int }

// addState adds st to list, with the states reachable from it by letting stars match
// nothing.
func addState(list []nfaState, st nfaState, toks []token) []nfaState {
	for {
		if slices.Contains(list, st) {
			return list
		}
		list = append(list, st)
		if st.i >= len(toks) || toks[st.i].kind != tokStar {
			return list
		}
		st = nfaState{st.i + 1, 0}
	}
}
