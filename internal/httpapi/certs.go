package httpapi

import (
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// certRoutes serves the certificate service's administration: the CA,
// registration tokens, device certificates and manufacturer CAs.
func (a *API) certRoutes() {
	if a.certs == nil {
		return
	}
	a.handle("GET /api/v1/ca", read, a.caInfo)
	a.handle("POST /api/v1/ca/import", write, a.importCA)

	a.handle("GET /api/v1/registration-tokens", write, a.listRegistrationTokens)
	a.handle("POST /api/v1/registration-tokens", write, a.createRegistrationToken)
	a.handle("GET /api/v1/registration-tokens/{id}", write, a.getRegistrationToken)
	a.handle("DELETE /api/v1/registration-tokens/{id}", write, a.revokeRegistrationToken)

	a.handle("GET /api/v1/certificates", read, a.listCertificates)
	a.handle("GET /api/v1/certificates/{id}", read, a.getCertificate)
	a.handle("GET /api/v1/certificates/{id}/chain", read, a.certificateChain)
	a.handle("POST /api/v1/certificates/{id}/activate", write, a.activateCertificate)
	a.handle("POST /api/v1/certificates/{id}/deactivate", write, a.deactivateCertificate)
	a.handle("POST /api/v1/certificates/{id}/revoke", write, a.revokeCertificate)
	a.handle("POST /api/v1/certificates/{id}/rotate", write, a.rotateCertificate)

	a.handle("GET /api/v1/manufacturer-cas", read, a.listManufacturerCAs)
	a.handle("POST /api/v1/manufacturer-cas", write, a.addManufacturerCA)
	a.handle("GET /api/v1/manufacturer-cas/{name}", read, a.getManufacturerCA)
	a.handle("PATCH /api/v1/manufacturer-cas/{name}", write, a.updateManufacturerCA)
	a.handle("DELETE /api/v1/manufacturer-cas/{name}", write, a.removeManufacturerCA)
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

// caInfo serves GET /api/v1/ca.
func (a *API) caInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := a.certs.Info(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// importCA serves POST /api/v1/ca/import.
func (a *API) importCA(w http.ResponseWriter, r *http.Request) error {
	var in certs.ImportRequest
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	info, err := a.certs.ImportCA(r.Context(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// listRegistrationTokens serves GET /api/v1/registration-tokens.
func (a *API) listRegistrationTokens(w http.ResponseWriter, r *http.Request) error {
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
}

// createRegistrationToken serves POST /api/v1/registration-tokens.
func (a *API) createRegistrationToken(w http.ResponseWriter, r *http.Request) error {
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
}

// getRegistrationToken serves GET /api/v1/registration-tokens/{id}.
func (a *API) getRegistrationToken(w http.ResponseWriter, r *http.Request) error {
	tok, err := a.certs.RegistrationToken(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, viewToken(tok))
}

// revokeRegistrationToken serves DELETE /api/v1/registration-tokens/{id}.
func (a *API) revokeRegistrationToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.certs.RevokeRegistrationToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listCertificates serves GET /api/v1/certificates.
func (a *API) listCertificates(w http.ResponseWriter, r *http.Request) error {
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
}

// getCertificate serves GET /api/v1/certificates/{id}.
func (a *API) getCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := a.certs.Certificate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, c.Version, c)
}

// activateCertificate serves POST /api/v1/certificates/{id}/activate.
func (a *API) activateCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := a.certs.ActivateCertificate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, c.Version, c)
}

// deactivateCertificate serves POST /api/v1/certificates/{id}/deactivate.
func (a *API) deactivateCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := a.certs.DeactivateCertificate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, c.Version, c)
}

// revokeCertificate serves POST /api/v1/certificates/{id}/revoke.
func (a *API) revokeCertificate(w http.ResponseWriter, r *http.Request) error {
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
}

// rotateCertificate serves POST /api/v1/certificates/{id}/rotate.
func (a *API) rotateCertificate(w http.ResponseWriter, r *http.Request) error {
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
}

// listManufacturerCAs serves GET /api/v1/manufacturer-cas.
func (a *API) listManufacturerCAs(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.certs.ManufacturerCAs(r.Context())
	if err != nil {
		return err
	}
	views := make([]manufacturerCAView, len(ms))
	for i := range ms {
		views[i] = viewManufacturerCA(&ms[i])
	}
	return listPage(w, r, views, func(m manufacturerCAView) string { return m.Name })
}

// manufacturerCAView is a manufacturer CA with its certificate's subject
// and validity, for people choosing or checking one.
type manufacturerCAView struct {
	*store.ManufacturerCA
	Subject   string    `json:"subject,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
}

func viewManufacturerCA(m *store.ManufacturerCA) manufacturerCAView {
	v := manufacturerCAView{ManufacturerCA: m}
	if sum, err := certs.SummarizePEM(m.CertificatePEM); err == nil {
		v.Subject, v.NotBefore, v.NotAfter = sum.Subject, sum.NotBefore, sum.NotAfter
	}
	return v
}

// certificateChain serves GET /api/v1/certificates/{id}/chain: the
// certificate and its issuers, leaf first.
func (a *API) certificateChain(w http.ResponseWriter, r *http.Request) error {
	chain, err := a.certs.CertificateChain(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listResponse[certs.CertSummary]{Items: chain})
}

// addManufacturerCA serves POST /api/v1/manufacturer-cas.
func (a *API) addManufacturerCA(w http.ResponseWriter, r *http.Request) error {
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
}

// getManufacturerCA serves GET /api/v1/manufacturer-cas/{name}.
func (a *API) getManufacturerCA(w http.ResponseWriter, r *http.Request) error {
	m, err := a.certs.ManufacturerCA(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, m.Version, viewManufacturerCA(m))
}

// updateManufacturerCA serves PATCH /api/v1/manufacturer-cas/{name}.
func (a *API) updateManufacturerCA(w http.ResponseWriter, r *http.Request) error {
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
}

// removeManufacturerCA serves DELETE /api/v1/manufacturer-cas/{name}.
func (a *API) removeManufacturerCA(w http.ResponseWriter, r *http.Request) error {
	if err := a.certs.RemoveManufacturerCA(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
