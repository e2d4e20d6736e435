package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func (a *API) provisioningRoutes() {
	if a.fleetprov == nil {
		return
	}
	a.handle("GET /api/v1/provisioning-templates", read, a.listTemplates)
	a.handle("POST /api/v1/provisioning-templates", write, a.createTemplate)
	a.handle("GET /api/v1/provisioning-templates/{name}", read, a.getTemplate)
	a.handle("PATCH /api/v1/provisioning-templates/{name}", write, a.updateTemplate)
	a.handle("DELETE /api/v1/provisioning-templates/{name}", write, a.deleteTemplate)
	a.handle("GET /api/v1/provisioning-templates/{name}/versions", read, a.listTemplateVersions)
	a.handle("POST /api/v1/provisioning-templates/{name}/versions", write, a.createTemplateVersion)
	a.handle("DELETE /api/v1/provisioning-templates/{name}/versions/{id}", write, a.deleteTemplateVersion)
	a.handle("POST /api/v1/provisioning-templates/{name}/claim-certificates", write, a.createClaimCertificate)
}

// templateBody accepts a template body as a JSON object or as a string
// holding one (as the AWS CLI passes it).
func templateBody(raw json.RawMessage) ([]byte, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errorf(http.StatusBadRequest, "templateBody: %v", err)
		}
		raw = json.RawMessage(s)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errorf(http.StatusBadRequest, "templateBody must be a provisioning template JSON object")
	}
	return raw, nil
}

type templateView struct {
	*store.ProvisioningTemplate
	Body json.RawMessage `json:"templateBody"`
}

func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	ts, err := a.fleetprov.Templates(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	return list(w, ts, limit, func(t store.ProvisioningTemplate) string { return t.Name })
}

func (a *API) createTemplate(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		fleetprov.NewTemplate
		Body json.RawMessage `json:"templateBody"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	body, err := templateBody(in.Body)
	if err != nil {
		return err
	}
	in.NewTemplate.Body = body
	t, err := a.fleetprov.CreateTemplate(r.Context(), in.NewTemplate)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/provisioning-templates/"+t.Name)
	return writeVersioned(w, http.StatusCreated, t.Version, templateView{t, body})
}

func (a *API) getTemplate(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	t, err := a.fleetprov.Template(r.Context(), name)
	if err != nil {
		return err
	}
	v, err := a.fleetprov.TemplateVersion(r.Context(), name, t.DefaultVersion)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, t.Version, templateView{t, v.Body})
}

func (a *API) updateTemplate(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in fleetprov.TemplatePatch
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	t, err := a.fleetprov.UpdateTemplate(r.Context(), r.PathValue("name"), v, in)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, t.Version, t)
}

func (a *API) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.fleetprov.DeleteTemplate(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listTemplateVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := a.fleetprov.TemplateVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listResponse[store.ProvisioningTemplateVersion]{Items: vs})
}

func (a *API) createTemplateVersion(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Body         json.RawMessage `json:"templateBody"`
		SetAsDefault bool            `json:"setAsDefault"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	body, err := templateBody(in.Body)
	if err != nil {
		return err
	}
	v, err := a.fleetprov.CreateTemplateVersion(r.Context(), r.PathValue("name"), body, in.SetAsDefault)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (a *API) deleteTemplateVersion(w http.ResponseWriter, r *http.Request) error {
	id, err := versionID(r)
	if err != nil {
		return err
	}
	if err := a.fleetprov.DeleteTemplateVersion(r.Context(), r.PathValue("name"), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ClaimCertificateView is a temporary claim certificate, shaped as AWS
// IoT's CreateProvisioningClaim answers.
type ClaimCertificateView struct {
	CertificateID  string            `json:"certificateId"`
	CertificatePEM string            `json:"certificatePem"`
	KeyPair        map[string]string `json:"keyPair"`
	Expiration     time.Time         `json:"expiration"`
}

func (a *API) createClaimCertificate(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		ValiditySeconds int64 `json:"validitySeconds,omitempty"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, a.maxBody, &in); err != nil {
			return err
		}
	}
	if in.ValiditySeconds < 0 || in.ValiditySeconds > 7*24*3600 {
		return errorf(http.StatusBadRequest, "validitySeconds must be between 1 and %d", 7*24*3600)
	}
	is, err := a.fleetprov.ClaimCertificate(r.Context(), r.PathValue("name"), time.Duration(in.ValiditySeconds)*time.Second)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ClaimCertificateView{CertificateID: is.Certificate.Fingerprint, CertificatePEM: is.CertificatePEM,
		KeyPair:    map[string]string{"PublicKey": is.PublicKeyPEM, "PrivateKey": is.PrivateKeyPEM},
		Expiration: is.Certificate.NotAfter})
}
