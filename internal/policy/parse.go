package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits on documents. AWS IoT limits a policy to 2,048 characters without white space
// (custom-authorizer policies likewise); Gatehouse allows more for hand-written policies
// but still bounds the work one document can cause.
const (
	// MaxDocumentSize is the largest document Parse accepts, in bytes, white space included.
	MaxDocumentSize = 20 << 10
	// MaxStatements is the most statements a document may have.
	MaxStatements = 100
	// MaxExpansions bounds how many patterns one Resource or Condition value may expand
	// into when multi-valued variables (such as ${gatehouse:Token.Scope}) are substituted.
	// Past it the value is treated as unresolved.
	MaxExpansions = 64
)

// Version is the only policy language version Gatehouse accepts.
const Version = "2012-10-17"

// Effect is a statement's effect.
type Effect uint8

// Effects.
const (
	Allow Effect = iota + 1
	Deny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return fmt.Sprintf("Effect(%d)", uint8(e))
}

// Document is a parsed, validated policy document. It is immutable and safe for
// concurrent use; compile it into a [Set] with other documents to evaluate it.
type Document struct {
	id    string
	stmts []statement
}

// ID returns the document's optional "Id" element.
func (d *Document) ID() string { return d.id }

// Len returns the number of statements in the document.
func (d *Document) Len() int { return len(d.stmts) }

type statement struct {
	sid         string
	effect      Effect
	actions     actionMask
	notResource bool
	entries     []entry
	conds       []condition
}

// entry is one Resource or NotResource value.
type entry struct {
	raw             string
	any             bool  // the value "*": matches every resource, including ResourceNone
	region, account *glob // ARN components; nil when not an ARN
	// res holds, per resource type, the patterns that the bare client id / topic /
	// filter / thing name must match (what is left after the "TYPE/" prefix).
	res [numResourceTypes][]residual
}

type residual struct {
	toks []token
	vars bool
	g    glob // compiled when !vars
}

// Parse parses and validates an AWS IoT policy document. Problems are reported as *Error.
func Parse(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, &Error{Statement: -1, Msg: fmt.Sprintf("document is %d bytes, more than the limit of %d", len(data), MaxDocumentSize)}
	}
	if !utf8.Valid(data) {
		return nil, &Error{Statement: -1, Msg: "document is not valid UTF-8"}
	}
	p := &parser{dec: json.NewDecoder(bytes.NewReader(data)), stmt: -1}
	p.dec.UseNumber()
	d, err := p.document()
	if err != nil {
		return nil, err
	}
	return d, nil
}

type parser struct {
	dec  *json.Decoder
	stmt int // current statement, -1 outside statements
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{Statement: p.stmt, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) token() (json.Token, error) {
	t, err := p.dec.Token()
	if err == nil {
		return t, nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &Error{Statement: p.stmt, Msg: "invalid JSON: unexpected end of document", Err: err}
	}
	msg := "invalid JSON: " + err.Error()
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		msg += fmt.Sprintf(" (at byte %d)", se.Offset)
	}
	return nil, &Error{Statement: p.stmt, Msg: msg, Err: err}
}

func describe(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "a list"
		}
		return fmt.Sprintf("%q", t.String())
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

// expectDelim reads the next token and checks it is d.
func (p *parser) expectDelim(d json.Delim, what string) error {
	t, err := p.token()
	if err != nil {
		return err
	}
	if t != d {
		return p.errorf("%s must be %s, got %s", what, describe(d), describe(t))
	}
	return nil
}

// key reads an object key, rejecting duplicates.
func (p *parser) key(seen map[string]bool, where string) (string, error) {
	t, err := p.token()
	if err != nil {
		return "", err
	}
	k, _ := t.(string) // the decoder guarantees object keys are strings
	if seen[k] {
		return "", p.errorf("%sduplicate field %q", where, k)
	}
	seen[k] = true
	return k, nil
}

func (p *parser) str(what string) (string, error) {
	t, err := p.token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", p.errorf("%s must be a string, got %s", what, describe(t))
	}
	return s, nil
}

// strings reads a string or a non-empty list of strings.
func (p *parser) strings(what string) ([]string, error) {
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case string:
		return []string{t}, nil
	case json.Delim:
		if t != '[' {
			break
		}
		var out []string
		for p.dec.More() {
			e, err := p.token()
			if err != nil {
				return nil, err
			}
			s, ok := e.(string)
			if !ok {
				return nil, p.errorf("%s[%d] must be a string, got %s", what, len(out), describe(e))
			}
			out = append(out, s)
		}
		if _, err := p.token(); err != nil { // ']'
			return nil, err
		}
		if len(out) == 0 {
			return nil, p.errorf("%s is an empty list", what)
		}
		return out, nil
	}
	return nil, p.errorf("%s must be a string or a list of strings, got %s", what, describe(t))
}

// unknownField builds the error for an unexpected field, suggesting the right spelling.
func (p *parser) unknownField(k string, known ...string) error {
	for _, c := range known {
		if strings.EqualFold(k, c) {
			return p.errorf("unknown field %q (field names are case-sensitive: did you mean %q?)", k, c)
		}
	}
	return p.errorf("unknown field %q (expected one of %s)", k, strings.Join(known, ", "))
}

func (p *parser) document() (*Document, error) {
	if err := p.expectDelim('{', "document"); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	d := &Document{}
	var version string
	haveStmts := false
	for p.dec.More() {
		k, err := p.key(seen, "")
		if err != nil {
			return nil, err
		}
		switch k {
		case "Version":
			if version, err = p.str("Version"); err != nil {
				return nil, err
			}
		case "Id":
			if d.id, err = p.str("Id"); err != nil {
				return nil, err
			}
		case "Statement":
			if d.stmts, err = p.statements(); err != nil {
				return nil, err
			}
			haveStmts = true
		default:
			return nil, p.unknownField(k, "Version", "Id", "Statement")
		}
	}
	if _, err := p.token(); err != nil { // '}'
		return nil, err
	}
	if t, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &Error{Statement: -1, Msg: "invalid JSON after the document: " + err.Error(), Err: err}
		}
		return nil, p.errorf("unexpected %s after the document", describe(t))
	}
	switch {
	case !seen["Version"]:
		return nil, p.errorf("Version is missing (it must be %q)", Version)
	case version == "2008-10-17":
		return nil, p.errorf("Version %q is not supported: policy variables need %q", version, Version)
	case version != Version:
		return nil, p.errorf("Version %q is not %q", version, Version)
	case !haveStmts:
		return nil, p.errorf("Statement is missing")
	}
	return d, nil
}

func (p *parser) statements() ([]statement, error) {
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	if t == json.Delim('{') {
		p.stmt = 0
		st, err := p.statement()
		p.stmt = -1
		if err != nil {
			return nil, err
		}
		return []statement{st}, nil
	}
	if t != json.Delim('[') {
		return nil, p.errorf("Statement must be an object or a list of objects, got %s", describe(t))
	}
	var out []statement
	for p.dec.More() {
		if len(out) == MaxStatements {
			return nil, p.errorf("more than %d statements", MaxStatements)
		}
		p.stmt = len(out)
		if err := p.expectDelim('{', "a statement"); err != nil {
			return nil, err
		}
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	p.stmt = -1
	if _, err := p.token(); err != nil { // ']'
		return nil, err
	}
	if len(out) == 0 {
		return nil, p.errorf("Statement is an empty list")
	}
	return out, nil
}

// statement parses the fields of a statement; the opening '{' has been read.
func (p *parser) statement() (statement, error) {
	var st statement
	seen := map[string]bool{}
	var actions, resources []string
	var actionField, resourceField string
	for p.dec.More() {
		k, err := p.key(seen, "")
		if err != nil {
			return st, err
		}
		switch k {
		case "Sid":
			if st.sid, err = p.str("Sid"); err != nil {
				return st, err
			}
		case "Effect":
			e, err := p.str("Effect")
			if err != nil {
				return st, err
			}
			switch e {
			case "Allow":
				st.effect = Allow
			case "Deny":
				st.effect = Deny
			default:
				return st, p.errorf("Effect %q is not Allow or Deny", e)
			}
		case "Action", "NotAction":
			if actionField != "" {
				return st, p.errorf("has both Action and NotAction")
			}
			actionField = k
			if actions, err = p.strings(k); err != nil {
				return st, err
			}
		case "Resource", "NotResource":
			if resourceField != "" {
				return st, p.errorf("has both Resource and NotResource")
			}
			resourceField = k
			if resources, err = p.strings(k); err != nil {
				return st, err
			}
		case "Condition":
			if st.conds, err = p.conditions(); err != nil {
				return st, err
			}
		case "Principal", "NotPrincipal":
			return st, p.errorf("%s is not allowed: AWS IoT policies apply to the principal they are attached to", k)
		default:
			return st, p.unknownField(k, "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition")
		}
	}
	if _, err := p.token(); err != nil { // '}'
		return st, err
	}
	switch {
	case st.effect == 0:
		return st, p.errorf("Effect is missing")
	case actionField == "":
		return st, p.errorf("Action (or NotAction) is missing")
	case resourceField == "":
		return st, p.errorf("Resource (or NotResource) is missing")
	}
	for i, a := range actions {
		m, err := parseActionPattern(a)
		if err != nil {
			return st, p.errorf("%s[%d]: %v", actionField, i, err)
		}
		st.actions |= m
	}
	if actionField == "NotAction" {
		st.actions = allActions &^ st.actions
	}
	st.notResource = resourceField == "NotResource"
	for i, r := range resources {
		e, err := parseResource(r)
		if err != nil {
			return st, p.errorf("%s[%d] %q: %v", resourceField, i, truncate(r, 100), err)
		}
		st.entries = append(st.entries, e)
	}
	return st, nil
}

// parseResource parses one Resource/NotResource value: "*", an ARN
// arn:PARTITION:iot:REGION:ACCOUNT:TYPE/NAME, or the short form TYPE/NAME.
func parseResource(raw string) (entry, error) {
	e := entry{raw: raw}
	if raw == "*" {
		e.any = true
		for t := ResourceClient; t < numResourceTypes; t++ {
			e.res[t] = []residual{{toks: []token{{kind: tokStar}}, g: glob{kind: globAny}}}
		}
		return e, nil
	}
	component := raw
	if strings.HasPrefix(raw, "arn:") {
		parts := strings.SplitN(raw, ":", 6)
		if len(parts) != 6 {
			return e, errors.New("an ARN must have the form arn:PARTITION:iot:REGION:ACCOUNT:TYPE/NAME")
		}
		for i, what := range []string{"partition", "service", "region", "account"} {
			if strings.Contains(parts[i+1], "${") {
				return e, fmt.Errorf("variables are not allowed in the ARN %s", what)
			}
		}
		if parts[1] == "" {
			return e, errors.New("the ARN partition is empty")
		}
		if parts[2] != "iot" {
			return e, fmt.Errorf("the ARN service %q is not iot", parts[2])
		}
		rg := compileGlob(lexLiteralWild(parts[3]))
		ac := compileGlob(lexLiteralWild(parts[4]))
		e.region, e.account = &rg, &ac
		component = parts[5]
	} else if !strings.HasPrefix(raw, "client/") && !strings.HasPrefix(raw, "topic/") &&
		!strings.HasPrefix(raw, "topicfilter/") && !strings.HasPrefix(raw, "thing/") {
		return e, errors.New(`expected "*", an ARN (arn:aws:iot:REGION:ACCOUNT:TYPE/NAME) or TYPE/NAME with TYPE one of client, topic, topicfilter, thing`)
	}
	toks, err := lexPattern(component, true)
	if err != nil {
		return e, err
	}
	// The resource type (before the first "/") must not depend on a variable, and if
	// written out it must be one Gatehouse knows.
	typePart := component
	if i := strings.IndexByte(component, '/'); i >= 0 {
		typePart = component[:i]
	}
	for _, t := range toks {
		if t.kind == tokVar {
			return e, fmt.Errorf("variable ${%s} is in the resource type; variables may only follow TYPE/", t.key)
		}
		if t.kind == tokLit && strings.Contains(t.lit, "/") {
			break
		}
	}
	if !strings.ContainsAny(typePart, "*?$") {
		switch typePart {
		case "client", "topic", "topicfilter", "thing":
			if !strings.Contains(component, "/") {
				return e, fmt.Errorf("expected %s/NAME", typePart)
			}
		default:
			return e, fmt.Errorf("unknown resource type %q (expected client, topic, topicfilter or thing)", typePart)
		}
	}
	found := false
	for t := ResourceClient; t < numResourceTypes; t++ {
		for _, r := range residuals(toks, t.String()+"/") {
			rs := residual{toks: r, vars: hasVars(r)}
			if !rs.vars {
				rs.g = compileGlob(r)
			}
			e.res[t] = append(e.res[t], rs)
			found = true
		}
	}
	if !found {
		return e, errors.New("matches no client, topic, topicfilter or thing resource")
	}
	return e, nil
}
