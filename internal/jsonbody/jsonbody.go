// Package jsonbody decodes JSON request bodies strictly: exactly one JSON
// object, no unknown fields, nothing after it, not null, within a size
// limit, of a JSON media type. It exists so that every HTTP edge of
// Gatehouse (the admin API, the registration gateway, the AWS-IoT-compatible
// API) applies the same rules; each edge turns the typed Error into its own
// error body.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// Reason says why a body was refused.
type Reason string

// The reasons a body is refused.
const (
	MediaType    Reason = "media type"    // Content-Type is not JSON
	TooLarge     Reason = "too large"     // over the limit
	Unreadable   Reason = "unreadable"    // reading the body failed
	Empty        Reason = "empty"         // no body, or only white space
	Null         Reason = "null"          // the body is the JSON literal null
	Syntax       Reason = "syntax"        // not well-formed JSON
	WrongType    Reason = "wrong type"    // a field's value has another type
	UnknownField Reason = "unknown field" // a field the target does not have
	Trailing     Reason = "trailing data" // something after the object
)

// Error is a refused body: its Reason and a message fit for the client.
type Error struct {
	Reason Reason
	// Message says what is wrong, without the request's data beyond a
	// field name.
	Message string
	err     error
}

func (e *Error) Error() string { return e.Message }

// refused builds an Error whose message carries parts of decoder output,
// cut to a length fit for a response and a log.
func refused(r Reason, err error, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return &Error{Reason: r, Message: msg, err: err}
}
func (e *Error) Unwrap() error { return e.err }

// Options relax the rules for an edge.
type Options struct {
	// AllowEmpty accepts an empty body as {} (v is left as it is).
	AllowEmpty bool
}

// Read checks contentType (the request's Content-Type: absent,
// application/json or any +json type), reads at most limit bytes of body
// and decodes them into v. It needs no net/http, so that packages below
// the HTTP edges (the registry's import) use the same rules.
func Read(contentType string, body io.Reader, limit int64, v any, o Options) error {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &Error{Reason: MediaType, Message: "Content-Type must be application/json"}
		}
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return &Error{Reason: Unreadable, Message: "could not read the request body", err: err}
	}
	if int64(len(b)) > limit {
		return &Error{Reason: TooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
	}
	return Decode(b, v, o)
}

// Decode decodes body, one strict JSON object, into v.
func Decode(body []byte, v any, o Options) error {
	trimmed := bytes.TrimSpace(body)
	switch string(trimmed) {
	case "":
		if o.AllowEmpty {
			return nil
		}
		return &Error{Reason: Empty, Message: "request body is empty: want a JSON object"}
	case "null":
		// encoding/json decodes null into anything as "no change": a
		// PATCH would save an empty patch, bump the version and log it.
		return &Error{Reason: Null, Message: "request body is null: want a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			syn *json.SyntaxError
			typ *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &syn):
			return refused(Syntax, err, "malformed JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			return refused(WrongType, err, "JSON field %q: %s is not a valid %s", typ.Field, typ.Value, typ.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return refused(UnknownField, err, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return refused(Syntax, err, "malformed JSON: unexpected end of input")
		}
		return refused(Syntax, err, "malformed JSON: %v", err)
	}
	if dec.More() {
		return &Error{Reason: Trailing, Message: "malformed JSON: data after the object"}
	}
	return nil
}
