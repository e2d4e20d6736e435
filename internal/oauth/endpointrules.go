package oauth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The endpoints a client sends credentials or tokens to - token, device
// authorization, introspection, revocation - share rules that op leaves to
// the server. strictEndpoint applies them before the endpoint sees a
// request, and to every answer it writes:
//
//   - POST only: anything else is 405 with Allow: POST (RFC 6749 3.2,
//     RFC 7009 2.1, RFC 7662 2.1, RFC 8628 3.1).
//   - Nothing in the query string: credentials must not be in the request
//     URI (RFC 6749 2.3.1) and tokens in URLs end up in logs, so any query
//     is invalid_request.
//   - No parameter twice (RFC 6749 3.1, 3.2): invalid_request. The token
//     endpoint's client credentials fast path refuses repeats itself and
//     hands them to checkRepeated through op's path, so the hot path reads
//     its body once.
//   - Answers are not stored by caches: Cache-Control: no-store and
//     Pragma: no-cache (RFC 6749 5.1), errors included.
//   - A 401 names the authentication scheme: WWW-Authenticate: Basic
//     (RFC 6749 5.2, RFC 7235 3.1).

// multiValued are the parameters a request may repeat: RFC 8707 resource
// indicators.
var multiValued = []string{"resource"}

// strictEndpoint wraps an endpoint in the rules above. parseBody says
// whether the wrapper checks for repeated parameters itself (false for the
// token endpoint, which does it on the path that needs it).
func strictEndpoint(next http.Handler, parseBody bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setNoStore(w.Header())
		w = basicChallenge{w}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeOAuthError(w, http.StatusMethodNotAllowed, oidc.ErrInvalidRequest().WithDescription("this endpoint accepts POST only"))
			return
		}
		if r.URL.RawQuery != "" {
			writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("parameters belong in the request body, not in the URL"))
			return
		}
		if parseBody && !checkRepeated(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkRepeated parses r's form and answers invalid_request if a parameter
// appears more than once; it reports whether r may go on.
func checkRepeated(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		// ParseForm keeps what it could parse and would not fail again
		// for the endpoint: answer here.
		writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("malformed request body"))
		return false
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && !slices.Contains(multiValued, k) {
			writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("parameter %q is repeated", k))
			return false
		}
	}
	return true
}

// setNoStore marks an answer that carries tokens or credentials as not to
// be stored (RFC 6749 5.1).
func setNoStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// basicChallenge adds WWW-Authenticate: Basic to a 401 written without one.
type basicChallenge struct{ http.ResponseWriter }

func (b basicChallenge) WriteHeader(status int) {
	if status == http.StatusUnauthorized && b.Header().Get("WWW-Authenticate") == "" {
		b.Header().Set("WWW-Authenticate", basicRealm)
	}
	b.ResponseWriter.WriteHeader(status)
}

func (b basicChallenge) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// basicRealm is the challenge of the endpoints clients authenticate at.
const basicRealm = `Basic realm="gatehouse"`

// supportedGrant reports whether the token endpoint offers grant, as the
// metadata's grant_types_supported says; others are unsupported_grant_type
// (RFC 6749 5.2) before any client is looked at.
func (s *Server) supportedGrant(grant string) bool {
	for _, g := range s.grantTypes {
		if string(g) == grant {
			return true
		}
	}
	return false
}

// audienceFor is the aud of an access token requested with form: the
// resource indicators it names (RFC 8707 section 2; the parameter may
// repeat), each of them registered (Config.Resources) or the default
// audience, else invalid_target. Without resource it is nil: the default
// audience.
func (s *Server) audienceFor(form url.Values) ([]string, error) {
	asked := form["resource"]
	if len(asked) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(asked))
	for _, r := range asked {
		if !slices.Contains(s.resources, r) && !slices.Contains(s.audience, r) {
			return nil, &oidc.Error{ErrorType: oidc.InvalidTarget, Description: fmt.Sprintf("resource %q is not a registered resource", truncate(r))}
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}
