package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
)

// Credentials is what the admin API needs of the OAuth server to manage
// things' client credentials and signing keys; *oauth.Server is one.
type Credentials interface {
	SetThingSecret(ctx context.Context, thing string) (string, error)
	RemoveThingSecret(ctx context.Context, thing string) error
	AddThingKey(ctx context.Context, thing string, jwk []byte) (string, error)
	RemoveThingKey(ctx context.Context, thing, kid string) error
	ListThingKeys(ctx context.Context, thing string) ([]oauth.ThingKey, error)
	RotateKeys(ctx context.Context) error
	RevokeAccessToken(ctx context.Context, raw string) error
}

func (a *API) credentialRoutes() {
	if a.creds == nil {
		return
	}
	a.handle("POST /api/v1/things/{name}/secret", write, func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		secret, err := a.creds.SetThingSecret(r.Context(), name)
		if err != nil {
			return err
		}
		// The secret is shown once; Gatehouse keeps only its hash.
		return writeJSON(w, http.StatusCreated, map[string]string{"clientId": name, "clientSecret": secret})
	})
	a.handle("DELETE /api/v1/things/{name}/secret", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.creds.RemoveThingSecret(r.Context(), r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	a.handle("GET /api/v1/things/{name}/keys", read, func(w http.ResponseWriter, r *http.Request) error {
		keys, err := a.creds.ListThingKeys(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		if keys == nil {
			keys = []oauth.ThingKey{}
		}
		return writeJSON(w, http.StatusOK, listResponse[oauth.ThingKey]{Items: keys})
	})
	a.handle("POST /api/v1/things/{name}/keys", write, func(w http.ResponseWriter, r *http.Request) error {
		var jwk json.RawMessage
		if err := decode(w, r, a.maxBody, &jwk); err != nil {
			return err
		}
		if len(jwk) == 0 || jwk[0] != '{' {
			return errorf(http.StatusBadRequest, "the body must be a public JWK object")
		}
		kid, err := a.creds.AddThingKey(r.Context(), r.PathValue("name"), jwk)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, map[string]string{"kid": kid})
	})
	a.handle("DELETE /api/v1/things/{name}/keys/{kid}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.creds.RemoveThingKey(r.Context(), r.PathValue("name"), r.PathValue("kid")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	a.handle("POST /api/v1/oauth/rotate-keys", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.creds.RotateKeys(r.Context()); err != nil {
			if errors.Is(err, oauth.ErrRotationUnsupported) {
				return errorf(http.StatusConflict, "%v", err)
			}
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	a.handle("POST /api/v1/oauth/revoke", write, func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Token string `json:"token"`
		}
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		if err := a.creds.RevokeAccessToken(r.Context(), in.Token); err != nil {
			if errors.Is(err, oauth.ErrInvalidToken) {
				return errorf(http.StatusBadRequest, "not a valid access token of this server")
			}
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
