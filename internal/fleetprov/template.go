package fleetprov

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// MaxBodyBytes bounds a template body (AWS IoT allows 10240 characters).
const MaxBodyBytes = 10240

// maxDepth bounds how deeply template expressions nest.
const maxDepth = 32

// Resource types a template may declare.
const (
	TypeThing       = "AWS::IoT::Thing"
	TypeCertificate = "AWS::IoT::Certificate"
	TypePolicy      = "AWS::IoT::Policy"
)

// CertificateIDParameter is the parameter through which RegisterThing passes
// the id of the certificate being provisioned; CertificateParameterPrefix
// starts those of its subject fields (AWS::IoT::Certificate::CommonName,
// ...) for a certificate made from a CSR.
const (
	CertificateIDParameter     = "AWS::IoT::Certificate::Id"
	CertificateParameterPrefix = "AWS::IoT::Certificate::"
)

// Template is a parsed provisioning template body.
type Template struct {
	Parameters          map[string]Parameter
	Mappings            map[string]map[string]map[string]any
	Conditions          map[string]any
	Resources           map[string]Resource
	DeviceConfiguration map[string]any
}

// Parameter declares one template parameter.
type Parameter struct {
	Type    string
	Default *string
}

// Resource is one entry of Resources.
type Resource struct {
	Type             string
	Properties       map[string]any
	OverrideSettings map[string]string
	Condition        string
}

// TemplateError reports a template body or a provisioning request's
// parameters that cannot be used; the message is safe to return to the
// device or the operator.
type TemplateError struct{ Msg string }

func (e *TemplateError) Error() string { return e.Msg }

func bad(format string, args ...any) error {
	return &TemplateError{Msg: fmt.Sprintf(format, args...)}
}

// Parse reads and checks a template body: its sections, resource types,
// and the shape of every expression (intrinsic functions with the right
// arguments, Ref to declared parameters, conditions that exist).
func Parse(body []byte) (*Template, error) {
	if len(body) > MaxBodyBytes {
		return nil, bad("template body is larger than %d bytes", MaxBodyBytes)
	}
	var raw struct {
		Parameters          map[string]json.RawMessage `json:"Parameters"`
		Mappings            map[string]map[string]map[string]any
		Conditions          map[string]any
		Resources           map[string]json.RawMessage
		DeviceConfiguration map[string]any
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("template body: %v", err)
	}
	if dec.More() {
		return nil, bad("template body: data after the JSON object")
	}
	t := &Template{Parameters: map[string]Parameter{}, Mappings: raw.Mappings, Conditions: raw.Conditions,
		Resources: map[string]Resource{}, DeviceConfiguration: raw.DeviceConfiguration}
	for name, p := range raw.Parameters {
		var in struct {
			Type    string
			Default any
		}
		if err := strictDecode(p, &in); err != nil {
			return nil, bad("parameter %q: %v", name, err)
		}
		switch in.Type {
		case "String", "Number", "":
		default:
			return nil, bad("parameter %q: type %q is not String or Number", name, in.Type)
		}
		par := Parameter{Type: in.Type}
		if in.Default != nil {
			d, ok := scalar(in.Default)
			if !ok {
				return nil, bad("parameter %q: its default is not a string or number", name)
			}
			par.Default = &d
		}
		t.Parameters[name] = par
	}
	if len(raw.Resources) == 0 {
		return nil, bad("template has no Resources")
	}
	counts := map[string]int{}
	for name, r := range raw.Resources {
		var res Resource
		if err := strictDecode(r, &res); err != nil {
			return nil, bad("resource %q: %v", name, err)
		}
		switch res.Type {
		case TypeThing, TypeCertificate, TypePolicy:
		default:
			return nil, bad("resource %q: type %q is not %s, %s or %s", name, res.Type, TypeThing, TypeCertificate, TypePolicy)
		}
		if counts[res.Type]++; res.Type != TypePolicy && counts[res.Type] > 1 {
			return nil, bad("template declares more than one %s", res.Type)
		}
		if res.Condition != "" {
			if _, ok := t.Conditions[res.Condition]; !ok {
				return nil, bad("resource %q: condition %q is not declared", name, res.Condition)
			}
		}
		t.Resources[name] = res
	}
	// A dry run with every parameter set checks the expressions' shapes.
	c := &checker{t: t}
	for name, cond := range t.Conditions {
		if err := c.check(cond, 0); err != nil {
			return nil, bad("condition %q: %v", name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.Resources)) {
		if err := c.check(t.Resources[name].Properties, 0); err != nil {
			return nil, bad("resource %q: %v", name, err)
		}
	}
	if err := c.check(t.DeviceConfiguration, 0); err != nil {
		return nil, bad("DeviceConfiguration: %v", err)
	}
	return t, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// scalar renders a JSON string or number as a string.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// intrinsic returns the function name and argument of a single-key object
// whose key is an intrinsic function, Ref or Condition.
func intrinsic(v any) (string, any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, false
	}
	for k, arg := range m {
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, arg, true
		}
	}
	return "", nil, false
}

// checker validates expression shapes without parameters.
type checker struct{ t *Template }

func (c *checker) check(v any, depth int) error {
	if depth > maxDepth {
		return errors.New("expressions nest too deeply")
	}
	fn, arg, ok := intrinsic(v)
	if !ok {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if err := c.check(x[k], depth+1); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := c.check(e, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	args, _ := arg.([]any)
	n := func(want int) error {
		if len(args) != want {
			return fmt.Errorf("%s takes a list of %d arguments", fn, want)
		}
		return nil
	}
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return errors.New("a Ref takes a parameter name")
		}
		if _, declared := c.t.Parameters[name]; !declared && !strings.HasPrefix(name, CertificateParameterPrefix) {
			return fmt.Errorf("a Ref to %q, which is not a declared parameter", name)
		}
		return nil
	case "Condition":
		name, ok := arg.(string)
		if !ok {
			return errors.New("a Condition takes a condition name")
		}
		if _, ok := c.t.Conditions[name]; !ok {
			return fmt.Errorf("condition %q is not declared", name)
		}
		return nil
	case "Fn::Join", "Fn::Split", "Fn::Select", "Fn::Equals":
		if err := n(2); err != nil {
			return err
		}
		if fn == "Fn::Join" || fn == "Fn::Split" {
			if _, ok := args[0].(string); !ok {
				return fmt.Errorf("%s: the delimiter must be a string", fn)
			}
		}
	case "Fn::FindInMap", "Fn::If":
		if err := n(3); err != nil {
			return err
		}
		if fn == "Fn::If" {
			name, ok := args[0].(string)
			if _, declared := c.t.Conditions[name]; !ok || !declared {
				return fmt.Errorf("Fn::If: %v is not a declared condition", args[0])
			}
			args = args[1:]
		}
	case "Fn::Not":
		if err := n(1); err != nil {
			return err
		}
	case "Fn::And", "Fn::Or":
		if len(args) < 2 || len(args) > 10 {
			return fmt.Errorf("%s takes 2 to 10 conditions", fn)
		}
	case "Fn::Sub":
		s, ok := arg.(string)
		if !ok {
			return errors.New("Fn::Sub takes a string")
		}
		return c.checkSub(s)
	default:
		return fmt.Errorf("function %s is not supported", fn)
	}
	for _, a := range args {
		if err := c.check(a, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) checkSub(s string) error {
	_, err := substitute(s, func(name string) (string, error) {
		if _, ok := c.t.Parameters[name]; !ok && !strings.HasPrefix(name, CertificateParameterPrefix) {
			return "", fmt.Errorf("Fn::Sub: ${%s} is not a declared parameter", name)
		}
		return "", nil
	})
	return err
}

// substitute replaces ${Name} in s (${!Literal} stays as ${Literal}).
func substitute(s string, lookup func(string) (string, error)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", errors.New("Fn::Sub: unterminated ${")
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		if lit, ok := strings.CutPrefix(name, "!"); ok {
			b.WriteString("${" + lit + "}")
		} else {
			v, err := lookup(name)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		}
		s = s[i+j+1:]
	}
}

// Plan is what a template makes of one provisioning request.
type Plan struct {
	// Thing is the thing to create (or keep); nil if the template has none.
	Thing *ThingPlan
	// CertificateStatus is "ACTIVE" or "INACTIVE" for a template with a
	// certificate resource, "" without one (the certificate stays as it is).
	CertificateStatus string
	// CertificateID is the id the certificate resource names, if any.
	CertificateID string
	// Policies are attached to the certificate.
	Policies []PolicyPlan
	// DeviceConfiguration is returned to the device.
	DeviceConfiguration map[string]string
}

// ThingPlan is the AWS::IoT::Thing resource, evaluated.
type ThingPlan struct {
	Name       string
	Type       string
	Attributes map[string]string
	Groups     []string
}

// PolicyPlan is an AWS::IoT::Policy resource: a policy by name, or a
// document (the policy is then named after it).
type PolicyPlan struct {
	Name     string
	Document []byte
}

// Evaluate applies the template to the request's parameters.
func (t *Template) Evaluate(params map[string]string) (*Plan, error) {
	e := &evaluator{t: t, params: params, conds: map[string]bool{}}
	p := &Plan{DeviceConfiguration: map[string]string{}}
	for _, name := range slices.Sorted(maps.Keys(t.Resources)) {
		r := t.Resources[name]
		if r.Condition != "" {
			ok, err := e.condition(r.Condition, 0)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		props, err := e.eval(r.Properties, 0)
		if err != nil {
			return nil, bad("resource %q: %v", name, err)
		}
		pm, _ := props.(map[string]any)
		if err := p.add(name, r.Type, pm); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.DeviceConfiguration)) {
		v, err := e.eval(t.DeviceConfiguration[k], 0)
		if err != nil {
			return nil, bad("DeviceConfiguration %q: %v", k, err)
		}
		s, ok := v.(string)
		if !ok {
			return nil, bad("DeviceConfiguration %q is not a string", k)
		}
		p.DeviceConfiguration[k] = s
	}
	return p, nil
}

func (p *Plan) add(name, typ string, props map[string]any) error {
	str := func(key string) (string, error) {
		v, ok := props[key]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", bad("resource %q: %s is not a string", name, key)
		}
		return s, nil
	}
	var err error
	switch typ {
	case TypeThing:
		th := &ThingPlan{Attributes: map[string]string{}}
		if th.Name, err = str("ThingName"); err != nil {
			return err
		}
		if th.Name == "" {
			return bad("resource %q: ThingName is required", name)
		}
		if th.Type, err = str("ThingTypeName"); err != nil {
			return err
		}
		if a, ok := props["AttributePayload"]; ok {
			m, ok := a.(map[string]any)
			if !ok {
				return bad("resource %q: AttributePayload is not an object", name)
			}
			for k, v := range m {
				s, ok := v.(string)
				if !ok {
					return bad("resource %q: attribute %q is not a string", name, k)
				}
				th.Attributes[k] = s
			}
		}
		if g, ok := props["ThingGroups"]; ok {
			l, ok := g.([]any)
			if !ok {
				return bad("resource %q: ThingGroups is not a list", name)
			}
			for _, v := range l {
				s, ok := v.(string)
				if !ok {
					return bad("resource %q: a thing group is not a string", name)
				}
				th.Groups = append(th.Groups, s)
			}
		}
		p.Thing = th
	case TypeCertificate:
		if p.CertificateID, err = str("CertificateId"); err != nil {
			return err
		}
		status, err := str("Status")
		if err != nil {
			return err
		}
		switch strings.ToUpper(status) {
		case "ACTIVE", "":
			p.CertificateStatus = "ACTIVE"
		case "INACTIVE":
			p.CertificateStatus = "INACTIVE"
		default:
			return bad("resource %q: certificate status %q is not Active or Inactive", name, status)
		}
	case TypePolicy:
		var pp PolicyPlan
		if pp.Name, err = str("PolicyName"); err != nil {
			return err
		}
		if d, ok := props["PolicyDocument"]; ok {
			if s, ok := d.(string); ok {
				pp.Document = []byte(s)
			} else if pp.Document, err = json.Marshal(d); err != nil {
				return bad("resource %q: PolicyDocument: %v", name, err)
			}
		}
		if (pp.Name == "") == (pp.Document == nil) {
			return bad("resource %q: give exactly one of PolicyName and PolicyDocument", name)
		}
		p.Policies = append(p.Policies, pp)
	}
	return nil
}

// evaluator applies a template to parameters.
type evaluator struct {
	t      *Template
	params map[string]string
	conds  map[string]bool
	// evaluating guards against conditions that refer to themselves.
	evaluating []string
}

func (e *evaluator) param(name string) (string, error) {
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	if p, ok := e.t.Parameters[name]; ok && p.Default != nil {
		return *p.Default, nil
	}
	return "", bad("parameter %q is missing", name)
}

func (e *evaluator) condition(name string, depth int) (bool, error) {
	if v, ok := e.conds[name]; ok {
		return v, nil
	}
	if slices.Contains(e.evaluating, name) {
		return false, bad("condition %q refers to itself", name)
	}
	c, ok := e.t.Conditions[name]
	if !ok {
		return false, bad("condition %q is not declared", name)
	}
	e.evaluating = append(e.evaluating, name)
	v, err := e.eval(c, depth+1)
	e.evaluating = e.evaluating[:len(e.evaluating)-1]
	if err != nil {
		return false, bad("condition %q: %v", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, bad("condition %q is not a condition function", name)
	}
	e.conds[name] = b
	return b, nil
}

func (e *evaluator) str(v any, depth int) (string, error) {
	r, err := e.eval(v, depth+1)
	if err != nil {
		return "", err
	}
	s, ok := r.(string)
	if !ok {
		return "", errors.New("a string was expected")
	}
	return s, nil
}

func (e *evaluator) boolean(v any, depth int) (bool, error) {
	r, err := e.eval(v, depth+1)
	if err != nil {
		return false, err
	}
	b, ok := r.(bool)
	if !ok {
		return false, errors.New("a condition was expected")
	}
	return b, nil
}

// eval evaluates an expression to a string, bool, list or object.
func (e *evaluator) eval(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("expressions nest too deeply")
	}
	fn, arg, ok := intrinsic(v)
	if !ok {
		switch x := v.(type) {
		case json.Number:
			return x.String(), nil
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, val := range x {
				r, err := e.eval(val, depth+1)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, val := range x {
				r, err := e.eval(val, depth+1)
				if err != nil {
					return nil, err
				}
				out[i] = r
			}
			return out, nil
		}
		return v, nil
	}
	args, _ := arg.([]any)
	switch fn {
	case "Ref":
		name, _ := arg.(string)
		return e.param(name)
	case "Condition":
		name, _ := arg.(string)
		return e.condition(name, depth)
	case "Fn::Join":
		list, err := e.eval(args[1], depth+1)
		if err != nil {
			return nil, err
		}
		l, ok := list.([]any)
		if !ok {
			return nil, errors.New("Fn::Join: the values are not a list")
		}
		parts := make([]string, len(l))
		for i, x := range l {
			if parts[i], ok = x.(string); !ok {
				return nil, errors.New("Fn::Join: a value is not a string")
			}
		}
		return strings.Join(parts, args[0].(string)), nil
	case "Fn::Split":
		s, err := e.str(args[1], depth)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, part := range strings.Split(s, args[0].(string)) {
			out = append(out, part)
		}
		return out, nil
	case "Fn::Select":
		is, err := e.str(args[0], depth)
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select: index %q is not a number", is)
		}
		list, err := e.eval(args[1], depth+1)
		if err != nil {
			return nil, err
		}
		l, ok := list.([]any)
		if !ok || i < 0 || i >= len(l) {
			return nil, fmt.Errorf("Fn::Select: index %d is out of range", i)
		}
		return l[i], nil
	case "Fn::FindInMap":
		var keys [3]string
		for i := range keys {
			var err error
			if keys[i], err = e.str(args[i], depth); err != nil {
				return nil, fmt.Errorf("Fn::FindInMap: %w", err)
			}
		}
		v, ok := e.t.Mappings[keys[0]][keys[1]][keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: %s/%s/%s is not in the mappings", keys[0], keys[1], keys[2])
		}
		s, ok := scalar(v)
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: %s/%s/%s is not a string", keys[0], keys[1], keys[2])
		}
		return s, nil
	case "Fn::Sub":
		s, _ := arg.(string)
		return substitute(s, e.param)
	case "Fn::If":
		cond, err := e.condition(args[0].(string), depth)
		if err != nil {
			return nil, err
		}
		if cond {
			return e.eval(args[1], depth+1)
		}
		return e.eval(args[2], depth+1)
	case "Fn::Equals":
		a, err := e.eval(args[0], depth+1)
		if err != nil {
			return nil, err
		}
		b, err := e.eval(args[1], depth+1)
		if err != nil {
			return nil, err
		}
		as, aok := a.(string)
		bs, bok := b.(string)
		return aok && bok && as == bs, nil
	case "Fn::Not":
		b, err := e.boolean(args[0], depth)
		return !b, err
	case "Fn::And", "Fn::Or":
		and := fn == "Fn::And"
		for _, a := range args {
			b, err := e.boolean(a, depth)
			if err != nil {
				return nil, err
			}
			if b != and {
				return !and, nil
			}
		}
		return and, nil
	}
	return nil, fmt.Errorf("function %s is not supported", fn)
}
