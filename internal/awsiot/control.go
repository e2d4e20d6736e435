package awsiot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// controlRoutes registers the control-plane operations the AWS CLI scripts
// of AWS IoT and ForgeRock integrations call: custom authorizers, policies,
// certificates and their things, CA registration and the data endpoint.
// Each maps onto Gatehouse's own service; what Gatehouse cannot honour is
// refused with InvalidRequestException rather than ignored.
func (h *Handler) controlRoutes() {
	h.route("POST /authorizer/{authorizerName}", true, h.createAuthorizer)
	h.route("GET /authorizer/{authorizerName}", false, h.describeAuthorizer)
	h.route("PUT /authorizer/{authorizerName}", true, h.updateAuthorizer)
	h.route("GET /authorizers/{$}", false, h.listAuthorizers)
	h.route("POST /default-authorizer", true, h.setDefaultAuthorizer)
	h.route("POST /authorizer/{authorizerName}/test", false, h.testInvokeAuthorizer)

	h.route("POST /policies/{policyName}", true, h.createPolicy)
	h.route("GET /policies/{policyName}", false, h.getPolicy)
	h.route("POST /policies/{policyName}/version", true, h.createPolicyVersion)
	h.route("PUT /target-policies/{policyName}", true, h.attachPolicy)
	h.route("POST /target-policies/{policyName}", true, h.detachPolicy)
	h.route("POST /attached-policies/{target}", false, h.listAttachedPolicies)

	h.route("POST /keys-and-certificate", true, h.createKeysAndCertificate)
	h.route("POST /certificates", true, h.createCertificateFromCSR)
	h.route("GET /certificates/{certificateId}", false, h.describeCertificate)
	h.route("PUT /certificates/{certificateId}", true, h.updateCertificate)
	h.route("PUT /things/{thingName}/principals", true, h.attachThingPrincipal)
	h.route("GET /things/{thingName}/principals", false, h.listThingPrincipals)
	h.route("POST /cacertificate", true, h.registerCACertificate)
	h.route("GET /endpoint", false, h.describeEndpoint)
}

// needCerts refuses certificate operations on a handler built without the
// certificate service.
func (h *Handler) needCerts() error {
	if h.cfg.Certs == nil {
		return &apiError{status: http.StatusNotImplemented, typ: "InvalidRequestException", msg: "certificates are not served here"}
	}
	return nil
}

func epoch(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

// boolQuery reads an optional true/false query parameter.
func boolQuery(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, invalid("%s %q: want true or false", name, s)
	}
	return b, nil
}

// ---- authorizers ----

type authorizerDescription struct {
	AuthorizerName         string            `json:"authorizerName"`
	AuthorizerArn          string            `json:"authorizerArn"`
	TokenKeyName           string            `json:"tokenKeyName"`
	TokenSigningPublicKeys map[string]string `json:"tokenSigningPublicKeys"`
	Status                 string            `json:"status"`
	SigningDisabled        bool              `json:"signingDisabled"`
	CreationDate           float64           `json:"creationDate"`
	LastModifiedDate       float64           `json:"lastModifiedDate"`
}

func (h *Handler) authorizerDescription(a *store.Authorizer) authorizerDescription {
	return authorizerDescription{AuthorizerName: a.Name, AuthorizerArn: h.arn("authorizer", a.Name), TokenKeyName: a.TokenKeyName,
		TokenSigningPublicKeys: nonNilMap(a.PublicKeys), Status: a.Status, SigningDisabled: a.SigningDisabled,
		CreationDate: epoch(a.CreatedAt), LastModifiedDate: epoch(a.UpdatedAt)}
}

// authorizerInput is CreateAuthorizer's and UpdateAuthorizer's body. The
// Lambda function ARN is accepted and not kept: Gatehouse verifies the
// token itself (it must be an access token Gatehouse accepts).
type authorizerInput struct {
	AuthorizerFunctionArn  string             `json:"authorizerFunctionArn"`
	TokenKeyName           *string            `json:"tokenKeyName"`
	TokenSigningPublicKeys *map[string]string `json:"tokenSigningPublicKeys"`
	Status                 *string            `json:"status"`
	SigningDisabled        *bool              `json:"signingDisabled"`
	EnableCachingForHTTP   *bool              `json:"enableCachingForHttp"`
	Tags                   json.RawMessage    `json:"tags"`
}

func (h *Handler) createAuthorizer(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in authorizerInput
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	spec := registry.AuthorizerSpec{Name: r.PathValue("authorizerName")}
	if in.TokenKeyName != nil {
		spec.TokenKeyName = *in.TokenKeyName
	}
	if in.TokenSigningPublicKeys != nil {
		spec.PublicKeys = *in.TokenSigningPublicKeys
	}
	if in.Status != nil {
		spec.Status = *in.Status
	}
	if in.SigningDisabled != nil {
		spec.SigningDisabled = *in.SigningDisabled
	}
	a, err := h.cfg.Registry.CreateAuthorizer(r.Context(), spec)
	if errors.Is(err, store.ErrExists) {
		return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: fmt.Sprintf("authorizer %s already exists", spec.Name), err: err}
	}
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"authorizerName": a.Name, "authorizerArn": h.arn("authorizer", a.Name)})
}

func (h *Handler) describeAuthorizer(w http.ResponseWriter, r *http.Request, _ []byte) error {
	a, err := h.cfg.Registry.Authorizer(r.Context(), r.PathValue("authorizerName"))
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"authorizerDescription": h.authorizerDescription(a)})
}

func (h *Handler) updateAuthorizer(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in authorizerInput
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	a, err := h.cfg.Registry.UpdateAuthorizer(r.Context(), r.PathValue("authorizerName"), 0, registry.AuthorizerPatch{
		TokenKeyName: in.TokenKeyName, PublicKeys: in.TokenSigningPublicKeys, Status: in.Status, SigningDisabled: in.SigningDisabled})
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"authorizerName": a.Name, "authorizerArn": h.arn("authorizer", a.Name)})
}

func (h *Handler) listAuthorizers(w http.ResponseWriter, r *http.Request, _ []byte) error {
	status := r.URL.Query().Get("status")
	if status != "" && status != store.AuthorizerActive && status != store.AuthorizerInactive {
		return invalid("status %q: want ACTIVE or INACTIVE", status)
	}
	desc := false
	if s := r.URL.Query().Get("isAscendingOrder"); s != "" {
		asc, err := strconv.ParseBool(s)
		if err != nil {
			return invalid("isAscendingOrder %q: want true or false", s)
		}
		desc = !asc
	}
	all, err := h.cfg.Registry.Authorizers(r.Context())
	if err != nil {
		return err
	}
	type summary struct {
		AuthorizerName string `json:"authorizerName"`
		AuthorizerArn  string `json:"authorizerArn"`
	}
	out := []summary{}
	for _, a := range all {
		if status == "" || a.Status == status {
			out = append(out, summary{a.Name, h.arn("authorizer", a.Name)})
		}
	}
	if desc {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	// Authorizers are few (one per integration): one page holds them all.
	return writeOK(w, map[string]any{"authorizers": out})
}

func (h *Handler) setDefaultAuthorizer(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		AuthorizerName string `json:"authorizerName"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if in.AuthorizerName == "" {
		return invalid("authorizerName is required")
	}
	yes := true
	a, err := h.cfg.Registry.UpdateAuthorizer(r.Context(), in.AuthorizerName, 0, registry.AuthorizerPatch{Default: &yes})
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"authorizerName": a.Name, "authorizerArn": h.arn("authorizer", a.Name)})
}

// testInvokeAuthorizer runs the authorizer as a connection would: the
// signature over the token, then the token itself; it answers with the
// policies the identity gets. A refused token is isAuthenticated false.
func (h *Handler) testInvokeAuthorizer(w http.ResponseWriter, r *http.Request, body []byte) error {
	if h.cfg.Authenticate == nil {
		return &apiError{status: http.StatusNotImplemented, typ: "InvalidRequestException", msg: "authorizers cannot be tested here"}
	}
	var in struct {
		Token          string `json:"token"`
		TokenSignature string `json:"tokenSignature"`
		HTTPContext    *struct {
			Headers     map[string]string `json:"headers"`
			QueryString string            `json:"queryString"`
		} `json:"httpContext"`
		MQTTContext *struct {
			Username string `json:"username"`
			Password []byte `json:"password"`
			ClientID string `json:"clientId"`
		} `json:"mqttContext"`
		TLSContext *struct {
			ServerName string `json:"serverName"`
		} `json:"tlsContext"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	name := r.PathValue("authorizerName")
	if _, err := h.cfg.Registry.Authorizer(r.Context(), name); err != nil {
		return err
	}
	cred := authn.Credentials{AuthorizerName: name, AuthorizerSignature: in.TokenSignature, AuthorizerToken: in.Token}
	if c := in.HTTPContext; c != nil {
		q, err := url.ParseQuery(strings.TrimPrefix(c.QueryString, "?"))
		if err != nil {
			return invalid("httpContext.queryString: %v", err)
		}
		cred.TokenFromHeader = func(key string) string {
			for k, v := range c.Headers {
				if strings.EqualFold(k, key) {
					return v
				}
			}
			return q.Get(key)
		}
		if cred.AuthorizerSignature == "" {
			cred.AuthorizerSignature = cred.TokenFromHeader("x-amz-customauthorizer-signature")
		}
	}
	if c := in.MQTTContext; c != nil && cred.AuthorizerToken == "" && cred.TokenFromHeader == nil {
		cred.AuthorizerToken = string(c.Password)
	}
	id, err := h.cfg.Authenticate(r.Context(), cred)
	if errors.Is(err, authn.ErrBadCredentials) {
		h.cfg.Logger.InfoContext(r.Context(), "test-invoke-authorizer refused", "authorizer", name, "err", err)
		return writeOK(w, map[string]any{"isAuthenticated": false, "policyDocuments": []string{}})
	}
	if err != nil {
		return err
	}
	res, err := h.cfg.Registry.ResolvePolicies(r.Context(), id.Subject, h.cfg.Policy)
	if err != nil {
		return err
	}
	docs := []string{}
	for _, p := range res.Policies {
		if doc, err := h.defaultDocument(r.Context(), p); err == nil {
			docs = append(docs, string(doc))
		}
	}
	principal := id.ThingName
	if principal == "" {
		principal = id.UserName
	}
	out := map[string]any{"isAuthenticated": true, "principalId": principal, "policyDocuments": docs,
		"refreshAfterInSeconds": 300, "disconnectAfterInSeconds": 86400}
	if !id.ExpiresAt.IsZero() {
		left := int64(id.ExpiresAt.Sub(h.cfg.Now()).Seconds())
		out["disconnectAfterInSeconds"] = max(left, 300)
		out["refreshAfterInSeconds"] = min(left, 300)
	}
	return writeOK(w, out)
}

// ---- policies ----

// defaultDocument returns the document of a policy's default version.
func (h *Handler) defaultDocument(ctx context.Context, name string) (json.RawMessage, error) {
	versions, err := h.cfg.Registry.PolicyVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.IsDefault {
			return v.Document, nil
		}
	}
	return nil, fmt.Errorf("policy %q has no default version: %w", name, store.ErrNotFound)
}

func (h *Handler) createPolicy(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		PolicyDocument string          `json:"policyDocument"`
		Tags           json.RawMessage `json:"tags"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	p, err := h.cfg.Registry.CreatePolicy(r.Context(), registry.NewPolicy{Name: r.PathValue("policyName"), Document: []byte(in.PolicyDocument)})
	if errors.Is(err, store.ErrExists) {
		return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: fmt.Sprintf("policy %s already exists", r.PathValue("policyName")), err: err}
	}
	if err != nil {
		return err
	}
	return writeOK(w, map[string]string{"policyName": p.Name, "policyArn": h.arn("policy", p.Name), "policyDocument": in.PolicyDocument,
		"policyVersionId": strconv.FormatInt(p.DefaultVersion, 10)})
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request, _ []byte) error {
	p, err := h.cfg.Registry.Policy(r.Context(), r.PathValue("policyName"))
	if err != nil {
		return err
	}
	doc, err := h.defaultDocument(r.Context(), p.Name)
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"policyName": p.Name, "policyArn": h.arn("policy", p.Name), "policyDocument": string(doc),
		"defaultVersionId": strconv.FormatInt(p.DefaultVersion, 10), "creationDate": epoch(p.CreatedAt), "lastModifiedDate": epoch(p.UpdatedAt),
		"generationId": strconv.FormatInt(p.Version, 10)})
}

func (h *Handler) createPolicyVersion(w http.ResponseWriter, r *http.Request, body []byte) error {
	var in struct {
		PolicyDocument string `json:"policyDocument"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	setDefault, err := boolQuery(r, "setAsDefault")
	if err != nil {
		return err
	}
	name := r.PathValue("policyName")
	v, err := h.cfg.Registry.CreatePolicyVersion(r.Context(), name, 0, []byte(in.PolicyDocument), setDefault)
	var inv *registry.InvalidError
	if errors.As(err, &inv) && len(inv.Problems) == 1 && inv.Problems[0].Field == "versions" {
		return &apiError{status: http.StatusConflict, typ: "VersionsLimitExceededException", msg: inv.Problems[0].Message, err: err}
	}
	if err != nil {
		return err
	}
	return writeOK(w, map[string]any{"policyArn": h.arn("policy", name), "policyDocument": in.PolicyDocument,
		"policyVersionId": strconv.FormatInt(v.VersionID, 10), "isDefaultVersion": v.IsDefault})
}

// target maps an AWS policy target ARN onto a Gatehouse attachment: a
// certificate (cert/<id>), a thing group (thinggroup/<name>) or, as a
// Gatehouse extension, a thing (thing/<name>).
func parseTarget(arn string) (kind, target string, err error) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iot:")
	if ok {
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) == 3 {
			typ, name, _ := strings.Cut(parts[2], "/")
			switch typ {
			case "cert":
				return store.TargetCertificate, strings.ToLower(name), nil
			case "thinggroup":
				return store.TargetGroup, name, nil
			case "thing":
				return store.TargetThing, name, nil
			}
		}
	}
	return "", "", invalid("target %q: want an ARN of a certificate (arn:aws:iot:<region>:<account>:cert/<id>), thing group or thing", truncate(arn))
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func (h *Handler) policyTarget(body []byte) (kind, target string, err error) {
	var in struct {
		Target string `json:"target"`
	}
	if err := decodeBody(body, &in); err != nil {
		return "", "", err
	}
	return parseTarget(in.Target)
}

func (h *Handler) attachPolicy(w http.ResponseWriter, r *http.Request, body []byte) error {
	kind, target, err := h.policyTarget(body)
	if err != nil {
		return err
	}
	_, err = h.cfg.Registry.AttachPolicy(r.Context(), r.PathValue("policyName"), kind, target)
	if err != nil && !errors.Is(err, store.ErrExists) { // attaching twice succeeds, as in AWS
		return err
	}
	return writeOK(w, struct{}{})
}

func (h *Handler) detachPolicy(w http.ResponseWriter, r *http.Request, body []byte) error {
	kind, target, err := h.policyTarget(body)
	if err != nil {
		return err
	}
	if err := h.cfg.Registry.DetachPolicy(r.Context(), r.PathValue("policyName"), kind, target); err != nil {
		return err
	}
	return writeOK(w, struct{}{})
}

func (h *Handler) listAttachedPolicies(w http.ResponseWriter, r *http.Request, _ []byte) error {
	kind, target, err := parseTarget(r.PathValue("target"))
	if err != nil {
		return err
	}
	atts, err := h.cfg.Registry.PolicyAttachments(r.Context(), store.AttachmentFilter{TargetKind: kind, Target: target})
	if err != nil {
		return err
	}
	type pol struct {
		PolicyName string `json:"policyName"`
		PolicyArn  string `json:"policyArn"`
	}
	out := []pol{}
	for _, a := range atts {
		out = append(out, pol{a.Policy, h.arn("policy", a.Policy)})
	}
	return writeOK(w, map[string]any{"policies": out})
}

// ---- certificates ----

func (h *Handler) certArn(id string) string { return h.arn("cert", id) }

func (h *Handler) createKeysAndCertificate(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	if err := decodeBody(body, &struct{}{}); err != nil {
		return err
	}
	active, err := boolQuery(r, "setAsActive")
	if err != nil {
		return err
	}
	// AWS IoT issues RSA 2048 keys here; clients written for it may
	// expect one.
	is, err := h.cfg.Certs.IssueUnattached(r.Context(), "", pki.RSA2048, active)
	if err != nil {
		return err
	}
	id := is.Certificate.Fingerprint
	return writeOK(w, map[string]any{"certificateArn": h.certArn(id), "certificateId": id, "certificatePem": is.CertificatePEM,
		"keyPair": map[string]string{"PublicKey": is.PublicKeyPEM, "PrivateKey": is.PrivateKeyPEM}})
}

func (h *Handler) createCertificateFromCSR(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	var in struct {
		CSR string `json:"certificateSigningRequest"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.CSR) == "" {
		return invalid("certificateSigningRequest is required")
	}
	active, err := boolQuery(r, "setAsActive")
	if err != nil {
		return err
	}
	is, err := h.cfg.Certs.IssueUnattached(r.Context(), in.CSR, "", active)
	if err != nil {
		return err
	}
	id := is.Certificate.Fingerprint
	return writeOK(w, map[string]any{"certificateArn": h.certArn(id), "certificateId": id, "certificatePem": is.CertificatePEM})
}

func (h *Handler) describeCertificate(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	c, err := h.cfg.Certs.Certificate(r.Context(), r.PathValue("certificateId"))
	if err != nil {
		return err
	}
	d := map[string]any{"certificateArn": h.certArn(c.Fingerprint), "certificateId": c.Fingerprint, "status": c.Status,
		"certificatePem": c.PEM, "ownedBy": h.cfg.Account, "creationDate": epoch(c.CreatedAt), "lastModifiedDate": epoch(c.UpdatedAt),
		"customerVersion": c.Version, "generationId": strconv.FormatInt(c.Version, 10), "certificateMode": "DEFAULT",
		"validity": map[string]float64{"notBefore": epoch(c.NotBefore), "notAfter": epoch(c.NotAfter)}}
	if c.IssuerFingerprint != "" {
		d["caCertificateId"] = c.IssuerFingerprint
	}
	return writeOK(w, map[string]any{"certificateDescription": d})
}

func (h *Handler) updateCertificate(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	id := r.PathValue("certificateId")
	var err error
	switch s := r.URL.Query().Get("newStatus"); s {
	case store.CertActive:
		_, err = h.cfg.Certs.ActivateCertificate(r.Context(), id)
	case store.CertInactive:
		_, err = h.cfg.Certs.DeactivateCertificate(r.Context(), id)
	case store.CertRevoked:
		_, err = h.cfg.Certs.RevokeCertificate(r.Context(), id, 0)
	default:
		return invalid("newStatus %q: Gatehouse supports ACTIVE, INACTIVE and REVOKED", s)
	}
	if err != nil {
		return err
	}
	return writeOK(w, struct{}{})
}

// certIDFromPrincipal takes a certificate id from a principal: a
// certificate ARN, or the bare id.
func certIDFromPrincipal(p string) (string, error) {
	if strings.HasPrefix(p, "arn:") {
		kind, id, err := parseTarget(p)
		if err != nil || kind != store.TargetCertificate {
			return "", invalid("principal %q: Gatehouse things take certificate principals (arn:aws:iot:<region>:<account>:cert/<id>)", truncate(p))
		}
		return id, nil
	}
	return p, nil
}

func (h *Handler) attachThingPrincipal(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	id, err := certIDFromPrincipal(r.Header.Get("X-Amzn-Principal"))
	if err != nil {
		return err
	}
	if id == "" {
		return invalid("the x-amzn-principal header is required")
	}
	if _, err := h.cfg.Certs.AttachThing(r.Context(), id, r.PathValue("thingName")); err != nil {
		return err
	}
	return writeOK(w, struct{}{})
}

func (h *Handler) listThingPrincipals(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	name := r.PathValue("thingName")
	if _, err := h.cfg.Registry.Thing(r.Context(), name); err != nil {
		return err
	}
	out := []string{}
	f := store.CertificateFilter{ThingName: name, Page: store.Page{Limit: 250}}
	for {
		cs, err := h.cfg.Certs.Certificates(r.Context(), f)
		if err != nil {
			return err
		}
		for _, c := range cs {
			out = append(out, h.certArn(c.Fingerprint))
		}
		if len(cs) < f.Limit {
			break
		}
		f.After = cs[len(cs)-1].Fingerprint
	}
	return writeOK(w, map[string]any{"principals": out})
}

// registerCACertificate registers a device-signing CA as a manufacturer
// CA named by its certificate id (SHA-256 fingerprint).
// allowAutoRegistration registers its devices' certificates just in time,
// as PENDING_ACTIVATION (AWS IoT's JITR); setAsActive false registers the
// CA INACTIVE.
func (h *Handler) registerCACertificate(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := h.needCerts(); err != nil {
		return err
	}
	var in struct {
		CACertificate           string          `json:"caCertificate"`
		VerificationCertificate string          `json:"verificationCertificate"`
		CertificateMode         string          `json:"certificateMode"`
		RegistrationConfig      json.RawMessage `json:"registrationConfig"`
		Tags                    json.RawMessage `json:"tags"`
	}
	if err := decodeBody(body, &in); err != nil {
		return err
	}
	if in.CertificateMode != "" && in.CertificateMode != "DEFAULT" && in.CertificateMode != "SNI_ONLY" {
		return invalid("certificateMode %q: want DEFAULT or SNI_ONLY", in.CertificateMode)
	}
	if len(in.RegistrationConfig) > 0 && string(in.RegistrationConfig) != "null" && string(in.RegistrationConfig) != "{}" {
		return invalid("registrationConfig (provisioning templates) is not supported here: give the CA a thing type with the manufacturer CA API")
	}
	active, err := boolQuery(r, "setAsActive")
	if err != nil {
		return err
	}
	auto, err := boolQuery(r, "allowAutoRegistration")
	if err != nil {
		return err
	}
	cs, err := pki.ParseCertificatesPEM([]byte(in.CACertificate))
	if err != nil || len(cs) != 1 {
		return invalid("caCertificate: want exactly one PEM certificate")
	}
	id := pki.Fingerprint(cs[0])
	m, err := h.cfg.Certs.AddManufacturerCA(r.Context(), certs.NewManufacturerCA{Name: id, CertificatePEM: in.CACertificate,
		VerificationCertificatePEM: in.VerificationCertificate, AutoRegister: auto})
	if errors.Is(err, store.ErrExists) {
		return &apiError{status: http.StatusConflict, typ: "ResourceAlreadyExistsException", msg: "CA certificate " + id + " is already registered", err: err}
	}
	if err != nil {
		return err
	}
	if !active {
		inactive := store.CAInactive
		if _, err := h.cfg.Certs.UpdateManufacturerCA(r.Context(), m.Name, 0, certs.ManufacturerCAPatch{Status: &inactive}); err != nil {
			return err
		}
	}
	return writeOK(w, map[string]string{"certificateArn": h.arn("cacert", id), "certificateId": id})
}

// describeEndpoint answers the MQTT-over-TLS data endpoint for every data
// endpoint type; host only when it listens on 8883, as AWS answers, else
// host:port.
func (h *Handler) describeEndpoint(w http.ResponseWriter, r *http.Request, _ []byte) error {
	switch t := r.URL.Query().Get("endpointType"); t {
	case "", "iot:Data", "iot:Data-ATS":
	default:
		return invalid("endpointType %q: Gatehouse serves iot:Data and iot:Data-ATS", t)
	}
	ep := ""
	if h.cfg.DataEndpoint != nil {
		ep = h.cfg.DataEndpoint()
	}
	if ep == "" {
		return &apiError{status: http.StatusNotFound, typ: "ResourceNotFoundException", msg: "no MQTT TLS listener is configured"}
	}
	if host, port, err := net.SplitHostPort(ep); err == nil && port == "8883" {
		ep = host
	}
	return writeOK(w, map[string]string{"endpointAddress": ep})
}
