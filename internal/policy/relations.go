package policy

import "strings"

// levelSet matches the common shape of a pattern with one relational
// variable, such as "things/${gatehouse:User.Things.owner}/telemetry/*":
// a literal prefix, then one of the variable's values as a whole topic level,
// then the rest of the pattern (empty or starting with "/"). Relational
// values never contain "/" (see unsafeValue), so the value ends at the first
// "/" after the prefix and one map lookup replaces a pattern per value: a
// person who owns thousands of things is checked as fast as one who owns
// one, without allocating, and without the MaxExpansions bound.
type levelSet struct {
	values map[string]struct{}
	// rest matches what follows the value; nil when the pattern ends there.
	rest *glob
}

func (l *levelSet) match(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	s = s[len(prefix):]
	i := strings.IndexByte(s, '/')
	if i < 0 {
		if l.rest != nil {
			return false
		}
		_, ok := l.values[s]
		return ok
	}
	if l.rest == nil {
		return false
	}
	if _, ok := l.values[s[:i]]; !ok {
		return false
	}
	return l.rest.match(s[i:])
}

// levelSetGlob compiles toks into a levelSet glob when they have that shape
// and the variable has usable values. Otherwise (other shapes, no values, or
// a Deny whose variable has an unusable value and so widens to "*") it
// reports false and the caller expands the pattern as usual.
func (r *resolver) levelSetGlob(toks []token, star bool) (glob, bool) {
	vi := -1
	for i, t := range toks {
		if t.kind != tokVar {
			continue
		}
		if vi >= 0 || !t.key.relational() {
			return glob{}, false
		}
		vi = i
	}
	if vi < 0 || vi > 1 || (vi == 1 && toks[0].kind != tokLit) {
		return glob{}, false
	}
	rest := toks[vi+1:]
	if len(rest) > 0 && (rest[0].kind != tokLit || !strings.HasPrefix(rest[0].lit, "/")) {
		return glob{}, false
	}
	vals := r.ctx.lookup(toks[vi].key, nil)
	set := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		if unsafeValue(v) {
			if star {
				return glob{}, false
			}
			continue
		}
		set[v] = struct{}{}
	}
	if len(set) == 0 {
		return glob{}, false
	}
	g := glob{kind: globLevels, level: &levelSet{values: set}}
	if vi == 1 {
		g.lit = toks[0].lit
	}
	if len(rest) > 0 {
		rg := compileGlob(rest)
		g.level.rest = &rg
	}
	return g, true
}
