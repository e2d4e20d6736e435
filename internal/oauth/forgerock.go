package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// ForgeRock AM (OpenAM) compatibility: the calls ForgeRock-based device
// scripts make, under /am, mapped onto Gatehouse's own endpoints. Every /am
// route is registered in amRoutes.
const (
	// PathAMPrefix is where the ForgeRock AM compatible routes live.
	PathAMPrefix = "/am/"
	// AMSessionCookie carries the session token /am/json/.../authenticate
	// answers (ForgeRock's default cookie name).
	AMSessionCookie = "iPlanetDirectoryPro"
	// AMSessionTTL is how long such a session token is good for.
	AMSessionTTL = 15 * time.Minute
	// GrantDeviceCodeLegacy is OpenAM 13's device grant type; its device
	// code travels as code=.
	GrantDeviceCodeLegacy = "http://oauth.net/grant_type/device/1.0"
	// amSessionPrefix starts every session token (ForgeRock's start with
	// AQIC), so they are recognisable in leaks.
	amSessionPrefix = "ghss_"
)

// amRoutes registers the ForgeRock AM routes on mux; native serves the
// rewritten OAuth requests (the server's own mux).
func (s *Server) amRoutes(native http.Handler) []Route {
	var rs []Route
	for _, realm := range []string{"", "/realms/root"} {
		rs = append(rs,
			Route{"POST /am/json" + realm + "/authenticate", http.HandlerFunc(s.serveAMAuthenticate)},
			Route{"POST /am/json" + realm + "/things/{name}", http.HandlerFunc(s.serveAMThingToken)},
			Route{"/am/oauth2" + realm + "/device/code", s.amRewrite(native, PathDeviceCode, amDeviceCodeResponse)},
			Route{"/am/oauth2" + realm + "/access_token", s.amRewrite(native, PathToken, nil)},
			Route{"/am/oauth2" + realm + "/introspect", s.amRewrite(native, PathIntrospect, nil)},
			Route{"GET /am/oauth2" + realm + "/connect/jwk_uri", s.amRewrite(native, PathKeys, nil)},
		)
	}
	return rs
}

// amSession is what a session token seals.
type amSession struct {
	// Thing or User names who authenticated.
	Thing   string `json:"t,omitempty"`
	User    string `json:"u,omitempty"`
	Expires int64  `json:"e"`
}

func amSessionAD() []byte { return []byte("gatehouse:am-session") }

// newAMSession seals a session token: stateless, so any replica sharing
// the master key accepts it, and good for AMSessionTTL.
func (s *Server) newAMSession(sess amSession) (string, error) {
	if s.sealer == nil {
		return "", errors.New("oauth: no sealer for session tokens")
	}
	sess.Expires = s.now().Add(AMSessionTTL).Unix()
	b, err := json.Marshal(sess)
	if err != nil {
		return "", err
	}
	sealed, err := s.sealer.Seal(b, amSessionAD())
	if err != nil {
		return "", fmt.Errorf("oauth: seal session: %w", err)
	}
	return amSessionPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openAMSession checks a session token; errors say nothing about why.
func (s *Server) openAMSession(tok string) (*amSession, error) {
	bad := errors.New("invalid or expired session")
	raw, ok := strings.CutPrefix(tok, amSessionPrefix)
	if !ok || len(raw) > maxTokenBytes || s.sealer == nil {
		return nil, bad
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, bad
	}
	b, err := s.sealer.Open(sealed, amSessionAD())
	if err != nil {
		return nil, bad
	}
	var sess amSession
	if err := json.Unmarshal(b, &sess); err != nil || s.now().Unix() >= sess.Expires {
		return nil, bad
	}
	return &sess, nil
}

// amError writes ForgeRock's JSON error shape.
func amError(w http.ResponseWriter, status int, reason, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "reason": reason, "message": msg})
}

// serveAMAuthenticate is ForgeRock's zero-page login:
//
//	POST /am/json/realms/root/authenticate
//	X-OpenAM-Username: thingymabot
//	X-OpenAM-Password: <thing client secret, or a person's password>
//
// answering {"tokenId","successUrl","realm"}. A thing logs in with its
// client secret, a person with their password; guesses are rate-limited
// per address like the password grant's, and a person's account is
// throttled after failures as at the sign-in page.
func (s *Server) serveAMAuthenticate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name, pass := r.Header.Get("X-OpenAM-Username"), r.Header.Get("X-OpenAM-Password")
	if name == "" || pass == "" {
		amError(w, http.StatusUnauthorized, "Unauthorized", "X-OpenAM-Username and X-OpenAM-Password are required (callback authentication is not supported)")
		return
	}
	if ok, wait := s.guesses.allow(clientAddr(r), ""); !ok {
		setRetryAfter(w, wait)
		amError(w, http.StatusTooManyRequests, "Too Many Requests", "too many attempts")
		return
	}
	sess, err := s.amLogin(ctx, name, pass)
	if wait, ok := throttled(err); ok {
		setRetryAfter(w, wait)
		amError(w, http.StatusTooManyRequests, "Too Many Requests", "too many failed sign-ins for this account; retry shortly")
		return
	}
	if errors.Is(err, errAMLogin) {
		s.log.InfoContext(ctx, "am authenticate refused", "username", truncate(name))
		amError(w, http.StatusUnauthorized, "Unauthorized", "Authentication Failed")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "am authenticate", "err", err)
		amError(w, http.StatusInternalServerError, "Internal Server Error", "internal error")
		return
	}
	tok, err := s.newAMSession(*sess)
	if err != nil {
		s.log.ErrorContext(ctx, "am session", "err", err)
		amError(w, http.StatusInternalServerError, "Internal Server Error", "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"tokenId": tok, "successUrl": "/am/console", "realm": "/"})
}

var errAMLogin = errors.New("wrong username or password")

// amLogin checks a thing's client secret, then a person's password.
func (s *Server) amLogin(ctx context.Context, name, pass string) (*amSession, error) {
	c, err := s.authenticateSecret(ctx, name, pass)
	if err == nil && c.thing != nil {
		return &amSession{Thing: c.thing.Name}, nil
	}
	if err != nil && !isInvalidClient(err) {
		return nil, err
	}
	u, err := s.registry.Authenticate(ctx, name, pass)
	if errors.Is(err, registry.ErrBadCredentials) {
		return nil, errAMLogin
	}
	if err != nil {
		return nil, err // registry.ErrSignInThrottled among them
	}
	if err != nil {
		return nil, err
	}
	return &amSession{User: u.Username}, nil
}

func isInvalidClient(err error) bool {
	e := oidc.DefaultToServerError(err, "")
	return e.ErrorType == oidc.InvalidClient
}

// serveAMThingToken is /am/json/things/*?_action=get_access_token with the
// session token as the iPlanetDirectoryPro cookie (or header); without one
// it is Gatehouse's own /things/ endpoint (Basic or signed JWT).
func (s *Server) serveAMThingToken(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get(AMSessionCookie)
	if c, err := r.Cookie(AMSessionCookie); err == nil {
		tok = c.Value
	}
	if tok == "" {
		s.serveThingToken(w, r)
		return
	}
	ctx := r.Context()
	fail := func(status int, e *oidc.Error) {
		s.metrics.Load().tokenError(string(e.ErrorType))
		writeOAuthError(w, status, e)
	}
	if r.URL.Query().Get("_action") != "get_access_token" {
		fail(http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("_action must be get_access_token"))
		return
	}
	sess, err := s.openAMSession(tok)
	if err != nil {
		fail(http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("%v", err))
		return
	}
	if sess.Thing == "" {
		fail(http.StatusBadRequest, oidc.ErrUnauthorizedClient().WithDescription("only things may use this endpoint"))
		return
	}
	// The thing is loaded again: disabled since the login means no token.
	c, err := s.thingClient(ctx, sess.Thing, AuthMethodClientSecret, oidc.AuthMethodBasic)
	if err == nil && c == nil {
		err = invalidClient("invalid or expired session")
	}
	if err != nil {
		e := oidc.DefaultToServerError(err, "internal error")
		fail(http.StatusUnauthorized, e)
		return
	}
	scopes, err := readThingScopes(r.Body)
	if err != nil {
		fail(http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("body must be JSON like {\"scope\":[\"publish\"]}"))
		return
	}
	var resp *oidc.AccessTokenResponse
	if name := r.PathValue("name"); name != "*" && name != c.id {
		resp, err = s.issueForChild(ctx, c, name, scopes)
	} else {
		resp, err = s.issueForClient(ctx, c, scopes, nil)
	}
	if err != nil {
		e := oidc.DefaultToServerError(err, "internal error")
		status := http.StatusBadRequest
		if e.ErrorType == oidc.ServerError {
			status, e = http.StatusInternalServerError, oidc.ErrServerError().WithDescription("internal error")
		}
		fail(status, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// amRewrite serves an OpenAM OAuth 2.0 path with Gatehouse's endpoint at
// path: the realm query parameter (OpenAM's realm selector) is dropped,
// the legacy device grant (grant_type GrantDeviceCodeLegacy, code=) becomes
// RFC 8628's, and a public client's client_secret - OpenAM-era scripts send
// one - is dropped, as a public client has none to check. fix, if set,
// edits a successful JSON answer.
func (s *Server) amRewrite(native http.Handler, path string, fix func(map[string]any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = path, ""
		q := r2.URL.Query()
		q.Del("realm")
		r2.URL.RawQuery = q.Encode()
		r2.RequestURI = r2.URL.RequestURI()
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBodyBytes))
			if err != nil {
				writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("request body too large"))
				return
			}
			form, err := url.ParseQuery(string(b))
			if err != nil {
				writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("malformed request body"))
				return
			}
			if form.Get("grant_type") == GrantDeviceCodeLegacy {
				form.Set("grant_type", string(oidc.GrantTypeDeviceCode))
				if form.Get("device_code") == "" {
					form.Set("device_code", form.Get("code"))
				}
				form.Del("code")
			}
			if form.Get("client_secret") != "" && s.isPublicClient(r.Context(), form.Get("client_id")) {
				form.Del("client_secret")
			}
			enc := form.Encode()
			r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
			r2.Header.Set("Content-Length", strconv.Itoa(len(enc)))
			r2.Form, r2.PostForm = nil, nil
		}
		if fix == nil {
			native.ServeHTTP(w, r2)
			return
		}
		rec := &bufferedWriter{header: http.Header{}}
		native.ServeHTTP(rec, r2)
		body := rec.body.Bytes()
		if rec.status == http.StatusOK {
			var m map[string]any
			if json.Unmarshal(body, &m) == nil {
				fix(m)
				if b, err := json.Marshal(m); err == nil {
					body = b
				}
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
	})
}

// amDeviceCodeResponse adds OpenAM's verification_url (the pre-RFC name)
// alongside verification_uri.
func amDeviceCodeResponse(m map[string]any) {
	if v, ok := m["verification_uri"]; ok {
		m["verification_url"] = v
	}
}

// isPublicClient reports whether id names a client registered without a
// secret: a public static client or a public app.
func (s *Server) isPublicClient(ctx context.Context, id string) bool {
	if sc, ok := s.clients[id]; ok {
		return sc.SecretHash == ""
	}
	if isApp(id) {
		c, err := s.appClient(ctx, id, oidc.AuthMethodNone)
		return err == nil && c != nil && c.app.Public()
	}
	return false
}

// bufferedWriter holds an answer so it can be edited before it is sent.
type bufferedWriter struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
