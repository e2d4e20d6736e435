// Package console is Gatehouse's web admin console: it serves the embedded
// single-page application under /console/ and the JSON endpoints a browser
// signs in with under /console/api/ (login, session, logout, and the MQTT
// test client's token).
//
// It exists so that people can operate Gatehouse from a browser without an
// API token in the page: a login creates a server-side session (only the
// SHA-256 of the cookie value is stored, so replicas on one PostgreSQL share
// sessions and a database leak yields no usable cookie), the session cookie
// is HttpOnly and SameSite=Strict, every change made with it must carry the
// session's CSRF token, logins are rate limited per client address, and
// every console response carries a strict Content-Security-Policy. The
// REST API accepts the session through Console.Authenticate
// (httpapi.Sessions); status codes come from httpapi's one error mapping.
package console

import (
	"embed"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// assetsFS holds the single-page application (index.html, ES modules,
// CSS, vendored libraries). "all:" keeps the directory embeddable while it
// holds only its .keep file; dot files are never served.
//
//go:embed all:assets
var assetsFS embed.FS

// ContentSecurityPolicy is sent with every console response: no inline
// scripts, styles or handlers, nothing from other origins, no framing.
// With an MQTT WebSocket listener, connect-src also names that one
// endpoint (contentSecurityPolicy).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// CookieName is the session cookie.
const CookieName = "gatehouse_session"

// Config holds the console's dependencies.
type Config struct {
	Registry *registry.Service
	Store    *store.Store
	Events   *events.Log
	Logger   *slog.Logger
	Now      func() time.Time
	// Rand makes session ids and CSRF tokens.
	Rand io.Reader
	// SessionTTL is how long a session lasts at most (default 12h).
	SessionTTL time.Duration
	// IdleTimeout ends a session unused for that long (default 1h).
	IdleTimeout time.Duration
	// MaxBodyBytes bounds login bodies (default 64 KiB).
	MaxBodyBytes int64
	// LoginPerIP limits login attempts per client address
	// (limits.consoleLoginPerIP, 10 a minute by default); nil means no
	// limit. Failed sign-ins per account are slowed by the registry as
	// well.
	LoginPerIP *ratelimit.Limiter
	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests: set it when a TLS-terminating proxy is in front (the
	// external URL is https). Requests over TLS always get Secure.
	SecureCookies bool
	// Tokens mints the MQTT test client's tokens; nil, or no WebSocket
	// listener, leaves the test client out.
	Tokens SessionTokens
	// MQTTWS and MQTTWSS are the broker's MQTT-over-WebSocket listener
	// addresses (host:port, "" if none): the test client connects there,
	// and the Content-Security-Policy allows exactly that endpoint.
	MQTTWS, MQTTWSS string
}

// Console serves /console/ and authenticates console sessions.
type Console struct {
	reg     *registry.Service
	store   *store.Store
	events  *events.Log
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	ttl     time.Duration
	idle    time.Duration
	maxBody int64
	secure  bool
	limiter *ratelimit.Limiter
	assets  fs.FS
	mux     *http.ServeMux
	tokens  SessionTokens
	ws, wss string
}

// New returns the console.
func New(c Config) *Console {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Hour
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	con := &Console{
		reg: c.Registry, store: c.Store, events: c.Events, log: c.Logger, now: c.Now, rand: c.Rand,
		ttl: c.SessionTTL, idle: c.IdleTimeout, maxBody: c.MaxBodyBytes, secure: c.SecureCookies,
		limiter: c.LoginPerIP,
		assets:  sub, mux: http.NewServeMux(),
		tokens: c.Tokens, ws: c.MQTTWS, wss: c.MQTTWSS,
	}
	con.routes()
	return con
}

func (c *Console) routes() {
	c.mux.HandleFunc("GET /console/{$}", c.index)
	files := http.StripPrefix("/console/assets/", http.FileServerFS(c.assets))
	c.mux.HandleFunc("GET /console/assets/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/console/assets/")
		if st, err := fs.Stat(c.assets, name); name == "" || hidden(name) || err != nil || st.IsDir() {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	c.mux.HandleFunc("POST /console/api/login", c.api(c.login))
	c.mux.HandleFunc("GET /console/api/session", c.api(c.session))
	c.mux.HandleFunc("POST /console/api/logout", c.api(c.logout))
	c.mux.HandleFunc("POST /console/api/mqtt-token", c.api(c.mintMQTTToken))
	c.mux.HandleFunc("/console/api/", c.api(func(w http.ResponseWriter, r *http.Request) error {
		return &httpapi.Error{Status: http.StatusNotFound, Msg: "no console route " + r.Method + " " + r.URL.Path}
	}))
}

// ServeHTTP serves everything under /console/ with the security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", c.contentSecurityPolicy(r))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(c.assets, "index.html")
	if err != nil {
		http.Error(w, "the console's assets are not built into this binary", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// api adapts a handler returning an error to the API's error mapping.
func (c *Console) api(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r); err != nil {
			httpapi.WriteError(w, r, c.log, err)
		}
	}
}

// hidden reports whether a path has an element starting with a dot.
func hidden(name string) bool {
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}
