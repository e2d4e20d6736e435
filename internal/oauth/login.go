package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// loginCSRFCookie carries the double-submit CSRF token of the login page.
const loginCSRFCookie = "gatehouse_login_csrf"

type loginPage struct {
	Action   string
	CSRF     string
	ID       string
	ClientID string
	Scopes   []string
	Username string
	Error    string
}

// serveLogin is the login page of the authorization code flow: GET shows
// which app asks for which scopes; POST signs the person in (rate-limited
// like the device page, double-submit CSRF token bound to a SameSite=Strict
// cookie) and sends the browser back to the app with a one-time code, or
// with error=access_denied. Apps are registered by administrators, so
// signing in is the consent.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	ctx := r.Context()
	page := &loginPage{Action: PathLogin}
	csrf, err := s.loginCSRF(w, r)
	if err != nil {
		s.renderLogin(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	page.CSRF = csrf
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.renderLogin(w, r, http.StatusBadRequest, page, "The form could not be read.")
			return
		}
	}
	id := r.FormValue("id")
	ar, err := s.pendingAuthRequest(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "login page: load request", "err", err)
		}
		s.renderLogin(w, r, http.StatusBadRequest, page, "This sign-in request is not valid or has expired.")
		return
	}
	page.ID, page.ClientID, page.Scopes = id, ar.ClientID, ar.Scopes
	if r.Method == http.MethodGet {
		s.renderLogin(w, r, http.StatusOK, page, "")
		return
	}
	if !csrfSent(r, loginCSRFCookie) {
		s.renderLogin(w, r, http.StatusForbidden, page, "Your session expired. Please try again.")
		return
	}
	if r.PostForm.Get("action") == "deny" {
		if err := s.store.DeleteAuthRequest(ctx, ar.IDHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "login page: deny", "err", err)
		}
		u, err := url.Parse(ar.RedirectURI)
		if err != nil {
			s.renderLogin(w, r, http.StatusInternalServerError, page, "Something went wrong.")
			return
		}
		q := u.Query()
		q.Set("error", "access_denied")
		if ar.State != "" {
			q.Set("state", ar.State)
		}
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	page.Username = r.PostForm.Get("username")
	if ok, wait := s.guesses.allow(clientAddr(r), ""); !ok {
		setRetryAfter(w, wait)
		s.renderLogin(w, r, http.StatusTooManyRequests, page, "Too many attempts. Please wait a minute and try again.")
		return
	}
	user := s.signIn(w, r, "login page", page.Username, func(status int, msg string) { s.renderLogin(w, r, status, page, msg) })
	if user == nil {
		return
	}
	code, err := s.newID(32)
	if err != nil {
		s.renderLogin(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	actx := events.WithActor(ctx, "user:"+user.Username)
	err = s.change(actx, "authorization.approved", func(tx *store.Tx) (string, any, error) {
		cur, err := tx.GetAuthRequest(ctx, ar.IDHash)
		if err != nil {
			return "", nil, err
		}
		if cur.CodeHash != "" || s.now().After(cur.ExpiresAt) {
			return "", nil, store.ErrNotFound
		}
		return "client/" + ar.ClientID, map[string]any{"user": user.Username, "client_id": ar.ClientID, "scope": ar.Scopes},
			tx.SaveAuthCode(ctx, ar.IDHash, user.Username, HashSecret(code), s.now().UTC().Add(authCodeTTL))
	})
	if errors.Is(err, store.ErrNotFound) {
		s.renderLogin(w, r, http.StatusBadRequest, page, "This sign-in request is not valid or has expired.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "login page: issue code", "err", err)
		s.renderLogin(w, r, http.StatusInternalServerError, page, "Something went wrong. Please try again.")
		return
	}
	target, err := codeRedirect(ar, code)
	if err != nil {
		s.renderLogin(w, r, http.StatusInternalServerError, page, "Something went wrong.")
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// pendingAuthRequest returns an unexpired request that has no code yet.
func (s *Server) pendingAuthRequest(ctx context.Context, id string) (*store.AuthRequest, error) {
	if id == "" || len(id) > maxSecretBytes {
		return nil, store.ErrNotFound
	}
	ar, err := s.store.GetAuthRequest(ctx, HashSecret(id))
	if err != nil {
		return nil, err
	}
	if ar.CodeHash != "" || s.now().After(ar.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	return ar, nil
}

func (s *Server) loginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	return s.pageCSRF(w, r, loginCSRFCookie, PathLogin)
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, page *loginPage, msg string) {
	page.Error = msg
	s.renderPage(w, r, s.loginTmpl, status, page, "login page")
}
