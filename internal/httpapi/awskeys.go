package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// AWSKeys manages the AWS Signature V4 access keys of the AWS-IoT-compatible
// registry API; *awsiot.Keys is one.
type AWSKeys interface {
	Create(ctx context.Context, name string, roles []string) (*store.AWSAccessKey, string, error)
	List(ctx context.Context) ([]store.AWSAccessKey, error)
	Revoke(ctx context.Context, id string) error
}

// AWSKeysHandler serves /api/v1/aws-keys (administrators only) with the
// API's authentication and error format. It is mounted beside the API, at
// "/api/v1/aws-keys" and "/api/v1/aws-keys/".
func AWSKeysHandler(reg *registry.Service, keys AWSKeys, log *slog.Logger, maxBody int64) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if maxBody == 0 {
		maxBody = 1 << 20
	}
	a := &API{reg: reg, log: log, maxBody: maxBody, mux: http.NewServeMux()}
	a.awsKeyRoutes(keys)
	a.mux.HandleFunc("/api/v1/aws-keys/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, a.log, errorf(http.StatusNotFound, "no API route %s %s", r.Method, r.URL.Path))
	})
	return a
}

func (a *API) awsKeyRoutes(keys AWSKeys) {
	a.handle("GET /api/v1/aws-keys", write, func(w http.ResponseWriter, r *http.Request) error {
		list, err := keys.List(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, listResponse[store.AWSAccessKey]{Items: list})
	})
	a.handle("POST /api/v1/aws-keys", write, func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Name  string   `json:"name"`
			Roles []string `json:"roles,omitempty"`
		}
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		key, secret, err := keys.Create(r.Context(), in.Name, in.Roles)
		if err != nil {
			return err
		}
		// The secret is shown once.
		return writeJSON(w, http.StatusCreated, struct {
			*store.AWSAccessKey
			SecretAccessKey string `json:"secretAccessKey"`
		}{key, secret})
	})
	a.handle("DELETE /api/v1/aws-keys/{id}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := keys.Revoke(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
