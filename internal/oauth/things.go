package oauth

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// serveThingToken is the ForgeRock-style thing endpoint:
//
//	POST /things/{name}?_action=get_access_token
//	Authorization: Basic base64(name:secret)   or   Bearer <signed JWT>
//	{"scope": ["publish"]}
//
// The signed JWT is a client assertion (RFC 7523: iss = sub = the thing,
// aud = the issuer or this URL, exp, and a jti that works as a one-time
// nonce) signed by one of the thing's registered keys. {name} is the thing
// itself or "*" (as ForgeRock's things/*). The answer is a standard token
// response, errors are RFC 6749 error objects.
func (s *Server) serveThingToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(err error) {
		status := http.StatusBadRequest
		e := oidc.DefaultToServerError(err, "internal error")
		if e.ErrorType == oidc.InvalidClient {
			status = http.StatusUnauthorized
		}
		if e.ErrorType == oidc.ServerError {
			status = http.StatusInternalServerError
			e = oidc.ErrServerError().WithDescription("internal error")
		}
		s.metrics.Load().tokenError(string(e.ErrorType))
		writeOAuthError(w, status, e)
	}
	if r.URL.Query().Get("_action") != "get_access_token" {
		fail(oidc.ErrInvalidRequest().WithDescription("_action must be get_access_token"))
		return
	}
	var (
		c   *client
		err error
	)
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		id, secret, ok := r.BasicAuth()
		if !ok {
			fail(invalidClient("malformed Basic authorization"))
			return
		}
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if u, err := url.QueryUnescape(secret); err == nil {
			secret = u
		}
		c, err = s.authenticateSecret(ctx, id, secret)
	case strings.EqualFold(scheme, "Bearer"):
		c, err = s.authenticateAssertion(ctx, "", strings.TrimSpace(cred), r.URL.Path)
	default:
		err = invalidClient("thing authentication required: Basic client secret or Bearer signed JWT")
	}
	if err != nil {
		fail(err)
		return
	}
	if c.thing == nil {
		fail(oidc.ErrUnauthorizedClient().WithDescription("only things may use this endpoint"))
		return
	}
	name := r.PathValue("name")
	scopes, err := readThingScopes(r.Body)
	if err != nil {
		fail(oidc.ErrInvalidRequest().WithDescription("body must be JSON like {\"scope\":[\"publish\"]}"))
		return
	}
	var resp *oidc.AccessTokenResponse
	if name != "*" && name != c.id {
		// A gateway asks for a token for one of its children.
		resp, err = s.issueForChild(ctx, c, name, scopes)
	} else {
		resp, err = s.issueForClient(ctx, c, scopes, nil)
	}
	if err != nil {
		fail(err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// readThingScopes reads {"scope": [...]} or {"scope": "a b"}; an empty
// body asks for every allowed scope.
func readThingScopes(body io.Reader) ([]string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	var req struct {
		Scope json.RawMessage `json:"scope"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, err
	}
	if len(req.Scope) == 0 || string(req.Scope) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(req.Scope, &list); err == nil {
		return list, nil
	}
	var one string
	if err := json.Unmarshal(req.Scope, &one); err != nil {
		return nil, err
	}
	return strings.Fields(one), nil
}
