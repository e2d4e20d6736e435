package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// sessionBody is what login and GET /console/api/session answer.
type sessionBody struct {
	Username  string   `json:"username"`
	Roles     []string `json:"roles"`
	CSRFToken string   `json:"csrfToken"`
}

// maxCookieLen bounds the cookie values looked up (ours are 43 bytes).
const maxCookieLen = 128

// touchEvery is how stale a session's last-seen time may get before a
// request refreshes it, so that not every request writes to the database.
func (c *Console) touchEvery() time.Duration { return min(c.idle/10, time.Minute) }

// hashID is how a session id is stored.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (c *Console) random() (string, error) {
	b := make([]byte, 32)
	r := c.rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("console: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// clientAddr is the address logins are rate limited by: the peer's IP
// (forwarding headers are not trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// checkOrigin refuses a browser request sent from another origin, and a
// login body that is not JSON (an HTML form on another site cannot send
// application/json without the browser asking first).
func checkOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return httpapi.ErrCSRF
		}
	}
	return nil
}

func requireJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &httpapi.Error{Status: http.StatusUnsupportedMediaType, Msg: "Content-Type must be application/json"}
	}
	return nil
}

// printable keeps an untrusted name fit for the event log.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	for utf8.RuneCountInString(s) > 64 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) error {
	if err := checkOrigin(r); err != nil {
		return err
	}
	addr := clientAddr(r)
	if ok, wait := c.limiter.Allow(ratelimit.AddrKey(r.RemoteAddr)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
		c.log.WarnContext(r.Context(), "console login rate limited", "remote", addr)
		return httpapi.ErrRateLimited
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := httpapi.DecodeJSON(w, r, c.maxBody, &in); err != nil {
		return err
	}
	var u *store.User
	err := registry.ErrBadCredentials // no password that long was ever accepted
	if len(in.Password) <= registry.MaxPasswordLength {
		u, err = c.reg.Authenticate(r.Context(), in.Username, in.Password)
	}
	if errors.Is(err, registry.ErrBadCredentials) {
		name := printable(in.Username)
		ctx := events.WithActor(r.Context(), "anonymous")
		if _, rerr := c.events.Change(ctx, "console.login_failed", func(*store.Tx) (string, any, error) {
			return "user/" + name, map[string]any{"remote": addr}, nil
		}); rerr != nil {
			return rerr
		}
		c.log.InfoContext(r.Context(), "console login failed", "user", name, "remote", addr)
		return err
	}
	if errors.Is(err, registry.ErrSignInThrottled) {
		c.log.WarnContext(r.Context(), "console login throttled for the account", "user", printable(in.Username), "remote", addr)
		return err
	}
	if err != nil {
		return err
	}
	id, err := c.random()
	if err != nil {
		return err
	}
	csrf, err := c.random()
	if err != nil {
		return err
	}
	now := c.now().UTC()
	sess := &store.ConsoleSession{IDHash: hashID(id), Username: u.Username, CSRFToken: csrf, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(c.ttl)}
	ctx := events.WithActor(r.Context(), "user:"+u.Username)
	if _, err := c.events.Change(ctx, "console.login", func(tx *store.Tx) (string, any, error) {
		return "user/" + u.Username, map[string]any{"remote": addr}, tx.CreateConsoleSession(ctx, sess)
	}); err != nil {
		return err
	}
	if _, err := c.Purge(r.Context()); err != nil {
		c.log.WarnContext(r.Context(), "purge console sessions", "err", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", MaxAge: int(c.ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure || r.TLS != nil,
	})
	return httpapi.WriteJSON(w, http.StatusOK, sessionBody{Username: u.Username, Roles: u.Roles, CSRFToken: csrf})
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) error {
	username, roles, csrf, err := c.Authenticate(r)
	if err != nil {
		return err
	}
	if username == "" {
		return httpapi.ErrNoSession
	}
	return httpapi.WriteJSON(w, http.StatusOK, sessionBody{Username: username, Roles: roles, CSRFToken: csrf})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) error {
	if err := checkOrigin(r); err != nil {
		return err
	}
	cookie, err := r.Cookie(CookieName)
	if err != nil {
		return httpapi.ErrNoSession
	}
	username, err := c.changer(r)
	if err != nil {
		return err
	}
	ctx := events.WithActor(r.Context(), "user:"+username)
	_, err = c.events.Change(ctx, "console.logout", func(tx *store.Tx) (string, any, error) {
		return "user/" + username, map[string]any{"remote": clientAddr(r)}, tx.DeleteConsoleSession(ctx, hashID(cookie.Value))
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure || r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changer is who may make the change r asks for: the user of a live
// session whose request comes from the console's own origin with the
// session's CSRF token.
func (c *Console) changer(r *http.Request) (string, error) {
	if err := checkOrigin(r); err != nil {
		return "", err
	}
	username, _, csrf, err := c.Authenticate(r)
	if err != nil {
		return "", err
	}
	if username == "" {
		return "", httpapi.ErrNoSession
	}
	if !httpapi.CSRFMatches(r, csrf) {
		return "", httpapi.ErrCSRF
	}
	return username, nil
}

// Authenticate implements httpapi.Sessions: the user, current roles and
// CSRF token of the request's session cookie, or an empty username when
// there is no live session. A session past its lifetime or idle timeout,
// or of a user since deleted or disabled, is ended.
func (c *Console) Authenticate(r *http.Request) (username string, roles []string, csrf string, err error) {
	cookie, err := r.Cookie(CookieName)
	if err != nil || cookie.Value == "" || len(cookie.Value) > maxCookieLen {
		return "", nil, "", nil
	}
	ctx := r.Context()
	hash := hashID(cookie.Value)
	sess, err := c.store.ConsoleSessionByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, "", nil
	}
	if err != nil {
		return "", nil, "", err
	}
	now := c.now()
	if !now.Before(sess.ExpiresAt) || !now.Before(sess.LastSeenAt.Add(c.idle)) {
		c.end(ctx, hash)
		return "", nil, "", nil
	}
	u, err := c.reg.User(ctx, sess.Username)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		c.end(ctx, hash)
		return "", nil, "", nil
	}
	if err != nil {
		return "", nil, "", err
	}
	if now.Sub(sess.LastSeenAt) >= c.touchEvery() {
		if err := c.store.TouchConsoleSession(ctx, hash, now.UTC()); err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", nil, "", err
		}
	}
	return u.Username, u.Roles, sess.CSRFToken, nil
}

// end deletes a session that is no longer valid.
func (c *Console) end(ctx context.Context, hash string) {
	if err := c.store.DeleteConsoleSession(ctx, hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.WarnContext(ctx, "end console session", "err", err)
	}
}

// Purge deletes expired and idle sessions and returns how many.
func (c *Console) Purge(ctx context.Context) (int64, error) {
	now := c.now().UTC()
	return c.store.PurgeConsoleSessions(ctx, now, now.Add(-c.idle))
}

// Run purges expired sessions every interval until ctx ends.
func (c *Console) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := c.Purge(ctx); err != nil {
				c.log.WarnContext(ctx, "purge console sessions", "err", err)
			} else if n > 0 {
				c.log.Debug("purged console sessions", "count", n)
			}
		}
	}
}
