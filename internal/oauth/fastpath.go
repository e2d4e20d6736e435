package oauth

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The client credentials grant is the token endpoint's hot path: a fleet
// of things asks for tokens all day. op's generic handling of it (router,
// tracing, form parsing into maps, reflection-based form decoding twice,
// reflection-based JSON) costs about as much as everything else around the
// signature, so the ordinary form of that request is served here instead.
//
// The fast path calls the same op.Server methods in the same order with
// the same arguments as op's webServer (VerifyClient, the grant type check,
// the public-client check, ClientCredentialsExchange) and writes errors
// with op.WriteError, so validation, error codes, status codes, tokens and
// events are op's by construction. It only replaces the parsing and the
// success response encoding, and it takes a request only if it can parse
// it exactly as op would: anything else - another grant, a query string,
// another content type, a repeated or unknown parameter, a bad escape, a
// body over maxFastBody or of unknown length - is handed to op unchanged
// (the body replayed). TestFastPathMatchesOp checks both against each other.

// maxFastBody bounds the form bodies the fast path reads; a client
// credentials request with a client assertion is well below it.
const maxFastBody = 16 << 10

// fastForm holds the parameters of a client credentials request.
type fastForm struct {
	grantType, scope, clientID, clientSecret, assertion, assertionType string
	hasScope                                                           bool
	values                                                             url.Values
}

// tokenEndpoint serves PathToken: the fast path for client credentials,
// op (next) for everything else. It counts token errors by code.
func (s *Server) tokenEndpoint(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.noFastPath && s.serveClientCredentials(w, r) {
			return
		}
		if !checkRepeated(w, r) {
			s.metrics.Load().tokenError(string(oidc.InvalidRequest))
			return
		}
		if g := r.PostForm.Get("grant_type"); g != "" && !s.supportedGrant(g) {
			s.metrics.Load().tokenError(string(oidc.UnsupportedGrantType))
			writeOAuthError(w, http.StatusBadRequest, oidc.ErrUnsupportedGrantType().WithDescription("grant_type %q is not offered here", g))
			return
		}
		if m := s.metrics.Load(); m != nil {
			cw := &errorCapture{ResponseWriter: w}
			next.ServeHTTP(cw, r)
			if cw.status >= 400 {
				m.tokenError(cw.code())
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveClientCredentials answers r if it is a client credentials grant in
// the ordinary form, and reports whether it did. If it did not, r (body
// included) is as it was.
func (s *Server) serveClientCredentials(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.RawQuery != "" || r.ContentLength <= 0 || r.ContentLength > maxFastBody ||
		r.MultipartForm != nil || !isFormContentType(r.Header.Get("Content-Type")) {
		return false
	}
	if r.PostForm != nil {
		// A handler in front (a rate limiter reading client_id, say)
		// already parsed the form: take the parameters from there.
		f, ok := fastFormFromValues(r.PostForm)
		if !ok || f.grantType != string(oidc.GrantTypeClientCredentials) || len(r.Form) != len(r.PostForm) {
			return false
		}
		s.fastServed.Add(1)
		s.clientCredentials(w, r, f)
		return true
	}
	if r.Form != nil {
		return false
	}
	body := make([]byte, r.ContentLength)
	n, err := io.ReadFull(r.Body, body)
	if err != nil {
		// Let op read (and fail on) the same bytes.
		r.Body = replayBody{Reader: io.MultiReader(bytes.NewReader(body[:n]), r.Body), Closer: r.Body}
		return false
	}
	f, ok := parseFastForm(body)
	if !ok || f.grantType != string(oidc.GrantTypeClientCredentials) {
		r.Body = replayBody{Reader: bytes.NewReader(body), Closer: r.Body}
		return false
	}
	// What op's ParseForm would have left behind.
	r.Form, r.PostForm = f.values, f.values
	s.fastServed.Add(1)
	s.clientCredentials(w, r, f)
	return true
}

// clientCredentials is op's webServer.tokensHandler, withClient,
// parseClientCredentials and clientCredentialsHandler for one parsed
// client credentials request.
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, f *fastForm) {
	ctx := r.Context()
	fail := func(err error) {
		s.metrics.Load().tokenError(errorCode(err))
		op.WriteError(w, r, err, nil)
	}
	cc := &op.ClientCredentials{ClientID: f.clientID, ClientSecret: f.clientSecret, ClientAssertion: f.assertion, ClientAssertionType: f.assertionType}
	assertionAuth := cc.ClientAssertion != "" && cc.ClientAssertionType != ""
	secretAuth := cc.ClientSecret != "" && cc.ClientID != ""
	if assertionAuth && secretAuth {
		fail(oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method"))
		return
	}
	if id, secret, ok := r.BasicAuth(); ok {
		if assertionAuth || secretAuth {
			fail(oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method"))
			return
		}
		var err error
		if cc.ClientID, err = url.QueryUnescape(id); err != nil {
			fail(oidc.ErrInvalidClient().WithDescription("invalid basic auth header").WithParent(err))
			return
		}
		if cc.ClientSecret, err = url.QueryUnescape(secret); err != nil {
			fail(oidc.ErrInvalidClient().WithDescription("invalid basic auth header").WithParent(err))
			return
		}
	}
	if cc.ClientID == "" && cc.ClientAssertion == "" {
		fail(oidc.ErrInvalidRequest().WithDescription("client_id or client_assertion must be provided"))
		return
	}
	if cc.ClientAssertion != "" && cc.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion {
		fail(oidc.ErrInvalidRequest().WithDescription("invalid client_assertion_type %s", cc.ClientAssertionType))
		return
	}
	client, err := s.VerifyClient(ctx, &op.Request[op.ClientCredentials]{Method: r.Method, URL: r.URL, Header: r.Header, Form: r.Form, Data: cc})
	if err != nil {
		fail(err)
		return
	}
	if !op.ValidateGrantType(client, oidc.GrantTypeClientCredentials) {
		fail(oidc.ErrUnauthorizedClient().WithDescription("grant_type %q not allowed", oidc.GrantTypeClientCredentials))
		return
	}
	if client.AuthMethod() == oidc.AuthMethodNone {
		fail(oidc.ErrInvalidClient().WithDescription("client must be authenticated"))
		return
	}
	req := &oidc.ClientCredentialsRequest{GrantType: oidc.GrantType(f.grantType), ClientID: f.clientID, ClientSecret: f.clientSecret,
		ClientAssertion: f.assertion, ClientAssertionType: f.assertionType}
	if f.hasScope {
		// The form decoder's SpaceDelimitedArray: split on every space.
		req.Scope = strings.Split(f.scope, " ")
	}
	resp, err := s.ClientCredentialsExchange(ctx, &op.ClientRequest[oidc.ClientCredentialsRequest]{
		Request: &op.Request[oidc.ClientCredentialsRequest]{Method: r.Method, URL: r.URL, Header: r.Header, Form: r.Form, PostForm: r.PostForm, Data: req},
		Client:  client,
	})
	if err != nil {
		fail(err)
		return
	}
	writeTokenResponse(w, resp)
}

// writeTokenResponse writes resp as op's Response.writeOut does; an access
// token response is encoded without reflection.
func writeTokenResponse(w http.ResponseWriter, resp *op.Response) {
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	h.Set("content-type", "application/json")
	w.WriteHeader(http.StatusOK)
	at, ok := resp.Data.(*oidc.AccessTokenResponse)
	if !ok {
		if err := json.NewEncoder(w).Encode(resp.Data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	_, _ = w.Write(appendTokenResponse(make([]byte, 0, len(at.AccessToken)+len(at.RefreshToken)+160), at))
}

// appendTokenResponse appends what json.NewEncoder(w).Encode(at) writes:
// the fields of oidc.AccessTokenResponse in order, empty ones omitted, and
// a newline.
func appendTokenResponse(b []byte, at *oidc.AccessTokenResponse) []byte {
	b = append(b, '{')
	field := func(name, v string) {
		if v == "" {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendJSONString(b, v)
	}
	field("access_token", at.AccessToken)
	field("token_type", at.TokenType)
	field("refresh_token", at.RefreshToken)
	if at.ExpiresIn != 0 {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"expires_in":`...)
		b = strconv.AppendUint(b, at.ExpiresIn, 10)
	}
	field("id_token", at.IDToken)
	field("state", at.State)
	if len(at.Scope) > 0 {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"scope":`...)
		b = appendJSONString(b, at.Scope.String())
	}
	return append(b, '}', '\n')
}

// parseFastForm parses an application/x-www-form-urlencoded body the way
// url.ParseQuery does, but only if each parameter is one of a client
// credentials request's and appears once, and every escape is valid;
// otherwise ok is false.
func parseFastForm(body []byte) (f *fastForm, ok bool) {
	f = &fastForm{values: make(url.Values, 4)}
	rest := string(body)
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			return nil, false
		}
		key, value, _ := strings.Cut(pair, "=")
		var err error
		if key, err = unescapeForm(key); err != nil {
			return nil, false
		}
		if value, err = unescapeForm(value); err != nil {
			return nil, false
		}
		var dst *string
		switch key {
		case "grant_type":
			dst = &f.grantType
		case "scope":
			dst, f.hasScope = &f.scope, true
		case "client_id":
			dst = &f.clientID
		case "client_secret":
			dst = &f.clientSecret
		case "client_assertion":
			dst = &f.assertion
		case "client_assertion_type":
			dst = &f.assertionType
		default:
			return nil, false
		}
		if _, dup := f.values[key]; dup {
			return nil, false
		}
		*dst = value
		f.values[key] = []string{value}
	}
	return f, true
}

// fastFormFromValues takes the parameters of an already parsed form, under
// the rules of parseFastForm: known parameters only, each once.
func fastFormFromValues(v url.Values) (*fastForm, bool) {
	f := &fastForm{values: v}
	for key, vals := range v {
		if len(vals) != 1 {
			return nil, false
		}
		switch key {
		case "grant_type":
			f.grantType = vals[0]
		case "scope":
			f.scope, f.hasScope = vals[0], true
		case "client_id":
			f.clientID = vals[0]
		case "client_secret":
			f.clientSecret = vals[0]
		case "client_assertion":
			f.assertion = vals[0]
		case "client_assertion_type":
			f.assertionType = vals[0]
		default:
			return nil, false
		}
	}
	return f, true
}

func unescapeForm(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// isFormContentType reports whether ct is what http.Request.ParseForm reads
// as a form.
func isFormContentType(ct string) bool {
	if ct == "application/x-www-form-urlencoded" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// replayBody gives op the bytes the fast path already read.
type replayBody struct {
	io.Reader
	io.Closer
}

// errorCode is the RFC 6749 error code op.WriteError writes for err.
func errorCode(err error) string {
	return string(oidc.DefaultToServerError(err, "").ErrorType)
}

// errorCapture remembers the status of a response op writes, and the
// start of its body if it is an error, to count the error by code.
type errorCapture struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (c *errorCapture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *errorCapture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.status >= 400 && len(c.body) < 512 {
		c.body = append(c.body, b[:min(len(b), 512-len(c.body))]...)
	}
	return c.ResponseWriter.Write(b)
}

func (c *errorCapture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// code is the "error" of the captured error response.
func (c *errorCapture) code() string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(c.body, &e) != nil {
		return ""
	}
	return e.Error
}
