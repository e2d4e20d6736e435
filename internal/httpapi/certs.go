package httpapi

import (
	"net/http"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// certRoutes serves the certificate service's administration: the CA,
// registration tokens, device certificates and manufacturer CAs.
func (a *API) certRoutes() {
	if a.certs == nil {
		return
	}
	a.handle("GET /api/v1/ca", read, func(w http.ResponseWriter, r *http.Request) error {
		info, err := a.certs.Info(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, info)
	})
	a.handle("POST /api/v1/ca/import", write, func(w http.ResponseWriter, r *http.Request) error {
		var in certs.ImportRequest
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		info, err := a.certs.ImportCA(r.Context(), in)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, info)
	})

	a.handle("GET /api/v1/registration-tokens", write, func(w http.ResponseWriter, r *http.Request) error {
		after, limit, err := page(r)
		if err != nil {
			return err
		}
		toks, err := a.certs.RegistrationTokens(r.Context(), store.Page{After: after, Limit: limit})
		if err != nil {
			return err
		}
		views := make([]tokenView, len(toks))
		for i, t := range toks {
			views[i] = viewToken(&t)
		}
		return list(w, views, limit, func(t tokenView) string { return t.ID })
	})
	a.handle("POST /api/v1/registration-tokens", write, func(w http.ResponseWriter, r *http.Request) error {
		var in certs.NewRegistrationToken
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		secret, tok, err := a.certs.CreateRegistrationToken(r.Context(), in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/api/v1/registration-tokens/"+tok.ID)
		return writeJSON(w, http.StatusCreated, struct {
			tokenView
			Token string `json:"token"`
		}{viewToken(tok), secret})
	})
	a.handle("GET /api/v1/registration-tokens/{id}", write, func(w http.ResponseWriter, r *http.Request) error {
		tok, err := a.certs.RegistrationToken(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, viewToken(tok))
	})
	a.handle("DELETE /api/v1/registration-tokens/{id}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.certs.RevokeRegistrationToken(r.Context(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})

	a.handle("GET /api/v1/certificates", read, func(w http.ResponseWriter, r *http.Request) error {
		after, limit, err := page(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		cs, err := a.certs.Certificates(r.Context(), store.CertificateFilter{Page: store.Page{After: after, Limit: limit},
			ThingName: q.Get("thingName"), CA: q.Get("ca"), Status: q.Get("status")})
		if err != nil {
			return err
		}
		return list(w, cs, limit, func(c store.Certificate) string { return c.Fingerprint })
	})
	a.handle("GET /api/v1/certificates/{id}", read, func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.certs.Certificate(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, c.Version, c)
	})
	a.handle("POST /api/v1/certificates/{id}/activate", write, func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.certs.ActivateCertificate(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, c.Version, c)
	})
	a.handle("POST /api/v1/certificates/{id}/deactivate", write, func(w http.ResponseWriter, r *http.Request) error {
		c, err := a.certs.DeactivateCertificate(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, c.Version, c)
	})
	a.handle("POST /api/v1/certificates/{id}/revoke", write, func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Reason int `json:"reason"`
		}
		if r.ContentLength != 0 {
			if err := decode(w, r, a.maxBody, &in); err != nil {
				return err
			}
		}
		c, err := a.certs.RevokeCertificate(r.Context(), r.PathValue("id"), in.Reason)
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, c.Version, c)
	})
	a.handle("POST /api/v1/certificates/{id}/rotate", write, func(w http.ResponseWriter, r *http.Request) error {
		var in certs.RotateRequest
		if r.ContentLength != 0 {
			if err := decode(w, r, a.maxBody, &in); err != nil {
				return err
			}
		}
		issued, err := a.certs.RotateCertificate(r.Context(), r.PathValue("id"), in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/api/v1/certificates/"+issued.Certificate.Fingerprint)
		return writeJSON(w, http.StatusCreated, struct {
			*store.Certificate
			PublicKeyPEM  string `json:"publicKeyPem"`
			PrivateKeyPEM string `json:"privateKeyPem,omitempty"`
		}{issued.Certificate, issued.PublicKeyPEM, issued.PrivateKeyPEM})
	})

	a.handle("GET /api/v1/manufacturer-cas", read, func(w http.ResponseWriter, r *http.Request) error {
		ms, err := a.certs.ManufacturerCAs(r.Context())
		if err != nil {
			return err
		}
		return listPage(w, r, ms, func(m store.ManufacturerCA) string { return m.Name })
	})
	a.handle("POST /api/v1/manufacturer-cas", write, func(w http.ResponseWriter, r *http.Request) error {
		var in certs.NewManufacturerCA
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
		m, err := a.certs.AddManufacturerCA(r.Context(), in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/api/v1/manufacturer-cas/"+m.Name)
		return writeVersioned(w, http.StatusCreated, m.Version, m)
	})
	a.handle("GET /api/v1/manufacturer-cas/{name}", read, func(w http.ResponseWriter, r *http.Request) error {
		m, err := a.certs.ManufacturerCA(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, m.Version, m)
	})
	a.handle("PATCH /api/v1/manufacturer-cas/{name}", write, func(w http.ResponseWriter, r *http.Request) error {
		v, err := ifMatch(r)
		if err != nil {
			return err
		}
		var p certs.ManufacturerCAPatch
		if err := decode(w, r, a.maxBody, &p); err != nil {
			return err
		}
		m, err := a.certs.UpdateManufacturerCA(r.Context(), r.PathValue("name"), v, p)
		if err != nil {
			return err
		}
		return writeVersioned(w, http.StatusOK, m.Version, m)
	})
	a.handle("DELETE /api/v1/manufacturer-cas/{name}", write, func(w http.ResponseWriter, r *http.Request) error {
		if err := a.certs.RemoveManufacturerCA(r.Context(), r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// tokenView is a registration token as the API shows it: the maxUses of
// an unlimited token (stored as 0) reads "unlimited".
type tokenView struct {
	store.RegistrationToken
	MaxUses any `json:"maxUses"`
}

func viewToken(t *store.RegistrationToken) tokenView {
	v := tokenView{RegistrationToken: *t, MaxUses: t.MaxUses}
	if t.MaxUses == 0 {
		v.MaxUses = "unlimited"
	}
	return v
}
