package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Attributes the registration gateway sets on the things it creates.
const (
	AttrCreationDate = "creationDate"
	AttrVersion      = "version"
)

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	ThingName string `json:"thingName"`
	Version   string `json:"version"`
	// CSR is an optional PEM certificate signing request whose common name
	// is the thing name. Without it the server generates the key and
	// returns it once.
	CSR string `json:"csr,omitempty"`
}

// Issued is a certificate just issued, with its key when the server made
// it.
type Issued struct {
	Certificate    *store.Certificate
	CertificatePEM string
	PublicKeyPEM   string
	// PrivateKeyPEM is set only for a server-generated key. Secret: it is
	// returned once and never stored or logged.
	PrivateKeyPEM string
}

// Registration is the result of Register.
type Registration struct {
	Thing *store.Thing
	Issued
	// RootCAPEM is the whole chain, issuing CA first and root last, so
	// "openssl verify -CAfile rootCa cert.pem" succeeds on the answer
	// alone (the field name rootCa is the registration contract's).
	RootCAPEM string
	Endpoints map[string]string
}

// Register registers a thing with a registration token (the certificate
// vending contract of POST /register): it checks the token, creates the thing with the
// token's thing type and the attributes creationDate and version (kept only
// if the type's attribute schema names them, when it has one), issues a
// certificate from req.CSR or for a key it generates, and binds the
// certificate to the thing; the thing type's default policies then apply.
// Token use, thing, certificate and events are one transaction.
//
// Errors: ErrBadToken, ErrTokenRejected, *registry.InvalidError,
// *pki.RequestError (bad CSR), ErrThingExists.
func (s *Service) Register(ctx context.Context, token string, req RegisterRequest) (*Registration, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := s.checkToken(ctx, token)
	if err != nil {
		return nil, err
	}
	ctx = events.WithActor(ctx, "registration-token:"+tok.ID)
	if err := checkRegisterRequest(req); err != nil {
		return nil, err
	}
	if _, err := s.store.GetThing(ctx, req.ThingName); err == nil {
		return nil, &ThingExistsError{Name: req.ThingName}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// The type's key algorithm, for a key made here; the transaction
	// checks the type again.
	alg, err := s.keyAlgorithm(ctx, tok.ThingType)
	if err != nil {
		return nil, err
	}
	// Sign before the transaction: it is the costly part and needs no lock.
	issued, err := s.issue(cur, req.ThingName, req.CSR, alg, 0)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := &Registration{Issued: *issued, RootCAPEM: string(cur.ca.ChainPEM()), Endpoints: maps.Clone(s.cfg.Endpoints)}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		ok, err := tx.UseRegistrationToken(ctx, tok.ID, now)
		if err != nil {
			return nil, err
		}
		if !ok {
			cur, err := tx.GetRegistrationToken(ctx, tok.ID)
			if err != nil {
				return nil, err
			}
			if err := usable(cur, now); err != nil {
				return nil, err
			}
			return nil, tokenRejected(tok.ID, "token %s cannot be used", tok.ID)
		}
		tt, err := tx.GetThingType(ctx, tok.ThingType)
		if errors.Is(err, store.ErrNotFound) {
			return nil, tokenRejected(tok.ID, "the token's thing type %q no longer exists", tok.ThingType)
		} else if err != nil {
			return nil, err
		}
		attrs := map[string]string{AttrCreationDate: strconv.FormatInt(now.Unix(), 10)}
		if req.Version != "" {
			attrs[AttrVersion] = req.Version
		}
		filterAttributes(attrs, tt)
		th, err := s.reg.CreateThingInTx(ctx, tx, registry.NewThing{Name: req.ThingName, ThingType: tt.Name, Attributes: attrs})
		if errors.Is(err, store.ErrExists) {
			return nil, &ThingExistsError{Name: req.ThingName}
		}
		if err != nil {
			return nil, err
		}
		out.Thing = th
		if err := tx.CreateCertificate(ctx, issued.Certificate); err != nil {
			return nil, err
		}
		return []event{
			{"thing.registered", "thing/" + th.Name, map[string]any{"thingType": th.ThingType, "attributes": th.Attributes,
				"registrationToken": tok.ID, "certificateId": issued.Certificate.Fingerprint}},
			{"certificate.issued", "certificate/" + issued.Certificate.Fingerprint, certDetails(issued.Certificate, map[string]any{
				"via": "register", "csr": req.CSR != ""})},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func certDetails(c *store.Certificate, extra map[string]any) map[string]any {
	d := map[string]any{"thingName": c.ThingName, "ca": c.CA, "serialNumber": c.SerialNumber, "status": c.Status, "notAfter": c.NotAfter}
	maps.Copy(d, extra)
	return d
}

func checkRegisterRequest(req RegisterRequest) error {
	var probs []registry.Problem
	if !registry.ValidName(req.ThingName) {
		probs = append(probs, registry.Problem{Field: "thingName", Message: fmt.Sprintf("%q is not a valid thing name: use 1 to 128 of a-z A-Z 0-9 : _ -", truncate(req.ThingName))})
	}
	if !registry.ValidAttributeValue(req.Version) {
		probs = append(probs, registry.Problem{Field: "version", Message: fmt.Sprintf("%q: at most %d of a-z A-Z 0-9 _ . , @ / : # = [ ] -", truncate(req.Version), registry.MaxAttributeValue)})
	}
	if len(req.CSR) > pki.MaxCSRSize {
		probs = append(probs, registry.Problem{Field: "csr", Message: fmt.Sprintf("larger than %d bytes", pki.MaxCSRSize)})
	}
	if len(probs) > 0 {
		return &registry.InvalidError{Problems: probs}
	}
	return nil
}

// filterAttributes keeps, when the thing type has an attribute schema, only
// the attributes it names.
func filterAttributes(attrs map[string]string, tt *store.ThingType) {
	if len(tt.AttributeSchema) == 0 {
		return
	}
	known := map[string]bool{}
	for _, a := range tt.AttributeSchema {
		known[a.Name] = true
	}
	maps.DeleteFunc(attrs, func(k, _ string) bool { return !known[k] })
}

// issue signs a certificate for thing from csrPEM, or for a generated key
// of alg when csrPEM is empty, valid for validity (0: the service's
// LeafValidity), and returns its record (status ACTIVE). With
// thing "" the certificate belongs to no thing yet: a CSR keeps its own
// common name, a generated key gets UnattachedCommonName.
func (s *Service) issue(cur *loadedCA, thing, csrPEM string, alg pki.KeyAlgorithm, validity time.Duration) (*Issued, error) {
	opts := pki.IssueOptions{ExpectedCommonName: thing, ThingName: thing, KeyAlgorithm: alg, Validity: validity}
	cn := thing
	if thing == "" {
		cn = UnattachedCommonName
	}
	var (
		cert *x509.Certificate
		out  Issued
	)
	if csrPEM != "" {
		csr, err := pki.ParseCSR([]byte(csrPEM))
		if err != nil {
			return nil, err
		}
		if cert, err = cur.ca.SignCSR(csr, opts); err != nil {
			return nil, err
		}
		pub, err := pki.EncodePublicKeyPEM(cert.PublicKey)
		if err != nil {
			return nil, err
		}
		out.PublicKeyPEM = string(pub)
	} else {
		kp, err := cur.ca.IssueKeyPair(cn, opts)
		if err != nil {
			return nil, err
		}
		cert = kp.Certificate
		out.PublicKeyPEM, out.PrivateKeyPEM = string(kp.PublicKeyPEM), string(kp.PrivateKeyPEM)
	}
	out.CertificatePEM = string(pki.EncodeCertificatesPEM(cert))
	now := s.now()
	out.Certificate = &store.Certificate{Fingerprint: pki.Fingerprint(cert), ThingName: thing, CA: OwnCA, IssuerFingerprint: cur.issuerFP,
		SerialNumber: cert.SerialNumber.Text(16), Subject: cert.Subject.String(), PEM: out.CertificatePEM, Status: store.CertActive,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), CreatedAt: now, UpdatedAt: now}
	return &out, nil
}

// keyAlgorithm is the algorithm of keys generated for things of type
// thingType: the type's keyAlgorithm, else the service's. A type that does
// not exist (any more) gets the service's; callers check it in their
// transaction.
func (s *Service) keyAlgorithm(ctx context.Context, thingType string) (pki.KeyAlgorithm, error) {
	if thingType == "" {
		return s.cfg.KeyAlgorithm, nil
	}
	tt, err := s.store.GetThingType(ctx, thingType)
	if errors.Is(err, store.ErrNotFound) {
		return s.cfg.KeyAlgorithm, nil
	}
	if err != nil {
		return "", err
	}
	if tt.KeyAlgorithm != "" {
		return pki.KeyAlgorithm(tt.KeyAlgorithm), nil
	}
	return s.cfg.KeyAlgorithm, nil
}
