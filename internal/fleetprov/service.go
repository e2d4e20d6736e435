package fleetprov

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Defaults of Config.
const (
	// DefaultOwnershipTokenTTL is how long a certificateOwnershipToken
	// may be presented to RegisterThing (AWS IoT: one hour).
	DefaultOwnershipTokenTTL = time.Hour
	// DefaultClaimValidity is how long a claim certificate minted for a
	// trusted user lasts (AWS IoT's CreateProvisioningClaim: five minutes).
	DefaultClaimValidity = 5 * time.Minute
	// DefaultHookTimeout bounds a pre-provisioning hook call (AWS IoT
	// gives the Lambda five seconds).
	DefaultHookTimeout = 5 * time.Second
)

// Config holds a Service's dependencies.
type Config struct {
	Store    *store.Store
	Registry *registry.Service
	Certs    *certs.Service
	Events   *events.Log
	Now      func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
	// HTTPClient calls pre-provisioning hooks; default a client with
	// DefaultHookTimeout.
	HTTPClient *http.Client
	// OwnershipTokenTTL: default DefaultOwnershipTokenTTL.
	OwnershipTokenTTL time.Duration
	// CertificatesPerClaim limits the certificates issued per claim
	// certificate (CreateCertificate), answered 429 Throttling; nil: no
	// limit.
	CertificatesPerClaim *ratelimit.Limiter
}

// Service keeps provisioning templates and answers the fleet provisioning
// API. It is safe for concurrent use.
type Service struct {
	cfg    Config
	store  *store.Store
	reg    *registry.Service
	certs  *certs.Service
	events *events.Log
	now    func() time.Time
	rand   io.Reader
	log    *slog.Logger
	http   *http.Client

	// tokens holds the certificate ownership tokens handed out and not
	// yet used, by token. They live in this process: a device presents
	// its token on the connection it got it on.
	mu     sync.Mutex
	tokens map[string]ownership
}

// New returns a Service.
func New(c Config) (*Service, error) {
	if c.Store == nil || c.Registry == nil || c.Certs == nil || c.Events == nil {
		return nil, errors.New("fleetprov: Store, Registry, Certs and Events are required")
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
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHookTimeout}
	}
	if c.OwnershipTokenTTL <= 0 {
		c.OwnershipTokenTTL = DefaultOwnershipTokenTTL
	}
	clock := c.Now
	now := func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	return &Service{cfg: c, store: c.Store, reg: c.Registry, certs: c.Certs, events: c.Events, now: now, rand: c.Rand,
		log: c.Logger, http: c.HTTPClient, tokens: map[string]ownership{}}, nil
}

// subject is a template's event subject.
func subject(name string) string { return "provisioning-template/" + name }

func invalid(field, format string, args ...any) error {
	return &registry.InvalidError{Problems: []registry.Problem{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// checkBody parses a template body, as an InvalidError when it is bad.
func checkBody(body []byte) error {
	if _, err := Parse(body); err != nil {
		return invalid("templateBody", "%v", err)
	}
	return nil
}

// checkHook accepts "" or an https URL (http only to a loopback address,
// for tests and a hook on the same host).
func checkHook(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return invalid("preProvisioningHook", "%q is not an https URL", raw)
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return invalid("preProvisioningHook", "%q: plain http is allowed only to a loopback address", raw)
		}
	}
	return nil
}

// NewTemplate is what CreateTemplate needs.
type NewTemplate struct {
	Name        string `json:"templateName"`
	Description string `json:"description,omitempty"`
	// Body is the template JSON.
	Body                []byte `json:"-"`
	Enabled             bool   `json:"enabled"`
	PreProvisioningHook string `json:"preProvisioningHook,omitempty"`
}

// CreateTemplate stores a new template whose body becomes version 1.
func (s *Service) CreateTemplate(ctx context.Context, in NewTemplate) (*store.ProvisioningTemplate, error) {
	if !registry.ValidName(in.Name) {
		return nil, invalid("templateName", "%q is not a valid name: use 1 to 128 of a-z A-Z 0-9 : _ -", truncate(in.Name))
	}
	if len(in.Description) > registry.MaxDescription {
		return nil, invalid("description", "%d bytes, at most %d allowed", len(in.Description), registry.MaxDescription)
	}
	if err := checkBody(in.Body); err != nil {
		return nil, err
	}
	if err := checkHook(in.PreProvisioningHook); err != nil {
		return nil, err
	}
	now := s.now()
	t := &store.ProvisioningTemplate{Name: in.Name, Description: in.Description, Enabled: in.Enabled, PreProvisioningHook: in.PreProvisioningHook,
		CreatedAt: now, UpdatedAt: now}
	_, err := s.events.Change(ctx, "provisioning_template.created", func(tx *store.Tx) (string, any, error) {
		return subject(in.Name), map[string]any{"enabled": in.Enabled, "versionId": 1, "preProvisioningHook": in.PreProvisioningHook != ""},
			tx.CreateProvisioningTemplate(ctx, t, in.Body)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Template returns a template.
func (s *Service) Template(ctx context.Context, name string) (*store.ProvisioningTemplate, error) {
	return s.store.GetProvisioningTemplate(ctx, name)
}

// Templates lists templates by name.
func (s *Service) Templates(ctx context.Context, p store.Page) ([]store.ProvisioningTemplate, error) {
	return s.store.ListProvisioningTemplates(ctx, p)
}

// TemplateVersions lists a template's versions, newest first.
func (s *Service) TemplateVersions(ctx context.Context, name string) ([]store.ProvisioningTemplateVersion, error) {
	if _, err := s.store.GetProvisioningTemplate(ctx, name); err != nil {
		return nil, err
	}
	return s.store.ListProvisioningTemplateVersions(ctx, name)
}

// TemplateVersion returns one version of a template; id 0 is the default.
func (s *Service) TemplateVersion(ctx context.Context, name string, id int64) (*store.ProvisioningTemplateVersion, error) {
	return s.store.GetProvisioningTemplateVersion(ctx, name, id)
}

// TemplatePatch changes a template's settings; nil fields stay.
type TemplatePatch struct {
	Description         *string `json:"description,omitempty"`
	Enabled             *bool   `json:"enabled,omitempty"`
	PreProvisioningHook *string `json:"preProvisioningHook,omitempty"`
	DefaultVersion      *int64  `json:"defaultVersionId,omitempty"`
}

// UpdateTemplate applies p to a template; ifVersion (0: any) must be its
// current version.
func (s *Service) UpdateTemplate(ctx context.Context, name string, ifVersion int64, p TemplatePatch) (*store.ProvisioningTemplate, error) {
	if p.Description != nil && len(*p.Description) > registry.MaxDescription {
		return nil, invalid("description", "%d bytes, at most %d allowed", len(*p.Description), registry.MaxDescription)
	}
	if p.PreProvisioningHook != nil {
		if err := checkHook(*p.PreProvisioningHook); err != nil {
			return nil, err
		}
	}
	var out *store.ProvisioningTemplate
	_, err := s.events.Change(ctx, "provisioning_template.updated", func(tx *store.Tx) (string, any, error) {
		t, err := tx.GetProvisioningTemplate(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if ifVersion != 0 && ifVersion != t.Version {
			return "", nil, fmt.Errorf("version %d is not current (%d): %w", ifVersion, t.Version, store.ErrStale)
		}
		changed := map[string]any{}
		if p.Description != nil {
			t.Description, changed["description"] = *p.Description, true
		}
		if p.Enabled != nil {
			t.Enabled, changed["enabled"] = *p.Enabled, *p.Enabled
		}
		if p.PreProvisioningHook != nil {
			t.PreProvisioningHook, changed["preProvisioningHook"] = *p.PreProvisioningHook, *p.PreProvisioningHook != ""
		}
		if p.DefaultVersion != nil {
			if _, err := tx.GetProvisioningTemplateVersion(ctx, name, *p.DefaultVersion); err != nil || *p.DefaultVersion == 0 {
				return "", nil, invalid("defaultVersionId", "template %q has no version %d", name, *p.DefaultVersion)
			}
			t.DefaultVersion, changed["defaultVersionId"] = *p.DefaultVersion, *p.DefaultVersion
		}
		t.UpdatedAt = s.now()
		out = t
		return subject(name), changed, tx.UpdateProvisioningTemplate(ctx, t)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateTemplateVersion adds a body as the template's next version, the
// default if setDefault.
func (s *Service) CreateTemplateVersion(ctx context.Context, name string, body []byte, setDefault bool) (*store.ProvisioningTemplateVersion, error) {
	if err := checkBody(body); err != nil {
		return nil, err
	}
	var out *store.ProvisioningTemplateVersion
	_, err := s.events.Change(ctx, "provisioning_template.version_created", func(tx *store.Tx) (string, any, error) {
		t, err := tx.GetProvisioningTemplate(ctx, name)
		if err != nil {
			return "", nil, err
		}
		v := &store.ProvisioningTemplateVersion{Template: name, VersionID: t.NextVersion, Body: body, IsDefault: setDefault, CreatedAt: s.now()}
		if err := tx.AddProvisioningTemplateVersion(ctx, v); err != nil {
			return "", nil, err
		}
		t.NextVersion++
		if setDefault {
			t.DefaultVersion = v.VersionID
		}
		t.UpdatedAt = v.CreatedAt
		out = v
		return subject(name), map[string]any{"versionId": v.VersionID, "isDefaultVersion": setDefault}, tx.UpdateProvisioningTemplate(ctx, t)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTemplateVersion removes a version that is not the default.
func (s *Service) DeleteTemplateVersion(ctx context.Context, name string, id int64) error {
	_, err := s.events.Change(ctx, "provisioning_template.version_deleted", func(tx *store.Tx) (string, any, error) {
		t, err := tx.GetProvisioningTemplate(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if id == t.DefaultVersion {
			return "", nil, invalid("versionId", "version %d is the default; make another version the default first", id)
		}
		return subject(name), map[string]any{"versionId": id}, tx.DeleteProvisioningTemplateVersion(ctx, name, id)
	})
	return err
}

// DeleteTemplate removes a template and its versions; ifVersion (0: any)
// must be its current version.
func (s *Service) DeleteTemplate(ctx context.Context, name string, ifVersion int64) error {
	_, err := s.events.Change(ctx, "provisioning_template.deleted", func(tx *store.Tx) (string, any, error) {
		t, err := tx.GetProvisioningTemplate(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if ifVersion != 0 && ifVersion != t.Version {
			return "", nil, fmt.Errorf("version %d is not current (%d): %w", ifVersion, t.Version, store.ErrStale)
		}
		return subject(name), nil, tx.DeleteProvisioningTemplate(ctx, name)
	})
	return err
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
