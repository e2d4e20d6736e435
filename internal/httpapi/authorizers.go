package httpapi

import (
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func (a *API) authorizerRoutes() {
	a.handle("GET /api/v1/authorizers", read, func(w http.ResponseWriter, r *http.Request) error {
		as, err := a.reg.Authorizers(r.Context())
		if err != nil {
			return err
		}
		return listPage(w, r, as, func(a store.Authorizer) string { return a.Name })
	})
	a.handle("POST /api/v1/authorizers", write, func(w http.ResponseWriter, r *http.Request) error {
		var in registry.AuthorizerSpec
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		au, err := a.reg.CreateAuthorizer(r.Context(), in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/api/v1/authorizers/"+au.Name)
		return writeVersioned(w, http.StatusCreated, au.Version, au)
	})
	a.handle("GET /api/v1/authorizers/{name}", read, func(w http.ResponseWriter, r *http.Request) error {
		au, err := a.reg.Authorizer(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, au.Version, au)
	})
	a.handle("PATCH /api/v1/authorizers/{name}", write, func(w http.ResponseWriter, r *http.Request) error {
		v, err := ifMatch(r)
		if err != nil {
			return err
		}
		var p registry.AuthorizerPatch
		if err := decode(w, r, a.maxBody, &p); err != nil {
			return err
		}
		au, err := a.reg.UpdateAuthorizer(r.Context(), r.PathValue("name"), v, p)
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, au.Version, au)
	})
	a.handle("DELETE /api/v1/authorizers/{name}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.reg.DeleteAuthorizer(r.Context(), r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
