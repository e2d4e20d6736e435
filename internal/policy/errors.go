package policy

import (
	"strconv"
	"strings"
)

// Error reports what is wrong with a policy document and where. Parse and Compile
// return it; use errors.As to get at the fields.
type Error struct {
	// Policy is the document's name as given to Compile; empty for Parse.
	Policy string
	// Statement is the zero-based index of the statement (its position in the
	// Statement list), or -1 when the problem is with the document as a whole.
	Statement int
	// Msg says what is wrong, naming the element, e.g. `Effect "Alow" is not Allow or Deny`.
	Msg string
	// Err is the underlying error, if any (for example a *json.SyntaxError).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Policy != "" {
		b.WriteString(strconv.Quote(e.Policy))
		b.WriteString(": ")
	}
	if e.Statement >= 0 {
		b.WriteString("statement ")
		b.WriteString(strconv.Itoa(e.Statement))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// TopicError reports why a topic name or topic filter is not valid MQTT.
type TopicError struct {
	Topic  string // the offending topic name or filter (truncated to 100 bytes)
	Filter bool   // whether a topic filter was being validated
	Reason TopicErrorReason
}

// TopicErrorReason says what is wrong with a topic name or filter.
type TopicErrorReason uint8

// Reasons for a TopicError.
const (
	TopicEmpty                 TopicErrorReason = iota + 1 // zero length
	TopicTooLong                                           // longer than the limit in bytes
	TopicTooManyLevels                                     // more levels than the limit
	TopicInvalidUTF8                                       // not well-formed UTF-8
	TopicNUL                                               // contains U+0000
	TopicWildcard                                          // a topic name contains + or #
	TopicMisplacedWildcard                                 // a filter has + or # not as a whole level, or # not last
	TopicBadSharedSubscription                             // malformed $share/{ShareName}/{filter}
)

func (r TopicErrorReason) String() string {
	switch r {
	case TopicEmpty:
		return "is empty"
	case TopicTooLong:
		return "is too long"
	case TopicTooManyLevels:
		return "has too many levels"
	case TopicInvalidUTF8:
		return "is not valid UTF-8"
	case TopicNUL:
		return "contains a NUL character"
	case TopicWildcard:
		return "contains a wildcard (+ or #), which topic names may not"
	case TopicMisplacedWildcard:
		return "has a wildcard that is not a whole level (+), or # that is not the last level"
	case TopicBadSharedSubscription:
		return "is not a valid shared subscription ($share/NAME/FILTER)"
	}
	return "is invalid"
}

func (e *TopicError) Error() string {
	what := "topic name"
	if e.Filter {
		what = "topic filter"
	}
	return "policy: " + what + " " + strconv.Quote(e.Topic) + " " + e.Reason.String()
}
