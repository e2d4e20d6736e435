package httpapi

import (
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// claimer may claim lobby devices: operators and admins.
const claimer = registry.RoleOperator

// lobbyRoutes serves the device lobby: the ledger, claims and targets.
func (a *API) lobbyRoutes() {
	if a.lobby == nil {
		return
	}
	a.handle("GET /api/v1/lobby/devices", read, a.listLobbyDevices)
	a.handle("GET /api/v1/lobby/devices/{device}", read, a.getLobbyDevice)
	claim := func(fn func(*http.Request, lobby.ClaimRequest) (*store.LobbyDevice, error)) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			var in lobby.ClaimRequest
			if err := decode(w, r, a.maxBody, &in); err != nil {
				return err
			}
			d, err := fn(r, in)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, viewLobbyDevice(d))
		}
	}
	// A claim of a device not seen yet is a pre-claim; the service decides.
	// Operators may claim (console contract): claiming is their daily work.
	a.handle("POST /api/v1/lobby/claims", claimer, claim(func(r *http.Request, in lobby.ClaimRequest) (*store.LobbyDevice, error) {
		return a.lobby.Claim(r.Context(), in)
	}))
	a.handle("POST /api/v1/lobby/preclaims", claimer, claim(func(r *http.Request, in lobby.ClaimRequest) (*store.LobbyDevice, error) {
		return a.lobby.PreClaim(r.Context(), in)
	}))
	a.handle("POST /api/v1/lobby/devices/{device}/reroute", write, claim(func(r *http.Request, in lobby.ClaimRequest) (*store.LobbyDevice, error) {
		in.Device = r.PathValue("device")
		return a.lobby.Reroute(r.Context(), in)
	}))
	withReason := func(fn func(r *http.Request, device, reason string) (*store.LobbyDevice, error)) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			var in struct {
				Reason string `json:"reason,omitempty"`
			}
			if r.ContentLength != 0 {
				if err := decode(w, r, a.maxBody, &in); err != nil {
					return err
				}
			}
			d, err := fn(r, r.PathValue("device"), in.Reason)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, viewLobbyDevice(d))
		}
	}
	a.handle("POST /api/v1/lobby/devices/{device}/reject", write, withReason(func(r *http.Request, dev, reason string) (*store.LobbyDevice, error) {
		return a.lobby.Reject(r.Context(), dev, reason)
	}))
	a.handle("POST /api/v1/lobby/devices/{device}/decommission", write, withReason(func(r *http.Request, dev, reason string) (*store.LobbyDevice, error) {
		return a.lobby.Decommission(r.Context(), dev, reason)
	}))
	a.handle("POST /api/v1/lobby/devices/{device}/factory-reset", write, withReason(func(r *http.Request, dev, reason string) (*store.LobbyDevice, error) {
		return a.lobby.FactoryResetReason(r.Context(), dev, reason)
	}))
	a.handle("GET /api/v1/lobby/devices/{device}/qr.png", read, a.lobbyDeviceQR)

	a.handle("GET /api/v1/lobby/targets", read, a.listLobbyTargets)
	a.handle("POST /api/v1/lobby/targets", write, a.createLobbyTarget)
	a.handle("GET /api/v1/lobby/targets/{name}", read, a.getLobbyTarget)
	a.handle("PUT /api/v1/lobby/targets/{name}", write, a.putLobbyTarget)
	a.handle("DELETE /api/v1/lobby/targets/{name}", write, a.deleteLobbyTarget)
}

// listLobbyDevices serves GET /api/v1/lobby/devices.
func (a *API) listLobbyDevices(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	devs, err := a.lobby.List(r.Context(), store.LobbyFilter{Page: store.Page{After: after, Limit: limit}, State: q.Get("state"), Target: q.Get("target")})
	if err != nil {
		return err
	}
	return list(w, viewAll(devs, viewLobbyDevice), limit, func(d lobbyDeviceView) string { return d.Fingerprint })
}

// getLobbyDevice serves GET /api/v1/lobby/devices/{device}.
func (a *API) getLobbyDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := a.lobby.Get(r.Context(), r.PathValue("device"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		lobbyDeviceView
		History []store.LobbyTransition `json:"history,omitempty"`
	}{viewLobbyDevice(&d.LobbyDevice), d.History})
}

// lobbyDeviceQR serves GET /api/v1/lobby/devices/{device}/qr.png.
func (a *API) lobbyDeviceQR(w http.ResponseWriter, r *http.Request) error {
	fp, err := lobby.ParseQR(r.PathValue("device"))
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	png, err := lobby.QRPNG(fp)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/png")
	_, err = w.Write(png)
	return err
}

// listLobbyTargets serves GET /api/v1/lobby/targets.
func (a *API) listLobbyTargets(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	ts, err := a.lobby.Targets(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	return list(w, viewAll(ts, viewLobbyTarget), limit, func(t lobbyTargetView) string { return t.Name })
}

// createLobbyTarget serves POST /api/v1/lobby/targets.
func (a *API) createLobbyTarget(w http.ResponseWriter, r *http.Request) error {
	var in store.LobbyTarget
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	t, err := a.lobby.CreateTarget(r.Context(), in)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusCreated, t.Version, viewLobbyTarget(t))
}

// getLobbyTarget serves GET /api/v1/lobby/targets/{name}.
func (a *API) getLobbyTarget(w http.ResponseWriter, r *http.Request) error {
	t, err := a.lobby.Target(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, t.Version, viewLobbyTarget(t))
}

// putLobbyTarget serves PUT /api/v1/lobby/targets/{name}.
func (a *API) putLobbyTarget(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in store.LobbyTarget
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	t, err := a.lobby.UpdateTarget(r.Context(), r.PathValue("name"), v, in)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, t.Version, viewLobbyTarget(t))
}

// deleteLobbyTarget serves DELETE /api/v1/lobby/targets/{name}.
func (a *API) deleteLobbyTarget(w http.ResponseWriter, r *http.Request) error {
	if err := a.lobby.DeleteTarget(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
