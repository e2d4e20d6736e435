package policy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options controls how documents are compiled into a [Set].
type Options struct {
	// Region and Account, when set, are compared with the REGION and ACCOUNT components
	// of ARN resources (which may use * and ?); an ARN that does not match them never
	// matches a request. When empty, any region or account matches, so a policy written
	// for arn:aws:iot:us-east-1:123456789012:... works unchanged. Short-form resources
	// (topic/x) and "*" have no region or account and always apply.
	Region  string
	Account string
}

// NamedDocument is a document with the name it is known by (for example the policy's
// name in the registry). The name appears in [Decision] and in errors.
type NamedDocument struct {
	Name     string
	Document *Document
}

// Set is the compiled union of the policies that apply to a principal. Like AWS IoT,
// the documents are evaluated together: any matching Deny in any document wins over
// every Allow. A Set is immutable and safe for concurrent use; cache it per principal.
type Set struct {
	stmts []cstmt
}

// cstmt is a statement prepared for binding.
type cstmt struct {
	ref     StatementRef
	st      *statement
	entries []int // indexes of st.entries that apply under the Options
	dropped int   // entries that cannot apply (other region or account)
	types   [numResourceTypes]actionMask
	// static is the rule for each resource type when it does not depend on variables.
	static    [numResourceTypes]rule
	hasStatic [numResourceTypes]bool
}

// rule is a statement's resource test for one resource type.
type rule struct {
	mask  actionMask
	not   bool // NotResource
	stmt  int32
	globs []glob
}

func (r *rule) matches(s string) bool {
	for i := range r.globs {
		if r.globs[i].match(s) {
			return !r.not
		}
	}
	return r.not
}

// Compile compiles documents with the zero [Options] (any region and account).
func Compile(docs ...NamedDocument) (*Set, error) { return Options{}.Compile(docs...) }

// Compile compiles the documents into a Set. Names must be unique.
func (o Options) Compile(docs ...NamedDocument) (*Set, error) {
	s := &Set{}
	names := make(map[string]bool, len(docs))
	for _, nd := range docs {
		if nd.Document == nil {
			return nil, &Error{Policy: nd.Name, Statement: -1, Msg: "document is nil"}
		}
		if names[nd.Name] {
			return nil, &Error{Policy: nd.Name, Statement: -1, Msg: "two documents have this name"}
		}
		names[nd.Name] = true
		for i := range nd.Document.stmts {
			st := &nd.Document.stmts[i]
			cs := cstmt{
				ref:   StatementRef{Policy: nd.Name, Index: i, Sid: st.sid, Effect: st.effect},
				st:    st,
				types: st.actions.types(),
			}
			for ei := range st.entries {
				if o.selects(&st.entries[ei]) {
					cs.entries = append(cs.entries, ei)
				} else {
					cs.dropped++
				}
			}
			si := int32(len(s.stmts))
			for t := range numResourceTypes {
				if cs.types[t] != 0 {
					cs.static[t], cs.hasStatic[t] = cs.staticRule(t, si)
				}
			}
			s.stmts = append(s.stmts, cs)
		}
	}
	return s, nil
}

func (o Options) selects(e *entry) bool {
	if e.region == nil {
		return true
	}
	return (o.Region == "" || e.region.match(o.Region)) && (o.Account == "" || e.account.match(o.Account))
}

// staticRule builds the rule for type t if no entry's pattern for t has a variable.
func (cs *cstmt) staticRule(t ResourceType, si int32) (rule, bool) {
	rl := rule{mask: cs.types[t], not: cs.st.notResource, stmt: si}
	for _, ei := range cs.entries {
		e := &cs.st.entries[ei]
		if t == ResourceNone {
			if e.any {
				rl.globs = append(rl.globs, glob{kind: globAny})
			}
			continue
		}
		for _, rs := range e.res[t] {
			if rs.vars {
				return rule{}, false
			}
			rl.globs = append(rl.globs, rs.g)
		}
	}
	return rl, true
}

// Bound is a [Set] bound to one principal's [Context]: every variable is substituted
// and every condition evaluated, once, so that [Bound.Allowed] only matches patterns.
// Bind once per connection (and again when the principal's attributes or policies
// change). A Bound is immutable and safe for concurrent use.
type Bound struct {
	set   *Set
	deny  [numResourceTypes][]rule
	allow [numResourceTypes][]rule
	notes []note
}

// note records why (part of) a statement does not apply to the bound context.
type note struct {
	stmt int32
	kind noteKind
	idx  int32 // condition or entry index in the statement
	miss unresolved
}

type noteKind uint8

const (
	noteCondFalse          noteKind = iota + 1 // condition idx is false
	noteCondUnresolved                         // condition idx is false: a variable in its values is unresolved
	noteEntryUnresolved                        // entry idx: unresolved variable; Allow Resource matches nothing, Deny NotResource excludes nothing
	noteNotResourceUnknown                     // entry idx of an Allow NotResource: unresolved variable, the statement grants nothing
)

// unresolved names a variable that could not be substituted.
type unresolved struct {
	key     keyRef
	tooMany bool // more than MaxExpansions combinations of values
}

func (u unresolved) String() string {
	if u.tooMany {
		return fmt.Sprintf("the variables have more than %d combinations of values", MaxExpansions)
	}
	return "${" + u.key.String() + "} has no value"
}

// Bind resolves the Set's variables and conditions for ctx. A nil Set binds to a
// Bound that denies everything.
func (s *Set) Bind(ctx Context) *Bound {
	b := &Bound{set: s}
	if s == nil {
		return b
	}
	r := &resolver{ctx: &ctx}
	for i := range s.stmts {
		cs := &s.stmts[i]
		si := int32(i)
		if !b.conditionsHold(si, cs, r) {
			continue
		}
		for t := range numResourceTypes {
			if cs.types[t] == 0 {
				continue
			}
			rl, ok := cs.static[t], cs.hasStatic[t]
			if !ok {
				if rl, ok = b.bindRule(si, cs, t, r); !ok {
					continue
				}
			}
			if !rl.not && len(rl.globs) == 0 {
				continue // matches nothing
			}
			if cs.st.effect == Deny {
				b.deny[t] = append(b.deny[t], rl)
			} else {
				b.allow[t] = append(b.allow[t], rl)
			}
		}
	}
	return b
}

func (b *Bound) addNote(n note) {
	if k := len(b.notes); k > 0 && b.notes[k-1] == n {
		return
	}
	b.notes = append(b.notes, n)
}

func (b *Bound) conditionsHold(si int32, cs *cstmt, r *resolver) bool {
	for ci := range cs.st.conds {
		ok, miss := cs.st.conds[ci].eval(r, cs.st.effect)
		if ok {
			continue
		}
		if miss != nil {
			b.addNote(note{stmt: si, kind: noteCondUnresolved, idx: int32(ci), miss: *miss})
		} else {
			b.addNote(note{stmt: si, kind: noteCondFalse, idx: int32(ci)})
		}
		return false
	}
	return true
}

// bindRule substitutes variables in the statement's patterns for type t. See the
// package documentation for what an unresolved variable does in each position.
func (b *Bound) bindRule(si int32, cs *cstmt, t ResourceType, r *resolver) (rule, bool) {
	deny, not := cs.st.effect == Deny, cs.st.notResource
	rl := rule{mask: cs.types[t], not: not, stmt: si}
	for _, ei := range cs.entries {
		e := &cs.st.entries[ei]
		for _, rs := range e.res[t] {
			if !rs.vars {
				rl.globs = append(rl.globs, rs.g)
				continue
			}
			if g, ok := r.levelSetGlob(rs.toks, deny && !not); ok {
				rl.globs = append(rl.globs, g)
				continue
			}
			// Only a Deny's Resource may widen an unknown value to "*".
			alts, miss, ok := r.expand(rs.toks, deny && !not, t == ResourceTopicFilter)
			if !ok {
				if !deny && not {
					b.addNote(note{stmt: si, kind: noteNotResourceUnknown, idx: int32(ei), miss: miss})
					return rule{}, false
				}
				b.addNote(note{stmt: si, kind: noteEntryUnresolved, idx: int32(ei), miss: miss})
				continue
			}
			for _, alt := range alts {
				rl.globs = append(rl.globs, compileGlob(alt))
			}
		}
	}
	return rl, true
}

// resolver substitutes variables from a Context.
type resolver struct {
	ctx *Context
}

// expand substitutes the variables in toks, returning one token list per combination
// of values (multi-valued variables such as ${gatehouse:Token.Scope} give several).
// Values are inserted as literal text. A variable without a usable value is unresolved:
// with star set it becomes a "*" wildcard (it could be anything), otherwise expand
// fails and names it. With filter set (topicfilter resources), values containing the
// MQTT wildcards + or # are unusable: they would let the client subscribe to a
// wildcard filter (AWS's ${iot:ClientId}-in-topicfilter pitfall). Values of
// relational variables (gatehouse:User.*, gatehouse:Thing.Children) that
// contain + # * ? / $ or NUL are unusable in every position.
func (r *resolver) expand(toks []token, star, filter bool) (alts [][]token, miss unresolved, ok bool) {
	vals := make([][]string, len(toks))
	total := 1
	for i, t := range toks {
		if t.kind != tokVar {
			continue
		}
		vs := r.ctx.lookup(t.key, nil)
		if t.key.relational() {
			// Names from relationships are substituted only when they are
			// plain names: a thing called "+" or "*" never widens an Allow,
			// and makes a Deny deny whatever the variable could be.
			kept := vs[:0]
			for _, v := range vs {
				if unsafeValue(v) {
					if star {
						kept = kept[:0]
						break
					}
					continue
				}
				kept = append(kept, v)
			}
			vs = kept
		}
		if filter {
			kept := vs[:0]
			for _, v := range vs {
				if strings.ContainsAny(v, "+#") {
					if star {
						kept = kept[:0]
						break
					}
					continue
				}
				kept = append(kept, v)
			}
			vs = kept
		}
		if len(vs) == 0 {
			if !star {
				return nil, unresolved{key: t.key}, false
			}
			continue // nil: becomes "*"
		}
		vals[i] = vs
		if total *= len(vs); total > MaxExpansions {
			if !star {
				return nil, unresolved{key: t.key, tooMany: true}, false
			}
			vals[i] = nil
			total /= len(vs)
		}
	}
	idx := make([]int, len(toks))
	for {
		alt := make([]token, 0, len(toks))
		for i, t := range toks {
			switch {
			case t.kind != tokVar:
				if t.kind == tokLit {
					alt = appendLit(alt, t.lit)
				} else {
					alt = append(alt, t)
				}
			case vals[i] == nil:
				alt = append(alt, token{kind: tokStar})
			default:
				alt = appendLit(alt, vals[i][idx[i]])
			}
		}
		alts = append(alts, alt)
		i := len(toks) - 1
		for ; i >= 0; i-- {
			if vals[i] == nil {
				continue
			}
			if idx[i]++; idx[i] < len(vals[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return alts, unresolved{}, true
		}
	}
}

// Allowed reports whether the bound principal may perform action a on resource: the
// bare client id (Connect), topic name (Publish, Receive, RetainPublish,
// GetRetainedMessage), topic filter (Subscribe) or thing name (shadow and jobs
// actions); resource is ignored for ListRetainedMessages. It is false for an invalid
// action, an empty resource and one that is not valid UTF-8.
//
// Allowed does not allocate. It is the broker's hot path.
func (b *Bound) Allowed(a Action, resource string) bool {
	if b == nil || !a.valid() {
		return false
	}
	t := a.ResourceType()
	if t == ResourceNone {
		resource = ""
	} else if resource == "" || !utf8.ValidString(resource) {
		return false
	}
	bit := actionMask(1) << a
	deny := b.deny[t]
	for i := range deny {
		if deny[i].mask&bit != 0 && deny[i].matches(resource) {
			return false
		}
	}
	allow := b.allow[t]
	for i := range allow {
		if allow[i].mask&bit != 0 && allow[i].matches(resource) {
			return true
		}
	}
	return false
}

// Reason is why a [Decision] came out as it did.
type Reason uint8

// Reasons, as in IAM's evaluation logic.
const (
	ImplicitDeny  Reason = iota // no statement allows the request (the default)
	ExplicitDeny                // a Deny statement matches; it overrides every Allow
	ExplicitAllow               // an Allow statement matches and no Deny does
)

func (r Reason) String() string {
	switch r {
	case ImplicitDeny:
		return "ImplicitDeny"
	case ExplicitDeny:
		return "ExplicitDeny"
	case ExplicitAllow:
		return "ExplicitAllow"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// StatementRef identifies a statement: the document's name, the statement's
// zero-based index in the document, its Sid and Effect.
type StatementRef struct {
	Policy string
	Index  int
	Sid    string
	Effect Effect
}

func (r StatementRef) String() string {
	s := fmt.Sprintf("%q statement %d", r.Policy, r.Index)
	if r.Sid != "" {
		s += fmt.Sprintf(" (Sid %q)", r.Sid)
	}
	return s
}

// NotApplied is a statement for the requested action that did not match, with the
// reason found when the context was bound (a false condition, a variable without a
// value) or when the set was compiled (resources for another region or account).
type NotApplied struct {
	StatementRef
	Why string
}

// Decision explains an authorization decision, for the policy simulator and for logs.
type Decision struct {
	Action   Action
	Resource string
	Allowed  bool
	Reason   Reason
	// Matched lists every statement that matched the request, Deny statements first.
	Matched []StatementRef
	// NotApplied lists statements for the action that did not match, with why.
	NotApplied []NotApplied
	// Problem is set when the request itself was rejected before evaluation (invalid
	// action, empty or non-UTF-8 resource).
	Problem string
}

func (d Decision) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s on %q", d.Reason, d.Action, d.Resource)
	if d.Problem != "" {
		b.WriteString(": " + d.Problem)
	}
	for _, m := range d.Matched {
		fmt.Fprintf(&b, "; %s by %s", m.Effect, m)
	}
	return b.String()
}

// Explain evaluates like [Bound.Allowed] and reports which statements matched and why
// others did not. It allocates; use it for the simulator, audits and debug logs.
func (b *Bound) Explain(a Action, resource string) Decision {
	d := Decision{Action: a, Resource: resource}
	switch {
	case b == nil || b.set == nil:
		d.Problem = "no policies"
		return d
	case !a.valid():
		d.Problem = "unknown action"
		return d
	}
	t := a.ResourceType()
	res := resource
	if t == ResourceNone {
		res = ""
	} else if resource == "" {
		d.Problem = "empty resource"
		return d
	} else if !utf8.ValidString(resource) {
		d.Problem = "resource is not valid UTF-8"
		return d
	}
	bit := actionMask(1) << a
	matched := map[int32]bool{}
	for _, rules := range [][]rule{b.deny[t], b.allow[t]} {
		for i := range rules {
			r := &rules[i]
			if r.mask&bit != 0 && r.matches(res) && !matched[r.stmt] {
				matched[r.stmt] = true
				d.Matched = append(d.Matched, b.set.stmts[r.stmt].ref)
			}
		}
	}
	for _, m := range d.Matched {
		if m.Effect == Deny {
			d.Reason = ExplicitDeny
			break
		}
		d.Reason = ExplicitAllow
	}
	d.Allowed = d.Reason == ExplicitAllow
	for _, n := range b.notes {
		cs := &b.set.stmts[n.stmt]
		if cs.st.actions.has(a) && !matched[n.stmt] {
			d.NotApplied = append(d.NotApplied, NotApplied{cs.ref, n.why(cs)})
		}
	}
	for i := range b.set.stmts {
		cs := &b.set.stmts[i]
		if cs.dropped > 0 && cs.st.actions.has(a) && !matched[int32(i)] {
			d.NotApplied = append(d.NotApplied, NotApplied{cs.ref,
				fmt.Sprintf("%d of its %d resource ARNs are for another region or account", cs.dropped, len(cs.st.entries))})
		}
	}
	return d
}

func (n note) why(cs *cstmt) string {
	field := "Resource"
	if cs.st.notResource {
		field = "NotResource"
	}
	switch n.kind {
	case noteCondFalse:
		return "Condition " + cs.st.conds[n.idx].String() + " is false"
	case noteCondUnresolved:
		return "Condition " + cs.st.conds[n.idx].String() + " is false: " + n.miss.String()
	case noteEntryUnresolved:
		e := cs.st.entries[n.idx].raw
		if cs.st.notResource {
			return fmt.Sprintf("%s[%d] %q excludes nothing: %s", field, n.idx, e, n.miss)
		}
		return fmt.Sprintf("%s[%d] %q matches nothing: %s", field, n.idx, e, n.miss)
	case noteNotResourceUnknown:
		return fmt.Sprintf("%s[%d] %q cannot be resolved, so the statement grants nothing: %s", field, n.idx, cs.st.entries[n.idx].raw, n.miss)
	}
	return "?"
}
