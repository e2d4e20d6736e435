package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string             `json:"type"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []registry.Problem `json:"errors,omitempty"`
}

// Error is an error with the status and client-facing message the edge
// should use. Err (never shown to clients) is logged.
type Error struct {
	Status int
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Sentinels for authentication at the edge.
var (
	errUnauthenticated = errors.New("missing or invalid API token")
	errForbidden       = errors.New("the API token lacks the role for this")
)

// Sentinels for the web console's session authentication; the console
// package returns them and WriteError maps them here.
var (
	// ErrNoSession: no session cookie, or its session expired or ended.
	ErrNoSession = errors.New("not signed in, or the session has expired")
	// ErrCSRF: a cookie-authenticated change without the session's
	// X-CSRF-Token.
	ErrCSRF = errors.New("missing or wrong X-CSRF-Token for this session")
	// ErrRateLimited: too many attempts from this address; retry later.
	ErrRateLimited = errors.New("too many attempts; try again later")
)

// statusOf decides, in one place, what status and problem an error becomes.
func statusOf(err error) (int, Problem) {
	var (
		httpErr *Error
		invalid *registry.InvalidError
		tooBig  *http.MaxBytesError
		request *pki.RequestError
	)
	p := Problem{Type: "about:blank"}
	switch {
	case errors.As(err, &tooBig):
		p.Status, p.Detail = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &httpErr):
		p.Status, p.Detail = httpErr.Status, httpErr.Msg
	case errors.As(err, &invalid):
		p.Status, p.Detail, p.Errors = http.StatusBadRequest, "the request is invalid", invalid.Problems
	case errors.Is(err, errUnauthenticated):
		p.Status, p.Detail = http.StatusUnauthorized, err.Error()
	case errors.Is(err, errForbidden):
		p.Status, p.Detail = http.StatusForbidden, err.Error()
	case errors.Is(err, ErrNoSession):
		p.Status, p.Detail = http.StatusUnauthorized, ErrNoSession.Error()
	case errors.Is(err, registry.ErrBadCredentials):
		p.Status, p.Detail = http.StatusUnauthorized, "wrong username or password"
	case errors.Is(err, ErrCSRF):
		p.Status, p.Detail = http.StatusForbidden, ErrCSRF.Error()
	case errors.Is(err, registry.ErrSignInThrottled):
		p.Status, p.Detail = http.StatusTooManyRequests, registry.ErrSignInThrottled.Error()
	case errors.Is(err, ErrRateLimited):
		p.Status, p.Detail = http.StatusTooManyRequests, ErrRateLimited.Error()
	case errors.As(err, &request):
		p.Status, p.Detail = http.StatusBadRequest, fmt.Sprintf("certificate request rejected (%s): %s", request.Reason, request.Detail)
	case errors.Is(err, registry.ErrNotAllowed):
		p.Status, p.Detail = http.StatusForbidden, err.Error()
	case errors.Is(err, registry.ErrNotPending):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, lobby.ErrState):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, lobby.ErrInvalid):
		p.Status, p.Detail = http.StatusBadRequest, err.Error()
	case errors.Is(err, lobby.ErrRemote):
		p.Status, p.Detail = http.StatusBadGateway, err.Error()
	case errors.Is(err, certs.ErrInvalidTransition):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, certs.ErrNoCA):
		p.Status, p.Detail = http.StatusServiceUnavailable, "the certificate authority is not initialised"
	case errors.Is(err, store.ErrNotFound):
		p.Status, p.Detail = http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrExists):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrInUse):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrStale):
		p.Status, p.Detail = http.StatusPreconditionFailed, err.Error()
	case store.IsUnavailable(err):
		p.Status, p.Detail = http.StatusServiceUnavailable, "the database is unavailable; retry shortly"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Detail = http.StatusServiceUnavailable, "request cancelled or timed out"
	default:
		p.Status, p.Detail = http.StatusInternalServerError, "internal error"
	}
	p.Title = http.StatusText(p.Status)
	p.Detail = plain(p.Detail)
	return p.Status, p
}

// packagePrefix is a Go package's name at the start of an error message
// or of one of its wrapped parts ("store: thing ...", "lobby: invalid
// request: pki: ...").
var packagePrefix = regexp.MustCompile(`(^|: )(?:store|lobby|pki|registry|certs|policy|oauth|events|broker|invalid request): `)

// namedRecord is what the store's errors start with: a kind of record and
// its quoted name ("thing type \"lamp\"").
var namedRecord = regexp.MustCompile(`^[a-z][a-z -]* ("[^"]*"|[^\s"]+)$`)

// plainEnds turns the sentinels' bare endings after a named record into
// sentences.
var plainEnds = []struct{ suffix, replace string }{
	{": not found", " not found"},
	{": already exists", " already exists"},
	{": still in use", " is still in use"},
}

// plain makes an error message read for a person: the Go package names
// that wrapping puts in front ("lobby: invalid request: pki: ...") go, and
// "thing \"x\": not found" becomes "thing \"x\" not found".
func plain(msg string) string {
	for {
		next := packagePrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			break
		}
		msg = next
	}
	for _, e := range plainEnds {
		if rest, ok := strings.CutSuffix(msg, e.suffix); ok && namedRecord.MatchString(rest) {
			return rest + e.replace
		}
	}
	return msg
}

// writeError sends err as problem+json and logs it.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, p := statusOf(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	var later interface{ RetryAfter() time.Duration }
	if errors.As(err, &later) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(later.RetryAfter().Seconds())))))
	} else if status == http.StatusServiceUnavailable && store.IsUnavailable(err) {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(r))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteError sends err as problem+json with the status statusOf decides,
// for handlers outside this package (the web console) that share the API's
// error mapping.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	writeError(w, r, log, err)
}
