package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// sessionRoutes serves a user's web console sessions: administrators see
// and end anyone's, every other person only their own.
func (a *API) sessionRoutes() {
	a.handleCaller("GET /api/v1/users/{name}/sessions", a.listConsoleSessions)
	a.handleCaller("DELETE /api/v1/users/{name}/sessions/{id}", a.endConsoleSession)
}

// consoleSessionView is a console session without its CSRF token. The id
// is the SHA-256 of the cookie value: it names the session and cannot be
// used to sign in.
type consoleSessionView struct {
	ID         string    `json:"id"`
	Username   string    `json:"username"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

func viewConsoleSession(s *store.ConsoleSession) consoleSessionView {
	return consoleSessionView{ID: s.IDHash, Username: s.Username, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt}
}

// selfOrAdmin refuses a caller who is neither the user named in the path
// nor an administrator.
func selfOrAdmin(r *http.Request, c registry.Caller) (string, error) {
	name := r.PathValue("name")
	if c.Username != name && !slices.Contains(c.Roles, registry.RoleAdmin) {
		return "", errForbidden
	}
	return name, nil
}

func (a *API) listConsoleSessions(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
	name, err := selfOrAdmin(r, c)
	if err != nil {
		return err
	}
	ss, err := a.reg.ConsoleSessions(r.Context(), name)
	if err != nil {
		return err
	}
	items := make([]consoleSessionView, len(ss))
	for i := range ss {
		items[i] = viewConsoleSession(&ss[i])
	}
	return writeJSON(w, http.StatusOK, listResponse[consoleSessionView]{Items: items})
}

func (a *API) endConsoleSession(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
	name, err := selfOrAdmin(r, c)
	if err != nil {
		return err
	}
	if err := a.reg.EndConsoleSession(r.Context(), name, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
