package oauth

import (
	"net/http"
	"strings"
)

// BearerChallenge is the WWW-Authenticate value of a 401 from a resource
// that takes bearer tokens (RFC 6750 section 3): with error="invalid_token"
// when the request presented a bearer token, bare when it presented none.
func BearerChallenge(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) != "" {
		return `Bearer realm="gatehouse", error="invalid_token"`
	}
	return `Bearer realm="gatehouse"`
}
