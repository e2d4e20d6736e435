package httpapi

import (
	"context"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Apps is what the admin API needs to manage registered OAuth apps (clients
// that are not things); *oauth.Server is one.
type Apps interface {
	CreateApp(ctx context.Context, in oauth.AppSpec) (*store.App, string, error)
	Apps(ctx context.Context) ([]store.App, error)
	App(ctx context.Context, clientID string) (*store.App, error)
	DeleteApp(ctx context.Context, clientID string) error
}

// appView is an app as the API shows it.
type appView struct {
	appFields
	Public bool `json:"public"`
	// ClientSecret is set only in the answer to a create, once.
	ClientSecret string `json:"clientSecret,omitempty"`
}

func (a *API) appRoutes() {
	apps, ok := a.creds.(Apps)
	if !ok {
		return
	}
	a.handle("GET /api/v1/apps", read, func(w http.ResponseWriter, r *http.Request) error {
		list, err := apps.Apps(r.Context())
		if err != nil {
			return err
		}
		out := make([]appView, 0, len(list))
		for _, ap := range list {
			out = append(out, appView{appFields: viewApp(&ap), Public: ap.Public()})
		}
		return listPage(w, r, out, func(v appView) string { return v.ClientID })
	})
	a.handle("POST /api/v1/apps", write, func(w http.ResponseWriter, r *http.Request) error {
		var in oauth.AppSpec
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		ap, secret, err := apps.CreateApp(r.Context(), in)
		if err != nil {
			return err
		}
		// A confidential app's secret is shown once; only its hash is kept.
		return writeJSON(w, http.StatusCreated, appView{appFields: viewApp(ap), Public: ap.Public(), ClientSecret: secret})
	})
	a.handle("GET /api/v1/apps/{id}", read, func(w http.ResponseWriter, r *http.Request) error {
		ap, err := apps.App(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, appView{appFields: viewApp(ap), Public: ap.Public()})
	})
	a.handle("DELETE /api/v1/apps/{id}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := apps.DeleteApp(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
