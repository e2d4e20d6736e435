package httpapi

import (
	"context"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// AWSKeys manages the AWS Signature V4 access keys of the AWS-IoT-compatible
// registry API; *awsiot.Keys is one.
type AWSKeys interface {
	Create(ctx context.Context, name string, roles []string) (*store.AWSAccessKey, string, error)
	List(ctx context.Context) ([]store.AWSAccessKey, error)
	Revoke(ctx context.Context, id string) error
}

func (a *API) awsKeyRoutes(keys AWSKeys) {
	a.handle("GET /api/v1/aws-keys", write, func(w http.ResponseWriter, r *http.Request) error {
		list, err := keys.List(r.Context())
		if err != nil {
			return err
		}
		return listPage(w, r, viewAll(list, viewAWSKey), func(k awsKeyView) string { return k.ID })
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
			awsKeyView
			SecretAccessKey string `json:"secretAccessKey"`
		}{viewAWSKey(key), secret})
	})
	a.handle("DELETE /api/v1/aws-keys/{id}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := keys.Revoke(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
