package registry

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Problem is one thing wrong with a request.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// InvalidError reports every problem found in a request at once.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// ErrInvalid is matched by every *InvalidError with errors.Is.
var ErrInvalid = errors.New("invalid request")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// problems collects validation failures.
type problems []Problem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &InvalidError{Problems: p}
}

// Limits, following AWS IoT where it has one.
const (
	MaxAttributes      = 50
	MaxAttributeName   = 128
	MaxAttributeValue  = 800
	MaxDescription     = 2028
	MinPasswordLength  = 8
	MaxPasswordLength  = 1024
	MaxListItems       = 50
	maxPatternLength   = 512
	maxUsernameLength  = 64
	maxEmailLength     = 254
	maxDisplayNameRune = 128
)

var (
	nameRE      = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)
	attrNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_.,@/:#-]{1,128}$`)
	attrValueRE = regexp.MustCompile(`^[a-zA-Z0-9_.,@/:#=\[\]-]*$`)
	usernameRE  = regexp.MustCompile(`^[a-zA-Z0-9._@-]{1,64}$`)
	scopeRE     = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,128}$`) // RFC 6749 scope-token
)

// ValidAttributeValue reports whether s is a legal attribute value: at most
// MaxAttributeValue bytes of a-z A-Z 0-9 _ . , @ / : # = [ ] -.
func ValidAttributeValue(s string) bool {
	return len(s) <= MaxAttributeValue && attrValueRE.MatchString(s)
}

// ValidUsername reports whether s is a legal username: 1 to 64 of
// a-z A-Z 0-9 . _ @ -, but not "." or "..", which a URL path
// (/api/v1/users/{name}) cannot carry: clients and proxies resolve them as
// path segments.
func ValidUsername(s string) bool {
	return usernameRE.MatchString(s) && s != "." && s != ".."
}

// ValidName reports whether s is a legal thing, thing type or group name:
// 1 to 128 of [a-zA-Z0-9:_-], as AWS IoT thing names.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func checkName(p *problems, field, s string) {
	if !ValidName(s) {
		p.add(field, "%q is not a valid name: use 1 to 128 of a-z A-Z 0-9 : _ -", truncate(s))
	}
}

func checkAttributes(p *problems, attrs map[string]string) {
	if len(attrs) > MaxAttributes {
		p.add("attributes", "%d attributes, at most %d allowed", len(attrs), MaxAttributes)
	}
	for k, v := range attrs {
		if !attrNameRE.MatchString(k) {
			p.add("attributes", "attribute name %q is invalid: use 1 to 128 of a-z A-Z 0-9 _ . , @ / : # -", truncate(k))
		}
		if len(v) > MaxAttributeValue {
			p.add("attributes."+truncate(k), "value is %d bytes, at most %d allowed", len(v), MaxAttributeValue)
		} else if !attrValueRE.MatchString(v) {
			p.add("attributes."+truncate(k), "value %q has characters outside a-z A-Z 0-9 _ . , @ / : # = [ ] -", truncate(v))
		}
	}
}

func checkDescription(p *problems, s string) {
	if len(s) > MaxDescription {
		p.add("description", "%d bytes, at most %d allowed", len(s), MaxDescription)
	}
}

func checkList(p *problems, field string, items []string, valid func(string) bool, what string) {
	if len(items) > MaxListItems {
		p.add(field, "%d items, at most %d allowed", len(items), MaxListItems)
	}
	seen := map[string]bool{}
	for _, it := range items {
		if !valid(it) {
			p.add(field, "%q is not a valid %s", truncate(it), what)
		}
		if seen[it] {
			p.add(field, "%q is listed twice", truncate(it))
		}
		seen[it] = true
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
