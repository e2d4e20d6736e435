package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

type condOp uint8

const (
	opStringEquals condOp = iota + 1
	opStringNotEquals
	opStringEqualsIgnoreCase
	opStringNotEqualsIgnoreCase
	opStringLike
	opStringNotLike
	opBool
	opIPAddress
	opNotIPAddress
	opNull
)

type setQual uint8

const (
	setNone setQual = iota
	setAnyValue
	setAllValues
)

// condition is one (operator, key, values) triple of a Condition block.
type condition struct {
	op       condOp
	set      setQual
	ifExists bool
	opName   string // as written, for messages
	key      keyRef
	strs     [][]token      // string operators
	hasTrue  bool           // Bool, Null
	hasFalse bool           // Bool, Null
	prefixes []netip.Prefix // IpAddress, NotIpAddress
}

func (c *condition) negated() bool {
	switch c.op {
	case opStringNotEquals, opStringNotEqualsIgnoreCase, opStringNotLike, opNotIPAddress:
		return true
	}
	return false
}

func (c *condition) isString() bool { return c.op >= opStringEquals && c.op <= opStringNotLike }

func (c *condition) fold() bool {
	return c.op == opStringEqualsIgnoreCase || c.op == opStringNotEqualsIgnoreCase
}

func (c *condition) String() string { return c.opName + " on " + c.key.String() }

// parseOperator splits "ForAnyValue:StringLikeIfExists" into its parts.
func parseOperator(name string) (op condOp, set setQual, ifExists bool, err error) {
	base := name
	if q, rest, ok := strings.Cut(base, ":"); ok {
		switch q {
		case "ForAnyValue":
			set = setAnyValue
		case "ForAllValues":
			set = setAllValues
		default:
			return 0, 0, false, fmt.Errorf("unknown condition operator qualifier %q (expected ForAnyValue or ForAllValues)", q)
		}
		base = rest
	}
	if b, ok := strings.CutSuffix(base, "IfExists"); ok {
		ifExists, base = true, b
	}
	switch base {
	case "StringEquals":
		op = opStringEquals
	case "StringNotEquals":
		op = opStringNotEquals
	case "StringEqualsIgnoreCase":
		op = opStringEqualsIgnoreCase
	case "StringNotEqualsIgnoreCase":
		op = opStringNotEqualsIgnoreCase
	case "StringLike":
		op = opStringLike
	case "StringNotLike":
		op = opStringNotLike
	case "Bool":
		op = opBool
	case "IpAddress":
		op = opIPAddress
	case "NotIpAddress":
		op = opNotIPAddress
	case "Null":
		op = opNull
		if ifExists || set != setNone {
			return 0, 0, false, fmt.Errorf("condition operator %q: Null takes no qualifier or IfExists", name)
		}
	case "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
		"NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals",
		"DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
		"BinaryEquals", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike":
		return 0, 0, false, fmt.Errorf("condition operator %q is not supported by Gatehouse (supported: String*, Bool, IpAddress, NotIpAddress, Null)", name)
	default:
		return 0, 0, false, fmt.Errorf("unknown condition operator %q", name)
	}
	return op, set, ifExists, nil
}

// conditions parses a Condition block: {"Operator": {"key": value-or-list, ...}, ...}.
func (p *parser) conditions() ([]condition, error) {
	if err := p.expectDelim('{', "Condition"); err != nil {
		return nil, err
	}
	var out []condition
	seenOps := map[string]bool{}
	for p.dec.More() {
		opName, err := p.key(seenOps, "Condition: ")
		if err != nil {
			return nil, err
		}
		op, set, ifExists, err := parseOperator(opName)
		if err != nil {
			return nil, p.errorf("Condition: %v", err)
		}
		where := "Condition " + opName
		if err := p.expectDelim('{', where); err != nil {
			return nil, err
		}
		seenKeys := map[string]bool{}
		n := 0
		for p.dec.More() {
			keyName, err := p.key(seenKeys, where+": ")
			if err != nil {
				return nil, err
			}
			c := condition{op: op, set: set, ifExists: ifExists, opName: opName}
			c.key, err = parseKey(keyName)
			if err != nil {
				return nil, p.errorf("%s: condition key %q: %v", where, keyName, err)
			}
			w := where + " " + c.key.String()
			if c.key.multi() && set == setNone && op != opNull {
				return nil, p.errorf("%s: the key is multi-valued; use ForAnyValue:%s or ForAllValues:%s", w, opName, opName)
			}
			switch {
			case (op == opIPAddress || op == opNotIPAddress) && !c.key.isIP():
				return nil, p.errorf("%s: %s needs an IP address key (aws:SourceIp or iot:Certificate.*.AlternativeName.IPAddress)", w, opName)
			case op == opBool && c.key.isIP():
				return nil, p.errorf("%s: %s is an IP address key; use IpAddress, NotIpAddress or a String operator", w, c.key)
			}
			vals, err := p.condValues(w)
			if err != nil {
				return nil, err
			}
			if err := c.setValues(vals); err != nil {
				return nil, p.errorf("%s: %v", w, err)
			}
			out = append(out, c)
			n++
		}
		if _, err := p.token(); err != nil { // '}'
			return nil, err
		}
		if n == 0 {
			return nil, p.errorf("%s has no keys", where)
		}
	}
	if _, err := p.token(); err != nil { // '}'
		return nil, err
	}
	return out, nil
}

// condValues reads a condition value: a string, number or boolean, or a non-empty list
// of them, returned as text.
func (p *parser) condValues(where string) ([]string, error) {
	scalar := func(t json.Token) (string, bool) {
		switch t := t.(type) {
		case string:
			return t, true
		case json.Number:
			return t.String(), true
		case bool:
			if t {
				return "true", true
			}
			return "false", true
		}
		return "", false
	}
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	if s, ok := scalar(t); ok {
		return []string{s}, nil
	}
	if t != json.Delim('[') {
		return nil, p.errorf("%s: value must be a string, number, boolean or a list of them, got %s", where, describe(t))
	}
	var out []string
	for p.dec.More() {
		e, err := p.token()
		if err != nil {
			return nil, err
		}
		s, ok := scalar(e)
		if !ok {
			return nil, p.errorf("%s: value [%d] must be a string, number or boolean, got %s", where, len(out), describe(e))
		}
		out = append(out, s)
	}
	if _, err := p.token(); err != nil { // ']'
		return nil, err
	}
	if len(out) == 0 {
		return nil, p.errorf("%s: empty list of values", where)
	}
	return out, nil
}

func (c *condition) setValues(vals []string) error {
	switch {
	case c.isString():
		like := c.op == opStringLike || c.op == opStringNotLike
		for _, v := range vals {
			toks, err := lexPattern(v, like)
			if err != nil {
				return err
			}
			c.strs = append(c.strs, toks)
		}
	case c.op == opBool || c.op == opNull:
		for _, v := range vals {
			switch strings.ToLower(v) {
			case "true":
				c.hasTrue = true
			case "false":
				c.hasFalse = true
			default:
				return fmt.Errorf("value %q is not true or false", v)
			}
		}
	case c.op == opIPAddress || c.op == opNotIPAddress:
		for _, v := range vals {
			pfx, err := parseIPOrCIDR(v)
			if err != nil {
				return err
			}
			c.prefixes = append(c.prefixes, pfx)
		}
	}
	return nil
}

func parseIPOrCIDR(v string) (netip.Prefix, error) {
	bad := fmt.Errorf("value %q is not an IP address or CIDR block", v)
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, bad
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("value %q: an IPv4-mapped prefix must be at least /96", v)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, bad
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// eval evaluates the condition for a bound context. effect is the statement's effect:
// it decides what an unresolved variable in a policy value means (see the package
// documentation). When the result is false because of an unresolved variable, missing
// names it.
func (c *condition) eval(r *resolver, effect Effect) (ok bool, missing *unresolved) {
	vals := r.ctx.lookup(c.key, nil)
	if c.op == opNull {
		present := len(vals) > 0
		return (present && c.hasFalse) || (!present && c.hasTrue), nil
	}
	if len(vals) == 0 {
		switch {
		case c.ifExists, c.set == setAllValues:
			return true, nil
		case c.set == setAnyValue:
			return false, nil
		}
		return c.negated(), nil
	}
	var pats []glob
	if c.isString() {
		star := effect == Deny && !c.negated()
		for _, v := range c.strs {
			alts, miss, ok := r.expand(v, star, false)
			if !ok {
				if c.negated() && effect == Allow {
					return false, &miss // cannot show the key differs from an unknown value
				}
				continue // Allow: the value matches nothing; Deny + negated: dropped
			}
			for _, alt := range alts {
				if c.fold() {
					for i := range alt {
						alt[i].lit = strings.ToLower(alt[i].lit)
					}
				}
				pats = append(pats, compileGlob(alt))
			}
		}
	}
	one := func(v string) bool {
		switch {
		case c.isString():
			if c.fold() {
				v = strings.ToLower(v)
			}
			m := false
			for i := range pats {
				if pats[i].match(v) {
					m = true
					break
				}
			}
			return m != c.negated()
		case c.op == opBool:
			lv := strings.ToLower(v)
			return (lv == "true" && c.hasTrue) || (lv == "false" && c.hasFalse)
		default: // IpAddress, NotIpAddress
			a, err := netip.ParseAddr(v)
			if err != nil {
				return false
			}
			m := false
			for _, p := range c.prefixes {
				if p.Contains(a) {
					m = true
					break
				}
			}
			return m != c.negated()
		}
	}
	switch c.set {
	case setAnyValue:
		for _, v := range vals {
			if one(v) {
				return true, nil
			}
		}
		return false, nil
	case setAllValues:
		for _, v := range vals {
			if !one(v) {
				return false, nil
			}
		}
		return true, nil
	}
	return one(vals[0]), nil
}
