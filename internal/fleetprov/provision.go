package fleetprov

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Error is a refused fleet provisioning request, as AWS IoT answers it on
// a /rejected topic: {"statusCode":400,"errorCode":"InvalidParameters",
// "errorMessage":"..."}. Message is safe to return to the device.
type Error struct {
	StatusCode int    `json:"statusCode"`
	Code       string `json:"errorCode"`
	Message    string `json:"errorMessage"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("fleetprov: %s (%d): %s", e.Code, e.StatusCode, e.Message)
}

// Error codes of the fleet provisioning MQTT API.
const (
	CodeInvalidParameters = "InvalidParameters"
	CodeInvalidPayload    = "InvalidPayload"
	CodeNotFound          = "ResourceNotFound"
	CodeUnauthorized      = "Unauthorized"
	CodeInternal          = "InternalFailure"
	CodeThrottling        = "Throttling"
)

func reject(status int, code, format string, args ...any) *Error {
	return &Error{StatusCode: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Claim is who asks: the session's credential (the claim certificate's
// fingerprint) and MQTT client id. An ownership token is good only for
// the claim it was issued to.
type Claim struct {
	Principal    string
	CredentialID string
	ClientID     string
}

// ownership is a handed-out certificateOwnershipToken.
type ownership struct {
	fingerprint string
	claim       Claim
	expires     time.Time
}

// newToken hands out an ownership token for certificate fp.
func (s *Service) newToken(fp string, c Claim) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("fleetprov: random: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range s.tokens {
		if !now.Before(o.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = ownership{fingerprint: fp, claim: c, expires: now.Add(s.cfg.OwnershipTokenTTL)}
	return tok, nil
}

// takeToken removes and returns the ownership of tok if it is unexpired and
// was issued to claim c, so that concurrent uses cannot both succeed; a
// failed provisioning puts it back (giveBack).
func (s *Service) takeToken(tok string, c Claim) (ownership, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.tokens[tok]
	if !ok || o.claim.CredentialID != c.CredentialID || o.claim.ClientID != c.ClientID || !s.now().Before(o.expires) {
		return ownership{}, false
	}
	delete(s.tokens, tok)
	return o, true
}

func (s *Service) giveBack(tok string, o ownership) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = o
}

// Created is the answer to CreateKeysAndCertificate and
// CreateCertificateFromCsr.
type Created struct {
	CertificateID  string `json:"certificateId"`
	CertificatePEM string `json:"certificatePem"`
	// PrivateKey is set for CreateKeysAndCertificate only. Secret: sent
	// once to the device, never stored or logged.
	PrivateKey     string `json:"privateKey,omitempty"`
	OwnershipToken string `json:"certificateOwnershipToken"`
}

// CreateCertificate issues a certificate of no thing, INACTIVE until
// RegisterThing, for a key it generates (csrPEM "") or from csrPEM, and an
// ownership token for the claim.
func (s *Service) CreateCertificate(ctx context.Context, c Claim, csrPEM string) (*Created, error) {
	if ok, wait := s.cfg.CertificatesPerClaim.Allow(c.CredentialID); !ok {
		return nil, reject(429, CodeThrottling, "too many certificates for this claim (limits.certificatesPerClaim); retry in %s", wait.Round(time.Second))
	}
	is, err := s.certs.IssueCertificate(ctx, certs.Unattached{CSR: csrPEM, Via: "fleet-provisioning"})
	if err != nil {
		var re *pki.RequestError
		if errors.As(err, &re) {
			return nil, reject(400, CodeInvalidParameters, "certificateSigningRequest: %s", re.Detail)
		}
		return nil, err
	}
	tok, err := s.newToken(is.Certificate.Fingerprint, c)
	if err != nil {
		return nil, err
	}
	return &Created{CertificateID: is.Certificate.Fingerprint, CertificatePEM: is.CertificatePEM, PrivateKey: is.PrivateKeyPEM, OwnershipToken: tok}, nil
}

// Registered is the answer to RegisterThing.
type Registered struct {
	ThingName           string            `json:"thingName,omitempty"`
	DeviceConfiguration map[string]string `json:"deviceConfiguration"`
}

// RegisterThing provisions the certificate the ownership token names with
// template: thing, certificate status and policies as the template says for
// the parameters (after the template's pre-provisioning hook, if any,
// allowed it), in one transaction with their events.
func (s *Service) RegisterThing(ctx context.Context, c Claim, template, token string, params map[string]string) (*Registered, error) {
	t, err := s.store.GetProvisioningTemplate(ctx, template)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(404, CodeNotFound, "provisioning template %s does not exist", truncate(template))
	}
	if err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, reject(400, CodeInvalidParameters, "provisioning template %s is disabled", template)
	}
	own, ok := s.takeToken(token, c)
	if !ok {
		return nil, reject(400, CodeInvalidParameters, "certificateOwnershipToken is unknown, expired, already used or not this connection's")
	}
	out, err := s.register(ctx, t, own, params)
	if err != nil {
		// Nothing was provisioned: the device may retry (with other
		// parameters, once the hook answers, ...) until the token expires.
		s.giveBack(token, own)
		return nil, err
	}
	return out, nil
}

func (s *Service) register(ctx context.Context, t *store.ProvisioningTemplate, own ownership, params map[string]string) (*Registered, error) {
	v, err := s.store.GetProvisioningTemplateVersion(ctx, t.Name, 0)
	if err != nil {
		return nil, err
	}
	tpl, err := Parse(v.Body)
	if err != nil {
		return nil, reject(400, CodeInvalidParameters, "provisioning template %s: %v", t.Name, err)
	}
	cert, err := s.store.GetCertificate(ctx, own.fingerprint)
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for k, v := range params {
		all[k] = v
	}
	if err := certificateParameters(all, cert); err != nil {
		return nil, err
	}
	if t.PreProvisioningHook != "" {
		if err := s.callHook(ctx, t, own, cert, all); err != nil {
			return nil, err
		}
	}
	plan, err := tpl.Evaluate(all)
	if err != nil {
		return nil, reject(400, CodeInvalidParameters, "%v", err)
	}
	if plan.CertificateID != "" && plan.CertificateID != cert.Fingerprint {
		return nil, reject(400, CodeInvalidParameters, "the template's certificate is not the one this token owns")
	}
	ctx = events.WithActor(ctx, own.claim.Principal)
	_, err = s.events.ChangeAll(ctx, func(tx *store.Tx) ([]events.Pending, error) {
		return s.apply(ctx, tx, t.Name, plan, cert.Fingerprint)
	})
	var inv *registry.InvalidError
	switch {
	case errors.As(err, &inv):
		return nil, reject(400, CodeInvalidParameters, "%v", inv)
	case errors.Is(err, store.ErrNotFound):
		return nil, reject(400, CodeInvalidParameters, "%v", err)
	case err != nil:
		return nil, err
	}
	s.reg.InvalidatePolicies()
	name := ""
	if plan.Thing != nil {
		name = plan.Thing.Name
	}
	return &Registered{ThingName: name, DeviceConfiguration: plan.DeviceConfiguration}, nil
}

// certificateParameters adds AWS::IoT::Certificate::Id and the subject
// fields of the certificate (CommonName, Country, ...) to params.
func certificateParameters(params map[string]string, c *store.Certificate) error {
	params[CertificateIDParameter] = c.Fingerprint
	chain, err := pki.ParseCertificatesPEM([]byte(c.PEM))
	if err != nil || len(chain) == 0 {
		return fmt.Errorf("fleetprov: certificate %s: %w", c.Fingerprint, err)
	}
	leaf := chain[0]
	set := func(k string, vs []string) {
		if len(vs) > 0 {
			params[CertificateParameterPrefix+k] = vs[0]
		}
	}
	sub := leaf.Subject
	params[CertificateParameterPrefix+"CommonName"] = sub.CommonName
	params[CertificateParameterPrefix+"SerialNumber"] = sub.SerialNumber
	set("Country", sub.Country)
	set("Organization", sub.Organization)
	set("OrganizationalUnit", sub.OrganizationalUnit)
	set("StateName", sub.Province)
	set("Locality", sub.Locality)
	return nil
}

// apply makes the plan's records in tx and returns their events.
func (s *Service) apply(ctx context.Context, tx *store.Tx, template string, plan *Plan, fp string) ([]events.Pending, error) {
	var evs []events.Pending
	cert, err := tx.GetCertificate(ctx, fp)
	if err != nil {
		return nil, err
	}
	if cert.Status == store.CertRevoked {
		return nil, reject(400, CodeInvalidParameters, "certificate %s is revoked", fp)
	}
	if th := plan.Thing; th != nil {
		if _, err := tx.GetThing(ctx, th.Name); errors.Is(err, store.ErrNotFound) {
			if _, err := s.reg.CreateThingInTx(ctx, tx, registry.NewThing{Name: th.Name, ThingType: th.Type, Attributes: th.Attributes}); err != nil {
				return nil, err
			}
			evs = append(evs, events.Pending{Type: "thing.registered", Subject: "thing/" + th.Name,
				Details: map[string]any{"via": "fleet-provisioning", "template": template, "thingType": th.Type, "certificateId": fp}})
		} else if err != nil {
			return nil, err
		}
		for _, g := range th.Groups {
			if _, err := tx.GetGroup(ctx, g); err != nil {
				return nil, fmt.Errorf("thing group %q: %w", g, err)
			}
			err := tx.AddGroupMember(ctx, &store.GroupMember{Group: g, Kind: store.KindThing, Member: th.Name, CreatedAt: s.now()})
			if errors.Is(err, store.ErrExists) {
				continue
			}
			if err != nil {
				return nil, err
			}
			evs = append(evs, events.Pending{Type: "group.member_added", Subject: "group/" + g, Details: map[string]string{"kind": store.KindThing, "member": th.Name}})
		}
		switch cert.ThingName {
		case th.Name:
		case "":
			cert.ThingName = th.Name
			evs = append(evs, events.Pending{Type: "certificate.attached", Subject: "certificate/" + fp, Details: map[string]any{"thing": th.Name, "via": "fleet-provisioning"}})
		default:
			return nil, reject(400, CodeInvalidParameters, "certificate %s belongs to another thing", fp)
		}
	}
	if plan.CertificateStatus != "" && plan.CertificateStatus != cert.Status {
		prev := cert.Status
		cert.Status = plan.CertificateStatus
		typ := "certificate.activated"
		if cert.Status != store.CertActive {
			typ = "certificate.deactivated"
		}
		evs = append(evs, events.Pending{Type: typ, Subject: "certificate/" + fp, Details: map[string]any{"previousStatus": prev, "via": "fleet-provisioning"}})
	}
	cert.UpdatedAt = s.now()
	if err := tx.UpdateCertificate(ctx, cert); err != nil {
		return nil, err
	}
	for _, p := range plan.Policies {
		name := p.Name
		if p.Document != nil {
			// An inline document becomes a policy named after it, made
			// once and shared by every device provisioned with it.
			sum := sha256.Sum256(p.Document)
			name = "fleetprov-" + template + "-" + hex.EncodeToString(sum[:6])
			if len(name) > 128 {
				name = "fleetprov-" + hex.EncodeToString(sum[:12])
			}
			if _, err := tx.GetPolicy(ctx, name); errors.Is(err, store.ErrNotFound) {
				if _, err := s.reg.CreatePolicyInTx(ctx, tx, registry.NewPolicy{Name: name, Description: "from provisioning template " + template, Document: p.Document}); err != nil {
					return nil, err
				}
				evs = append(evs, events.Pending{Type: "policy.created", Subject: "policy/" + name, Details: map[string]any{"versionId": 1, "template": template}})
			} else if err != nil {
				return nil, err
			}
		}
		if _, err := s.reg.AttachPolicyInTx(ctx, tx, name, store.TargetCertificate, fp); errors.Is(err, store.ErrExists) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("policy %q: %w", name, err)
		}
		evs = append(evs, events.Pending{Type: "policy.attached", Subject: "policy/" + name, Details: map[string]string{"targetKind": store.TargetCertificate, "target": fp}})
	}
	evs = append(evs, events.Pending{Type: "provisioning_template.provisioned", Subject: subject(template),
		Details: map[string]any{"certificateId": fp, "thing": cert.ThingName}})
	return evs, nil
}

// hookRequest is what a pre-provisioning hook receives (the shape of the
// event AWS IoT passes to the Lambda).
type hookRequest struct {
	ClaimCertificateID string            `json:"claimCertificateId"`
	CertificateID      string            `json:"certificateId"`
	CertificatePEM     string            `json:"certificatePem"`
	TemplateName       string            `json:"templateName"`
	ClientID           string            `json:"clientId"`
	Parameters         map[string]string `json:"parameters"`
}

// hookResponse is what it answers.
type hookResponse struct {
	AllowProvisioning  bool              `json:"allowProvisioning"`
	ParameterOverrides map[string]string `json:"parameterOverrides"`
}

// callHook asks the template's pre-provisioning hook; it may refuse, or
// override parameters in params.
func (s *Service) callHook(ctx context.Context, t *store.ProvisioningTemplate, own ownership, cert *store.Certificate, params map[string]string) error {
	body, err := json.Marshal(hookRequest{ClaimCertificateID: own.claim.CredentialID, CertificateID: cert.Fingerprint, CertificatePEM: cert.PEM,
		TemplateName: t.Name, ClientID: own.claim.ClientID, Parameters: params})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultHookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.PreProvisioningHook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := s.http.Do(req)
	if err != nil {
		s.log.WarnContext(ctx, "fleetprov: pre-provisioning hook unreachable", "template", t.Name, "err", err)
		return reject(500, CodeInternal, "the pre-provisioning hook did not answer")
	}
	defer res.Body.Close()
	var out hookResponse
	if res.StatusCode != http.StatusOK {
		s.log.WarnContext(ctx, "fleetprov: pre-provisioning hook failed", "template", t.Name, "status", res.StatusCode)
		return reject(500, CodeInternal, "the pre-provisioning hook failed")
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out); err != nil {
		return reject(500, CodeInternal, "the pre-provisioning hook's answer is not JSON")
	}
	if !out.AllowProvisioning {
		return reject(403, CodeUnauthorized, "the pre-provisioning hook refused provisioning")
	}
	for k, v := range out.ParameterOverrides {
		params[k] = v
	}
	return nil
}

// ClaimCertificate mints a temporary claim certificate for template (AWS
// IoT's CreateProvisioningClaim, the trusted-user flow): ACTIVE, of no
// thing, valid for validity (0: DefaultClaimValidity), with the template's
// claim policy attached - which allows only the fleet provisioning topics
// of that template (ClaimPolicy) - made on first use.
func (s *Service) ClaimCertificate(ctx context.Context, template string, validity time.Duration) (*certs.Issued, error) {
	if _, err := s.store.GetProvisioningTemplate(ctx, template); err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultClaimValidity
	}
	policyName := ClaimPolicyName(template)
	doc := ClaimPolicy(template)
	return s.certs.IssueCertificate(ctx, certs.Unattached{Active: true, Validity: validity, Via: "provisioning-claim",
		InTx: func(tx *store.Tx, c *store.Certificate) ([]events.Pending, error) {
			var evs []events.Pending
			if _, err := tx.GetPolicy(ctx, policyName); errors.Is(err, store.ErrNotFound) {
				if _, err := s.reg.CreatePolicyInTx(ctx, tx, registry.NewPolicy{Name: policyName, Description: "fleet provisioning claim of template " + template, Document: doc}); err != nil {
					return nil, err
				}
				evs = append(evs, events.Pending{Type: "policy.created", Subject: "policy/" + policyName, Details: map[string]any{"versionId": 1, "template": template}})
			} else if err != nil {
				return nil, err
			}
			if _, err := s.reg.AttachPolicyInTx(ctx, tx, policyName, store.TargetCertificate, c.Fingerprint); err != nil {
				return nil, err
			}
			return append(evs, events.Pending{Type: "policy.attached", Subject: "policy/" + policyName,
				Details: map[string]string{"targetKind": store.TargetCertificate, "target": c.Fingerprint}}), nil
		}})
}

// ClaimPolicyName is the name of template's claim policy.
func ClaimPolicyName(template string) string {
	n := "fleetprov-claim-" + template
	if len(n) > 128 {
		sum := sha256.Sum256([]byte(template))
		n = "fleetprov-claim-" + hex.EncodeToString(sum[:12])
	}
	return n
}

// ClaimPolicy is the policy of a claim for template: connect with any
// client id, and the fleet provisioning API of that template (JSON and
// CBOR), nothing else.
func ClaimPolicy(template string) []byte {
	topics := []string{"$aws/certificates/create/*", "$aws/certificates/create-from-csr/*", "$aws/provisioning-templates/" + template + "/provision/*"}
	var pub, filters []string
	for _, t := range topics {
		pub = append(pub, "topic/"+t)
		filters = append(filters, "topicfilter/"+t)
	}
	doc := map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": "iot:Connect", "Resource": "client/*"},
		map[string]any{"Effect": "Allow", "Action": []string{"iot:Publish", "iot:Receive"}, "Resource": pub},
		map[string]any{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": filters},
	}}
	b, _ := json.Marshal(doc)
	return b
}
