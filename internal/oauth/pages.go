package oauth

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// The browser pages (the device verification page and the authorization
// code flow's sign-in page) share their mechanics: security headers, a
// double-submit CSRF token bound to a SameSite=Strict cookie scoped to the
// page's path, and rendering.

//go:embed templates/*.html
var pageTemplates embed.FS

// parsePage parses templates/<name>.html (its "page" template renders it).
func parsePage(name string) (*template.Template, error) {
	return template.ParseFS(pageTemplates, "templates/"+name+".html")
}

// pageHeaders sets the headers of a browser page: no scripts, no framing,
// no caching.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// pageCSRF returns the browser's CSRF token for the page at path, setting
// a new cookie named cookie if it has none.
func (s *Server) pageCSRF(w http.ResponseWriter, r *http.Request, cookie, path string) (string, error) {
	if c, err := r.Cookie(cookie); err == nil && len(c.Value) == 43 {
		return c.Value, nil
	}
	tok, err := s.newID(32)
	if err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookie, Value: tok, Path: path, HttpOnly: true, Secure: s.issuerURL.Scheme == "https",
		SameSite: http.SameSiteStrictMode, MaxAge: int((30 * time.Minute) / time.Second),
	})
	return tok, nil
}

// csrfSent reports whether a posted form carries the CSRF token of its
// cookie (compared in constant time).
func csrfSent(r *http.Request, cookie string) bool {
	sent := r.PostForm.Get("csrf")
	c, err := r.Cookie(cookie)
	return err == nil && sent != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(sent)) == 1
}

// renderPage writes a page with status; what names the page in the log.
func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, tmpl *template.Template, status int, data any, what string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := tmpl.ExecuteTemplate(w, "page", data); err != nil && !errors.Is(err, context.Canceled) {
		s.log.ErrorContext(r.Context(), what+": render", "err", err)
	}
}

// signIn is the sign-in step the browser pages share (the device page and
// the authorization code flow's login page): it checks the person's
// username and the posted password, with the registry's per-account
// throttle, and on failure renders the page's answer through render
// (401 wrong credentials, 429 with Retry-After when throttled, 500) and
// returns nil. what names the page in the log. Address-based guessing
// limits are the caller's, as the pages order them differently.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, what, username string, render func(status int, msg string)) *store.User {
	user, err := s.registry.Authenticate(r.Context(), username, r.PostForm.Get("password"))
	if errors.Is(err, registry.ErrBadCredentials) {
		render(http.StatusUnauthorized, "Wrong username or password.")
		return nil
	}
	if wait, ok := throttled(err); ok {
		setRetryAfter(w, wait)
		render(http.StatusTooManyRequests, "Too many failed sign-ins for this account. Please wait a few seconds and try again.")
		return nil
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), what+": authenticate", "err", err)
		render(http.StatusInternalServerError, "Something went wrong. Please try again.")
		return nil
	}
	return user
}
