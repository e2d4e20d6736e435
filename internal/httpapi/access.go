package httpapi

import (
	"context"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// accessRoutes serves access requests. Unlike the admin routes they take
// API tokens of any role: a user (a token with role "user" bound to their
// username) requests and cancels, a thing's owners, operators and
// administrators decide. The registry decides who may do what.
func (a *API) accessRoutes() {
	a.handleCaller("POST /api/v1/access-requests", a.createAccessRequest)
	a.handleCaller("GET /api/v1/access-requests", a.listAccessRequests)
	a.handleCaller("GET /api/v1/access-requests/{id}", a.getAccessRequest)
	a.handleCaller("POST /api/v1/access-requests/{id}/approve", a.decideAccessRequest(store.AccessApproved))
	a.handleCaller("POST /api/v1/access-requests/{id}/deny", a.decideAccessRequest(store.AccessDenied))
	a.handleCaller("POST /api/v1/access-requests/{id}/cancel", a.decideAccessRequest(store.AccessCancelled))
}

type callerFunc func(w http.ResponseWriter, r *http.Request, c registry.Caller) error

// handleCaller registers pattern for any authenticated caller (API token
// or console session) and hands the handler its username and roles.
func (a *API) handleCaller(pattern string, h callerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		err := retryRead(w, r, func(w http.ResponseWriter) error {
			ctx, c, err := a.caller(r)
			if err == nil {
				err = h(w, r.WithContext(ctx), c)
			}
			return err
		})
		if err != nil {
			writeError(w, r, a.log, err)
		}
	})
}

// caller identifies r (API token or console session) for the routes the
// registry authorizes itself.
func (a *API) caller(r *http.Request) (context.Context, registry.Caller, error) {
	p, actor, err := a.identify(r)
	if err != nil {
		return nil, registry.Caller{}, err
	}
	return events.WithActor(r.Context(), actor), registry.Caller{Username: p.username, Roles: p.roles}, nil
}

func (a *API) createAccessRequest(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
	var in registry.NewAccessRequest
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	ar, err := a.reg.RequestAccess(r.Context(), c, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/access-requests/"+ar.ID)
	return writeVersioned(w, http.StatusCreated, ar.Version, ar)
}

func (a *API) listAccessRequests(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AccessRequestFilter{After: after, Limit: limit, State: q.Get("state"), Thing: q.Get("thing"), Requester: q.Get("requester")}
	reqs, err := a.reg.AccessRequests(r.Context(), c, f)
	if err != nil {
		return err
	}
	return list(w, reqs, limit, func(ar store.AccessRequest) string { return ar.ID })
}

func (a *API) getAccessRequest(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
	ar, err := a.reg.AccessRequest(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, ar.Version, ar)
}

func (a *API) decideAccessRequest(state string) callerFunc {
	return func(w http.ResponseWriter, r *http.Request, c registry.Caller) error {
		v, err := ifMatch(r)
		if err != nil {
			return err
		}
		var d registry.Decision
		if r.ContentLength != 0 {
			if err := decode(w, r, a.maxBody, &d); err != nil {
				return err
			}
		}
		var ar *store.AccessRequest
		switch state {
		case store.AccessApproved:
			ar, err = a.reg.ApproveAccessRequest(r.Context(), c, r.PathValue("id"), v, d)
		case store.AccessDenied:
			ar, err = a.reg.DenyAccessRequest(r.Context(), c, r.PathValue("id"), v, d)
		default:
			if d != (registry.Decision{}) {
				return errorf(http.StatusBadRequest, "cancel takes no body")
			}
			ar, err = a.reg.CancelAccessRequest(r.Context(), c, r.PathValue("id"), v)
		}
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, ar.Version, ar)
	}
}
