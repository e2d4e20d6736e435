package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// Limits are the authorization server's abuse limits (package ratelimit);
// a nil limiter allows everything.
type Limits struct {
	// TokenPerIP counts every token endpoint request (POST /oauth2/token
	// and POST /things/{name}) per client address; over it the answer is
	// 429 with Retry-After and an RFC 6749 error body.
	TokenPerIP *ratelimit.Limiter
	// TokenPerClient counts tokens issued per client (client credentials,
	// JWT bearer, token exchange, thing tokens): only issued tokens count,
	// so failed attempts under another client's id cannot use up its
	// budget. Over it: 429, Retry-After, RFC 6749 body.
	TokenPerClient *ratelimit.Limiter
	// UserCodePerIP counts user code and password attempts on the device
	// page (and the login page and password grant) per client address.
	// Nil means the default, 10 per 5 minutes.
	UserCodePerIP *ratelimit.Limiter
	// UserCodePerCode counts attempts on the device page per user code
	// entered. Nil means the default, 10 per 10 minutes.
	UserCodePerCode *ratelimit.Limiter
	// UserCodeTotal counts the attempts every address makes together,
	// after the per-address and per-code limits passed them. Nil means
	// the default, 2000 at once then 100 a second: far more than a few
	// addresses can use up, so they cannot lock everyone out.
	UserCodeTotal *ratelimit.Limiter
}

// limiter slows down user code (and password) guessing on the browser
// pages: an attempt is counted against its client address first, then
// against the user code it names, and only an attempt both allow is
// counted against the bucket shared by all addresses. A few addresses
// spend their own buckets, not everyone's.
type limiter struct {
	perAddr, perCode, all *ratelimit.Limiter
}

func newGuessLimiter(l Limits, now func() time.Time) *limiter {
	g := &limiter{perAddr: l.UserCodePerIP, perCode: l.UserCodePerCode, all: l.UserCodeTotal}
	if g.perAddr == nil {
		g.perAddr = ratelimit.New("deviceUserCodePerIP", ratelimit.Rate{Burst: 10, Per: 5 * time.Minute}, ratelimit.Options{Now: now})
	}
	if g.perCode == nil {
		g.perCode = ratelimit.New("deviceUserCodePerCode", ratelimit.Rate{Burst: 10, Per: 10 * time.Minute}, ratelimit.Options{Now: now})
	}
	if g.all == nil {
		g.all = ratelimit.New("deviceUserCodeTotal", ratelimit.Rate{Burst: 2000, Per: 20 * time.Second}, ratelimit.Options{Now: now, MaxKeys: 1})
	}
	return g
}

// allow reports whether an attempt from addr naming code ("" when the
// page has none) may go ahead now, and counts it; if not, how long until
// it may.
func (l *limiter) allow(addr, code string) (bool, time.Duration) {
	if ok, wait := l.perAddr.Allow(ratelimit.AddrKey(addr)); !ok {
		return false, wait
	}
	if code != "" {
		if ok, wait := l.perCode.Allow(code); !ok {
			return false, wait
		}
	}
	return l.all.Allow("")
}

// setRetryAfter sets Retry-After to wait in whole seconds (at least 1).
func setRetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
}

// throttled reports whether err is registry.ErrSignInThrottled, and the
// wait it names.
func throttled(err error) (time.Duration, bool) {
	if !errors.Is(err, registry.ErrSignInThrottled) {
		return 0, false
	}
	wait := time.Second
	var later interface{ RetryAfter() time.Duration }
	if errors.As(err, &later) {
		wait = later.RetryAfter()
	}
	return wait, true
}

// limitTokens applies Limits to the token endpoints in front of next.
func (s *Server) limitTokens(next http.Handler) http.Handler {
	l := s.limits
	if l.TokenPerIP == nil && l.TokenPerClient == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || (r.URL.Path != PathToken && !strings.HasPrefix(r.URL.Path, PathThingsPrefix)) {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.TokenPerIP.AllowAddr(r.RemoteAddr); !ok {
			writeLimited(w, wait, "too many token requests from this address")
			return
		}
		client := ""
		if l.TokenPerClient != nil {
			client = rateClient(r)
		}
		if client == "" {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.TokenPerClient.Check(client); !ok {
			writeLimited(w, wait, "too many tokens issued to this client")
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			l.TokenPerClient.Charge(client)
		}
	})
}

// writeLimited answers a limited token request: 429, Retry-After in whole
// seconds, and an RFC 6749 section 5.2 error body.
func writeLimited(w http.ResponseWriter, wait time.Duration, why string) {
	setRetryAfter(w, wait)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusTooManyRequests, &oidc.Error{ErrorType: "temporarily_unavailable", Description: why + "; retry later"})
}

// perClientGrants are the grants limited per client when the client is
// named in the form (a client authenticating with HTTP Basic is limited
// whatever the grant): those where a machine client (a thing)
// authenticates itself. The device code and
// refresh grants of the shared public client are not, or every device
// would share one budget.
var perClientGrants = map[string]bool{
	string(oidc.GrantTypeClientCredentials): true,
	string(oidc.GrantTypeBearer):            true,
	string(oidc.GrantTypeTokenExchange):     true,
}

// rateClient is the client a token request counts against, or "" when it
// is not limited per client. It reads the form from a copy of the body,
// leaving r.Body intact for the handler. The name is unverified: it is
// only charged once a token was issued to it.
func rateClient(r *http.Request) string {
	if name, ok := strings.CutPrefix(r.URL.Path, PathThingsPrefix); ok {
		if name != "*" {
			return name
		}
		// /things/* is "the thing that authenticates".
		if id, _, ok := r.BasicAuth(); ok {
			return id
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			return unverifiedSubject(tok)
		}
		return ""
	}
	if id, _, ok := r.BasicAuth(); ok {
		// A client authenticating with HTTP Basic is a confidential
		// client, whatever the grant: no need to read the form.
		if u, err := url.QueryUnescape(id); err == nil {
			return u
		}
		return id
	}
	if r.Body == nil {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBodyBytes+1))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !perClientGrants[form.Get("grant_type")] {
		return ""
	}
	if id := form.Get("client_id"); id != "" {
		return id
	}
	for _, a := range []string{form.Get("client_assertion"), form.Get("assertion")} {
		if sub := unverifiedSubject(a); sub != "" {
			return sub
		}
	}
	return ""
}

// unverifiedSubject is the sub claim of a compact JWT, unverified.
func unverifiedSubject(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Sub
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
