package certs

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// OwnCA is the name of Gatehouse's own CA in certificate records (the CA
// field) and in the event log.
const OwnCA = pki.OwnCAName

// Defaults of Config.
const (
	DefaultCRLValidity     = 7 * 24 * time.Hour
	DefaultMaxRegisterBody = 64 << 10
	// caRecheck is how often a replica looks whether another one replaced
	// the CA or changed the manufacturer CAs.
	caRecheck = 30 * time.Second
)

// Config holds a Service's dependencies and settings.
type Config struct {
	Store    *store.Store
	Registry *registry.Service
	Events   *events.Log
	// Sealer encrypts the CA keys at rest. Required.
	Sealer *seal.Sealer
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger

	// CA describes the CA EnsureCA creates on first start (a root and an
	// intermediate that issues). Intermediate is always set; Settings are
	// filled from this Config.
	CA pki.CAOptions
	// LeafValidity of issued device certificates; 0 means
	// pki.DefaultLeafValidity.
	LeafValidity time.Duration
	// KeyAlgorithm of keys the registration gateway generates for devices
	// that send no CSR. Default ECDSA P-256.
	KeyAlgorithm pki.KeyAlgorithm
	// CRLValidity is the promised interval to the next CRL. The cached CRL
	// is regenerated after half of it, and at once after a revocation.
	CRLValidity time.Duration
	// Endpoints are returned to registering devices ("mqtt":
	// "mqtts://host:8883", ...).
	Endpoints map[string]string
	// RequireProofOfPossession refuses manufacturer CAs registered without
	// a verification certificate.
	RequireProofOfPossession bool
	// MaxRegisterBody bounds a POST /register body. Default 64 KiB.
	MaxRegisterBody int64
	// RegisterPerIP limits POST /register per client address (429 with
	// Retry-After); nil means no limit.
	RegisterPerIP *ratelimit.Limiter
}

// Service is the certificate service. It is safe for concurrent use.
type Service struct {
	cfg    Config
	store  *store.Store
	reg    *registry.Service
	events *events.Log
	sealer *seal.Sealer
	now    func() time.Time
	rand   io.Reader
	log    *slog.Logger

	mu       sync.Mutex
	ca       *loadedCA
	verifier *verifierCache
}

// loadedCA is the CA in memory with what identifies its stored version.
type loadedCA struct {
	ca        *pki.CA
	chainPEM  string
	issuerFP  string
	regCode   string
	checkedAt time.Time
}

// New returns a Service. Call EnsureCA before using it.
func New(c Config) (*Service, error) {
	if c.Store == nil || c.Registry == nil || c.Events == nil || c.Sealer == nil {
		return nil, errors.New("certs: Store, Registry, Events and Sealer are required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CRLValidity <= 0 {
		c.CRLValidity = DefaultCRLValidity
	}
	if c.MaxRegisterBody <= 0 {
		c.MaxRegisterBody = DefaultMaxRegisterBody
	}
	clock := c.Now
	// Stored times have microsecond precision; truncate so what a call
	// returns equals what a later read returns.
	now := func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	return &Service{cfg: c, store: c.Store, reg: c.Registry, events: c.Events, sealer: c.Sealer, now: now, rand: c.Rand, log: c.Logger}, nil
}

func (s *Service) settings() pki.Settings {
	return pki.Settings{Rand: s.rand, Now: s.now, DefaultLeafValidity: s.cfg.LeafValidity,
		MaxLeafValidity: max(s.cfg.LeafValidity, pki.DefaultMaxLeafValidity)}
}

func keyAD(name string) []byte     { return []byte("pki/ca/" + name + "/key") }
func rootKeyAD(name string) []byte { return []byte("pki/ca/" + name + "/root-key") }

// change runs fn in a transaction and records the events it returns with
// it, waking event followers after the commit.
func (s *Service) change(ctx context.Context, fn func(tx *store.Tx) ([]event, error)) error {
	recorded, err := s.events.ChangeAll(ctx, func(tx *store.Tx) ([]events.Pending, error) {
		evs, err := fn(tx)
		if err != nil {
			return nil, err
		}
		out := make([]events.Pending, len(evs))
		for i, e := range evs {
			out[i] = events.Pending{Type: e.typ, Subject: e.subject, Details: e.details}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	for _, ev := range recorded {
		s.log.InfoContext(ctx, "certs change", "event", ev.Type, "subject", ev.Subject, "actor", ev.Actor)
	}
	return nil
}

// event is one event to record with a change. details never hold secrets.
type event struct {
	typ, subject string
	details      any
}

// randomCode returns n random bytes as unpadded lowercase base32.
func (s *Service) randomCode(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("certs: random: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// ---- the CA ----

// LoadCA loads Gatehouse's CA from the store, never creating one: for a
// process that only verifies client certificates on a read-only store (the
// Mosquitto plugin). ErrNoCA when no server has created it yet.
func (s *Service) LoadCA(ctx context.Context) error {
	rec, err := s.store.GetCA(ctx, OwnCA)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: the database has no CA yet (start gatehouse serve on it first)", ErrNoCA)
	}
	if err != nil {
		return fmt.Errorf("certs: load CA: %w", err)
	}
	return s.install(rec)
}

// EnsureCA loads Gatehouse's CA from the store or, on first start, creates
// an ECDSA P-256 root and an intermediate that issues, seals their keys and
// stores them. Replicas starting together agree on one CA.
func (s *Service) EnsureCA(ctx context.Context) error {
	rec, err := s.store.GetCA(ctx, OwnCA)
	if err == nil {
		return s.install(rec)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("certs: load CA: %w", err)
	}
	opts := s.cfg.CA
	opts.Intermediate = true
	opts.Settings = s.settings()
	ca, err := pki.NewCA(opts)
	if err != nil {
		return fmt.Errorf("certs: create CA: %w", err)
	}
	rec, err = s.sealCA(ca)
	if err != nil {
		return err
	}
	if rec.RegistrationCode, err = s.randomCode(20); err != nil {
		return err
	}
	err = s.change(events.WithActor(ctx, "system:pki"), func(tx *store.Tx) ([]event, error) {
		if err := tx.CreateCA(ctx, rec); err != nil {
			return nil, err
		}
		return []event{{"ca.created", "ca/" + OwnCA, caDetails(ca)}}, nil
	})
	if errors.Is(err, store.ErrExists) { // another replica won the race
		if rec, err = s.store.GetCA(ctx, OwnCA); err != nil {
			return fmt.Errorf("certs: load CA: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("certs: store CA: %w", err)
	}
	return s.install(rec)
}

func caDetails(ca *pki.CA) map[string]any {
	return map[string]any{"issuer": ca.Certificate().Subject.String(), "issuerFingerprint": pki.Fingerprint(ca.Certificate()),
		"root": ca.Root().Subject.String(), "rootFingerprint": pki.Fingerprint(ca.Root()), "notAfter": ca.Certificate().NotAfter}
}

// sealCA returns the stored form of ca with its keys sealed.
func (s *Service) sealCA(ca *pki.CA) (*store.CARecord, error) {
	m, err := ca.Marshal()
	if err != nil {
		return nil, err
	}
	defer clear(m.Key)
	defer clear(m.RootKey)
	now := s.now()
	rec := &store.CARecord{Name: OwnCA, ChainPEM: string(m.ChainPEM), IssuerFingerprint: pki.Fingerprint(ca.Certificate()), CRLStale: true, CreatedAt: now, UpdatedAt: now}
	if rec.SealedKey, err = s.sealer.Seal(m.Key, keyAD(OwnCA)); err != nil {
		return nil, fmt.Errorf("certs: seal CA key: %w", err)
	}
	if len(m.RootKey) > 0 {
		if rec.SealedRootKey, err = s.sealer.Seal(m.RootKey, rootKeyAD(OwnCA)); err != nil {
			return nil, fmt.Errorf("certs: seal root key: %w", err)
		}
	}
	return rec, nil
}

// install opens a stored CA and makes it current.
func (s *Service) install(rec *store.CARecord) error {
	key, err := s.sealer.Open(rec.SealedKey, keyAD(rec.Name))
	if err != nil {
		return fmt.Errorf("certs: open CA key (wrong master key?): %w", err)
	}
	defer clear(key)
	m := pki.Material{ChainPEM: []byte(rec.ChainPEM), Key: key}
	if len(rec.SealedRootKey) > 0 {
		if m.RootKey, err = s.sealer.Open(rec.SealedRootKey, rootKeyAD(rec.Name)); err != nil {
			return fmt.Errorf("certs: open root key: %w", err)
		}
		defer clear(m.RootKey)
	}
	ca, err := pki.LoadCA(m, s.settings())
	if err != nil {
		return fmt.Errorf("certs: load CA: %w", err)
	}
	s.mu.Lock()
	s.ca = &loadedCA{ca: ca, chainPEM: rec.ChainPEM, issuerFP: rec.IssuerFingerprint, regCode: rec.RegistrationCode, checkedAt: s.now()}
	s.verifier = nil
	s.mu.Unlock()
	return nil
}

// currentCA returns the CA in force, reloading it when another replica
// replaced it.
func (s *Service) currentCA(ctx context.Context) (*loadedCA, error) {
	s.mu.Lock()
	cur := s.ca
	s.mu.Unlock()
	if cur == nil {
		return nil, ErrNoCA
	}
	if s.now().Sub(cur.checkedAt) < caRecheck {
		return cur, nil
	}
	rec, err := s.store.GetCA(ctx, OwnCA)
	if err != nil {
		return nil, fmt.Errorf("certs: load CA: %w", err)
	}
	if rec.ChainPEM == cur.chainPEM {
		s.mu.Lock()
		if s.ca == cur {
			s.ca = &loadedCA{ca: cur.ca, chainPEM: cur.chainPEM, issuerFP: cur.issuerFP, regCode: rec.RegistrationCode, checkedAt: s.now()}
		}
		cur = s.ca
		s.mu.Unlock()
		return cur, nil
	}
	if err := s.install(rec); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ca, nil
}

// CA returns the CA in force, for issuing server certificates and tests.
func (s *Service) CA(ctx context.Context) (*pki.CA, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	return cur.ca, nil
}

// CAInfo describes the CA for the admin API and GET /ca.
type CAInfo struct {
	Name              string    `json:"name"`
	Subject           string    `json:"subject"`
	Fingerprint       string    `json:"fingerprint"`
	RootSubject       string    `json:"rootSubject"`
	RootFingerprint   string    `json:"rootFingerprint"`
	NotAfter          time.Time `json:"notAfter"`
	ChainPEM          string    `json:"chainPem"`
	RootPEM           string    `json:"rootPem"`
	RegistrationCode  string    `json:"registrationCode"`
	RootKeyHeldOnline bool      `json:"rootKeyHeldOnline"`
}

// Info describes the CA in force.
func (s *Service) Info(ctx context.Context) (*CAInfo, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return nil, err
	}
	ca := cur.ca
	m, err := ca.Marshal()
	if err != nil {
		return nil, err
	}
	hasRoot := len(m.RootKey) > 0 || len(ca.Chain()) == 1
	clear(m.Key)
	clear(m.RootKey)
	return &CAInfo{Name: OwnCA, Subject: ca.Certificate().Subject.String(), Fingerprint: pki.Fingerprint(ca.Certificate()),
		RootSubject: ca.Root().Subject.String(), RootFingerprint: pki.Fingerprint(ca.Root()), NotAfter: ca.Certificate().NotAfter,
		ChainPEM: string(ca.ChainPEM()), RootPEM: string(ca.RootPEM()), RegistrationCode: cur.regCode, RootKeyHeldOnline: hasRoot}, nil
}

// ImportRequest imports an existing CA (an enterprise PKI's intermediate,
// or a root kept elsewhere).
type ImportRequest struct {
	// ChainPEM is the issuing certificate first, then its issuers up to the
	// root (the root may be left out).
	ChainPEM string `json:"chainPem"`
	// KeyPEM is the issuing certificate's private key (PKCS#8, SEC 1 or
	// PKCS#1 PEM, unencrypted).
	KeyPEM string `json:"keyPem"`
	// RootKeyPEM is the root's key, optional; better kept offline.
	RootKeyPEM string `json:"rootKeyPem,omitempty"`
	// Replace allows replacing an existing CA. Certificates issued by the
	// old CA stop verifying.
	Replace bool `json:"replace,omitempty"`
}

// ImportCA installs an existing CA, replacing Gatehouse's only when
// req.Replace is set.
func (s *Service) ImportCA(ctx context.Context, req ImportRequest) (*CAInfo, error) {
	key, err := pki.ParsePrivateKeyPEM([]byte(req.KeyPEM))
	if err != nil {
		return nil, invalid("keyPem", "%v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, invalid("keyPem", "%v", err)
	}
	defer clear(der)
	m := pki.Material{ChainPEM: []byte(req.ChainPEM), Key: der}
	if req.RootKeyPEM != "" {
		rk, err := pki.ParsePrivateKeyPEM([]byte(req.RootKeyPEM))
		if err != nil {
			return nil, invalid("rootKeyPem", "%v", err)
		}
		if m.RootKey, err = x509.MarshalPKCS8PrivateKey(rk); err != nil {
			return nil, invalid("rootKeyPem", "%v", err)
		}
		defer clear(m.RootKey)
	}
	ca, err := pki.LoadCA(m, s.settings())
	if err != nil {
		return nil, invalid("chainPem", "%v", err)
	}
	if now := s.now(); now.After(ca.Certificate().NotAfter) || now.Before(ca.Certificate().NotBefore) {
		return nil, invalid("chainPem", "the issuing certificate is not valid now (valid %s to %s)",
			ca.Certificate().NotBefore.Format(time.RFC3339), ca.Certificate().NotAfter.Format(time.RFC3339))
	}
	rec, err := s.sealCA(ca)
	if err != nil {
		return nil, err
	}
	err = s.change(ctx, func(tx *store.Tx) ([]event, error) {
		old, err := tx.GetCA(ctx, OwnCA)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if rec.RegistrationCode, err = s.randomCode(20); err != nil {
				return nil, err
			}
			err = tx.CreateCA(ctx, rec)
		case err != nil:
			return nil, err
		case !req.Replace:
			return nil, fmt.Errorf("certs: a CA exists (%s); set replace to replace it: %w", old.IssuerFingerprint, store.ErrExists)
		default:
			rec.Version, rec.RegistrationCode, rec.CreatedAt = old.Version, old.RegistrationCode, old.CreatedAt
			rec.CRLNumber = old.CRLNumber // CRL numbers keep growing across CAs of one name
			err = tx.UpdateCA(ctx, rec)
		}
		if err != nil {
			return nil, err
		}
		return []event{{"ca.imported", "ca/" + OwnCA, caDetails(ca)}}, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.install(rec); err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// RegistrationCode is the common name a manufacturer CA's verification
// certificate must carry to prove possession of the CA key.
func (s *Service) RegistrationCode(ctx context.Context) (string, error) {
	cur, err := s.currentCA(ctx)
	if err != nil {
		return "", err
	}
	return cur.regCode, nil
}
