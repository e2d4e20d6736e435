package awsiot

import (
	"net/http"
	"strconv"

	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// provisioningRoutes serves the fleet provisioning template operations of
// the AWS CLI and SDKs (create-provisioning-template and friends,
// create-provisioning-claim). The provisioning role ARN and tags are
// accepted and ignored (Gatehouse needs no role to provision); a
// pre-provisioning hook's targetArn is the https URL Gatehouse calls where
// AWS IoT calls a Lambda.
func (h *Handler) provisioningRoutes() {
	h.route("POST /provisioning-templates", true, h.createProvisioningTemplate)
	h.route("GET /provisioning-templates", false, h.listProvisioningTemplates)
	h.route("GET /provisioning-templates/{templateName}", false, h.describeProvisioningTemplate)
	h.route("PATCH /provisioning-templates/{templateName}", true, h.updateProvisioningTemplate)
	h.route("DELETE /provisioning-templates/{templateName}", true, h.deleteProvisioningTemplate)
	h.route("POST /provisioning-templates/{templateName}/versions", true, h.createProvisioningTemplateVersion)
	h.route("GET /provisioning-templates/{templateName}/versions", false, h.listProvisioningTemplateVersions)
	h.route("GET /provisioning-templates/{templateName}/versions/{versionId}", false, h.describeProvisioningTemplateVersion)
	h.route("DELETE /provisioning-templates/{templateName}/versions/{versionId}", true, h.deleteProvisioningTemplateVersion)
	h.route("POST /provisioning-templates/{templateName}/provisioning-claim", true, h.createProvisioningClaim)
}

// needFleetProv refuses template operations on a handler built without
// the fleet provisioning service.
func (h *Handler) needFleetProv() error {
	if h.cfg.FleetProv == nil {
		return &apiError{status: http.StatusNotImplemented, typ: "InvalidRequestException", msg: "fleet provisioning is not served here"}
	}
	return nil
}

type provisioningHook struct {
	TargetArn      string `json:"targetArn"`
	PayloadVersion string `json:"payloadVersion,omitempty"`
}

func (h *Handler) templateArn(name string) string { return h.arn("provisioningtemplate", name) }

func hookView(url string) *provisioningHook {
	if url == "" {
		return nil
	}
	return &provisioningHook{TargetArn: url, PayloadVersion: "2020-04-01"}
}

func (h *Handler) createProvisioningTemplate(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	var in struct {
		TemplateName        string            `json:"templateName"`
		Description         string            `json:"description"`
		TemplateBody        string            `json:"templateBody"`
		Enabled             bool              `json:"enabled"`
		ProvisioningRoleArn string            `json:"provisioningRoleArn"`
		PreProvisioningHook *provisioningHook `json:"preProvisioningHook"`
		Tags                []map[string]any  `json:"tags"`
		Type                string            `json:"type"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if in.Type != "" && in.Type != "FLEET_PROVISIONING" {
		return invalid("type %q: only FLEET_PROVISIONING templates are served", in.Type)
	}
	nt := fleetprov.NewTemplate{Name: in.TemplateName, Description: in.Description, Body: []byte(in.TemplateBody), Enabled: in.Enabled}
	if in.PreProvisioningHook != nil {
		nt.PreProvisioningHook = in.PreProvisioningHook.TargetArn
	}
	t, err := h.cfg.FleetProv.CreateTemplate(r.Context(), nt)
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"templateArn": h.templateArn(t.Name), "templateName": t.Name, "defaultVersionId": t.DefaultVersion})
}

func (h *Handler) listProvisioningTemplates(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	limit, err := maxResults(r, 100)
	if err != nil {
		return err
	}
	after, err := nextToken(r)
	if err != nil {
		return err
	}
	ts, err := h.cfg.FleetProv.Templates(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	out := map[string]any{}
	items := make([]map[string]any, 0, len(ts))
	for _, t := range ts {
		items = append(items, map[string]any{"templateArn": h.templateArn(t.Name), "templateName": t.Name, "description": t.Description,
			"creationDate": epoch(t.CreatedAt), "lastModifiedDate": epoch(t.UpdatedAt), "enabled": t.Enabled, "type": "FLEET_PROVISIONING"})
	}
	out["templates"] = items
	if len(ts) == limit {
		out["nextToken"] = encodeToken(ts[len(ts)-1].Name)
	}
	return writeOK(w, out)
}

func (h *Handler) describeProvisioningTemplate(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	name := r.PathValue("templateName")
	t, err := h.cfg.FleetProv.Template(r.Context(), name)
	if err != nil {
		return err
	}
	v, err := h.cfg.FleetProv.TemplateVersion(r.Context(), name, t.DefaultVersion)
	if err != nil {
		return err
	}
	out := map[string]any{"templateArn": h.templateArn(t.Name), "templateName": t.Name, "description": t.Description,
		"creationDate": epoch(t.CreatedAt), "lastModifiedDate": epoch(t.UpdatedAt), "defaultVersionId": t.DefaultVersion,
		"templateBody": string(v.Body), "enabled": t.Enabled, "type": "FLEET_PROVISIONING"}
	if hk := hookView(t.PreProvisioningHook); hk != nil {
		out["preProvisioningHook"] = hk
	}
	return writeOK(w, out)
}

func (h *Handler) updateProvisioningTemplate(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	var in struct {
		Description               *string           `json:"description"`
		Enabled                   *bool             `json:"enabled"`
		DefaultVersionID          *int64            `json:"defaultVersionId"`
		ProvisioningRoleArn       string            `json:"provisioningRoleArn"`
		PreProvisioningHook       *provisioningHook `json:"preProvisioningHook"`
		RemovePreProvisioningHook bool              `json:"removePreProvisioningHook"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	p := fleetprov.TemplatePatch{Description: in.Description, Enabled: in.Enabled, DefaultVersion: in.DefaultVersionID}
	switch {
	case in.RemovePreProvisioningHook && in.PreProvisioningHook != nil:
		return invalid("give preProvisioningHook or removePreProvisioningHook, not both")
	case in.RemovePreProvisioningHook:
		p.PreProvisioningHook = new(string)
	case in.PreProvisioningHook != nil:
		p.PreProvisioningHook = &in.PreProvisioningHook.TargetArn
	}
	if _, err := h.cfg.FleetProv.UpdateTemplate(r.Context(), r.PathValue("templateName"), 0, p); err != nil {
		return err
	}
	return writeOK(w, map[string]any{})
}

func (h *Handler) deleteProvisioningTemplate(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	if err := h.cfg.FleetProv.DeleteTemplate(r.Context(), r.PathValue("templateName"), 0); err != nil {
		return err
	}
	return writeOK(w, map[string]any{})
}

func (h *Handler) createProvisioningTemplateVersion(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	var in struct {
		TemplateBody string `json:"templateBody"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	setDefault, err := boolQuery(r, "setAsDefault")
	if err != nil {
		return err
	}
	name := r.PathValue("templateName")
	v, err := h.cfg.FleetProv.CreateTemplateVersion(r.Context(), name, []byte(in.TemplateBody), setDefault)
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"templateArn": h.templateArn(name), "templateName": name, "versionId": v.VersionID, "isDefaultVersion": v.IsDefault})
}

func (h *Handler) listProvisioningTemplateVersions(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	vs, err := h.cfg.FleetProv.TemplateVersions(r.Context(), r.PathValue("templateName"))
	if err != nil {
		return err
	}
	items := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		items = append(items, map[string]any{"versionId": v.VersionID, "creationDate": epoch(v.CreatedAt), "isDefaultVersion": v.IsDefault})
	}
	return writeOK(w, map[string]any{"versions": items})
}

func templateVersionID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("versionId"), 10, 64)
	if err != nil || id < 1 {
		return 0, invalid("versionId %q is not a positive integer", r.PathValue("versionId"))
	}
	return id, nil
}

func (h *Handler) describeProvisioningTemplateVersion(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	id, err := templateVersionID(r)
	if err != nil {
		return err
	}
	v, err := h.cfg.FleetProv.TemplateVersion(r.Context(), r.PathValue("templateName"), id)
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"versionId": v.VersionID, "creationDate": epoch(v.CreatedAt), "templateBody": string(v.Body), "isDefaultVersion": v.IsDefault})
}

func (h *Handler) deleteProvisioningTemplateVersion(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	id, err := templateVersionID(r)
	if err != nil {
		return err
	}
	if err := h.cfg.FleetProv.DeleteTemplateVersion(r.Context(), r.PathValue("templateName"), id); err != nil {
		return err
	}
	return writeOK(w, map[string]any{})
}

// createProvisioningClaim mints a temporary claim certificate (the
// trusted-user flow): valid five minutes, as AWS IoT's.
func (h *Handler) createProvisioningClaim(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needFleetProv(); err != nil {
		return err
	}
	if err := decodeBody(body, &struct{}{}); err != nil {
		return err
	}
	is, err := h.cfg.FleetProv.ClaimCertificate(r.Context(), r.PathValue("templateName"), 0)
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"certificateId": is.Certificate.Fingerprint, "certificatePem": is.CertificatePEM,
		"keyPair":    map[string]string{"PublicKey": is.PublicKeyPEM, "PrivateKey": is.PrivateKeyPEM},
		"expiration": epoch(is.Certificate.NotAfter)})
}
