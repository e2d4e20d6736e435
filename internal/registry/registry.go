package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// ErrBadCredentials is returned by Authenticate for an unknown user, a
// wrong password or a disabled account alike.
var ErrBadCredentials = errors.New("registry: bad credentials")

// Config holds a Service's dependencies.
type Config struct {
	Store  *store.Store
	Events *events.Log
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	Hash   HashParams
	// SignIn throttles failed sign-ins per account (Authenticate).
	SignIn SignInThrottle
}

// Service implements the registry's operations.
type Service struct {
	store  *store.Store
	events *events.Log
	now    func() time.Time
	rand   io.Reader
	log    *slog.Logger
	hash   HashParams
	// dummyHash is checked for unknown users so that timing does not tell
	// which usernames exist.
	dummyHash string
	cache     *policyCache
	// builtin holds what built-in policies must keep allowing.
	builtin builtinPolicies
	// signIn slows password guessing per account.
	signIn *accountThrottle
}

// New returns a Service.
func New(c Config) (*Service, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Hash == (HashParams{}) {
		c.Hash = DefaultHashParams()
	}
	clock := c.Now
	// Stored times have microsecond precision; truncate so what a call
	// returns equals what a later read returns.
	now := func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	s := &Service{cache: newPolicyCache(), store: c.Store, events: c.Events, now: now, rand: c.Rand, log: c.Logger, hash: c.Hash}
	dummy, err := HashPassword("not-a-password", c.Hash, c.Rand)
	if err != nil {
		return nil, err
	}
	s.dummyHash = dummy
	s.requirePeoplePolicy()
	s.signIn = newAccountThrottle(c.SignIn, c.Now)
	return s, nil
}

// Store returns the underlying store, for read paths of other packages.
func (s *Service) Store() *store.Store { return s.store }

// newID returns a random 128-bit identifier.
func (s *Service) newID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("registry: id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// change runs fn in a transaction and records one event with it. fn returns
// the event's subject and details.
func (s *Service) change(ctx context.Context, typ string, fn func(tx *store.Tx) (subject string, details any, err error)) error {
	ev, err := s.events.Change(ctx, typ, fn)
	if err != nil {
		return err
	}
	// Any change may alter what policies resolve to.
	s.InvalidatePolicies()
	s.log.InfoContext(ctx, "registry change", "event", typ, "subject", ev.Subject, "actor", ev.Actor)
	return nil
}

// checkVersion reports ErrStale when the caller named a version (non-zero)
// that is no longer current.
func checkVersion(want, have int64) error {
	if want != 0 && want != have {
		return fmt.Errorf("version %d is not current (%d): %w", want, have, store.ErrStale)
	}
	return nil
}

// ---- Things ----

// NewThing is what CreateThing needs.
type NewThing struct {
	Name       string            `json:"name"`
	ThingType  string            `json:"thingType,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	State      string            `json:"state,omitempty"`
}

// ThingPatch changes a thing. Nil fields are left alone; an attribute set to
// nil is removed; ThingType "" removes the type.
type ThingPatch struct {
	ThingType  *string            `json:"thingType,omitempty"`
	Attributes map[string]*string `json:"attributes,omitempty"`
	State      *string            `json:"state,omitempty"`
	// Merge false replaces all attributes with the non-nil ones given.
	Merge *bool `json:"merge,omitempty"`
}

func checkState(p *problems, state string) {
	if state != store.StateEnabled && state != store.StateDisabled {
		p.add("state", "%q is not enabled or disabled", truncate(state))
	}
}

// validateAgainstType checks a thing's attributes against its type's schema.
func validateAgainstType(p *problems, attrs map[string]string, tt *store.ThingType) {
	if tt == nil {
		return
	}
	for _, spec := range tt.AttributeSchema {
		v, ok := attrs[spec.Name]
		if !ok {
			if spec.Required {
				p.add("attributes."+spec.Name, "required by thing type %q", tt.Name)
			}
			continue
		}
		if spec.Pattern != "" {
			re, err := regexp.Compile(`^(?:` + spec.Pattern + `)$`)
			if err == nil && !re.MatchString(v) {
				p.add("attributes."+spec.Name, "%q does not match %q required by thing type %q", truncate(v), spec.Pattern, tt.Name)
			}
		}
	}
}

func (s *Service) thingType(ctx context.Context, tx *store.Tx, name string, p *problems) (*store.ThingType, error) {
	if name == "" {
		return nil, nil
	}
	tt, err := tx.GetThingType(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		p.add("thingType", "thing type %q does not exist", truncate(name))
		return nil, nil
	}
	return tt, err
}

// CreateThing registers a thing.
func (s *Service) CreateThing(ctx context.Context, in NewThing) (*store.Thing, error) {
	var th *store.Thing
	err := s.change(ctx, "thing.created", func(tx *store.Tx) (string, any, error) {
		var err error
		if th, err = s.CreateThingInTx(ctx, tx, in); err != nil {
			return "", nil, err
		}
		return "thing/" + th.Name, map[string]any{"thingType": th.ThingType, "attributes": th.Attributes, "state": th.State}, nil
	})
	if err != nil {
		return nil, err
	}
	return th, nil
}

// Thing returns a thing by name.
func (s *Service) Thing(ctx context.Context, name string) (*store.Thing, error) {
	return s.store.GetThing(ctx, name)
}

// Things lists things.
func (s *Service) Things(ctx context.Context, f store.ThingFilter) ([]store.Thing, error) {
	return s.store.ListThings(ctx, f)
}

// UpdateThing applies patch to the thing if ifVersion is 0 or current.
func (s *Service) UpdateThing(ctx context.Context, name string, ifVersion int64, patch ThingPatch) (*store.Thing, error) {
	var out *store.Thing
	err := s.change(ctx, "thing.updated", func(tx *store.Tx) (string, any, error) {
		th, err := tx.GetThing(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, th.Version); err != nil {
			return "", nil, err
		}
		var p problems
		if patch.ThingType != nil {
			if *patch.ThingType != "" {
				checkName(&p, "thingType", *patch.ThingType)
			}
			th.ThingType = *patch.ThingType
		}
		if patch.State != nil {
			checkState(&p, *patch.State)
			th.State = *patch.State
		}
		if patch.Attributes != nil {
			if patch.Merge != nil && !*patch.Merge {
				th.Attributes = map[string]string{}
			}
			for k, v := range patch.Attributes {
				if v == nil {
					delete(th.Attributes, k)
				} else {
					th.Attributes[k] = *v
				}
			}
		}
		checkAttributes(&p, th.Attributes)
		if err := p.err(); err != nil {
			return "", nil, err
		}
		tt, err := s.thingType(ctx, tx, th.ThingType, &p)
		if err != nil {
			return "", nil, err
		}
		validateAgainstType(&p, th.Attributes, tt)
		if err := p.err(); err != nil {
			return "", nil, err
		}
		th.UpdatedAt = s.now().UTC()
		if err := tx.UpdateThing(ctx, th); err != nil {
			return "", nil, err
		}
		out = th
		return "thing/" + name, patch, nil
	})
	return out, err
}

// DeleteThing removes a thing (and its relationships and memberships).
func (s *Service) DeleteThing(ctx context.Context, name string, ifVersion int64) error {
	return s.change(ctx, "thing.deleted", func(tx *store.Tx) (string, any, error) {
		th, err := tx.GetThing(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, th.Version); err != nil {
			return "", nil, err
		}
		return "thing/" + name, nil, tx.DeleteThing(ctx, name)
	})
}

// ---- Thing types ----

// AuthMethods lists the authentication methods a thing type may allow.
func AuthMethods() []string {
	return []string{"client_secret", "private_key_jwt", "certificate", "custom_authorizer", "access_token"}
}

// maxScopeDescription bounds the plain-language description of a scope.
const maxScopeDescription = 200

// ThingTypeSpec is the writable part of a thing type.
type ThingTypeSpec struct {
	Name            string                `json:"name"`
	Description     string                `json:"description,omitempty"`
	AttributeSchema []store.AttributeSpec `json:"attributeSchema,omitempty"`
	DefaultPolicies []string              `json:"defaultPolicies,omitempty"`
	AuthMethods     []string              `json:"authMethods,omitempty"`
	Scopes          []string              `json:"scopes,omitempty"`
	// ScopeDescriptions says, for the person asked to approve a device,
	// what each scope lets a thing do ("publish": "Send its readings").
	ScopeDescriptions map[string]string `json:"scopeDescriptions,omitempty"`
	// ApproverRelation is recorded between a user and a thing of this type
	// when the user approves its device authorization: owner, operator,
	// viewer or "" for none.
	ApproverRelation string `json:"approverRelation,omitempty"`
	// KeyAlgorithm of keys the registration gateway generates for things
	// of this type: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072,
	// rsa-4096, or "" for the server's default.
	KeyAlgorithm string `json:"keyAlgorithm,omitempty"`
}

// ThingTypePatch changes a thing type; nil fields are left alone.
type ThingTypePatch struct {
	Description     *string                `json:"description,omitempty"`
	AttributeSchema *[]store.AttributeSpec `json:"attributeSchema,omitempty"`
	DefaultPolicies *[]string              `json:"defaultPolicies,omitempty"`
	AuthMethods     *[]string              `json:"authMethods,omitempty"`
	Scopes          *[]string              `json:"scopes,omitempty"`
	// ScopeDescriptions replaces the descriptions (an empty object clears them).
	ScopeDescriptions *map[string]string `json:"scopeDescriptions,omitempty"`
	ApproverRelation  *string            `json:"approverRelation,omitempty"`
	KeyAlgorithm      *string            `json:"keyAlgorithm,omitempty"`
}

func checkThingType(p *problems, tt *store.ThingType) {
	checkName(p, "name", tt.Name)
	checkDescription(p, tt.Description)
	if len(tt.AttributeSchema) > MaxAttributes {
		p.add("attributeSchema", "%d attributes, at most %d allowed", len(tt.AttributeSchema), MaxAttributes)
	}
	seen := map[string]bool{}
	for i, a := range tt.AttributeSchema {
		field := fmt.Sprintf("attributeSchema[%d]", i)
		if !attrNameRE.MatchString(a.Name) {
			p.add(field, "attribute name %q is invalid", truncate(a.Name))
		}
		if seen[a.Name] {
			p.add(field, "attribute %q is listed twice", truncate(a.Name))
		}
		seen[a.Name] = true
		if len(a.Pattern) > maxPatternLength {
			p.add(field, "pattern is longer than %d bytes", maxPatternLength)
		} else if _, err := regexp.Compile(a.Pattern); err != nil {
			p.add(field, "pattern does not compile: %v", err)
		}
	}
	checkList(p, "defaultPolicies", tt.DefaultPolicies, ValidName, "policy name")
	checkList(p, "authMethods", tt.AuthMethods, func(m string) bool { return slices.Contains(AuthMethods(), m) }, "authentication method (want one of "+strings.Join(AuthMethods(), ", ")+")")
	checkList(p, "scopes", tt.Scopes, scopeRE.MatchString, "scope")
	for scope, d := range tt.ScopeDescriptions {
		switch {
		case !slices.Contains(tt.Scopes, scope):
			p.add("scopeDescriptions", "%q is not one of the type's scopes", truncate(scope))
		case strings.TrimSpace(d) == "" || utf8.RuneCountInString(d) > maxScopeDescription:
			p.add("scopeDescriptions", "the description of %q must be 1 to %d characters", truncate(scope), maxScopeDescription)
		}
	}
	switch tt.ApproverRelation {
	case "", RelOwner, RelOperator, RelViewer:
	default:
		p.add("approverRelation", "%q is not owner, operator, viewer or empty", truncate(tt.ApproverRelation))
	}
	if tt.KeyAlgorithm != "" && !slices.Contains(pki.KeyAlgorithms(), pki.KeyAlgorithm(tt.KeyAlgorithm)) {
		var names []string
		for _, a := range pki.KeyAlgorithms() {
			names = append(names, string(a))
		}
		p.add("keyAlgorithm", "%q is not one of %s (or empty for the default)", truncate(tt.KeyAlgorithm), strings.Join(names, ", "))
	}
}

// CreateThingType registers a thing type.
func (s *Service) CreateThingType(ctx context.Context, in ThingTypeSpec) (*store.ThingType, error) {
	now := s.now().UTC()
	tt := &store.ThingType{Name: in.Name, Description: in.Description, AttributeSchema: in.AttributeSchema,
		DefaultPolicies: in.DefaultPolicies, AuthMethods: in.AuthMethods, Scopes: in.Scopes, ScopeDescriptions: in.ScopeDescriptions, ApproverRelation: in.ApproverRelation, KeyAlgorithm: in.KeyAlgorithm, CreatedAt: now, UpdatedAt: now}
	var p problems
	checkThingType(&p, tt)
	if err := p.err(); err != nil {
		return nil, err
	}
	err := s.change(ctx, "thingtype.created", func(tx *store.Tx) (string, any, error) {
		return "thingtype/" + tt.Name, in, tx.CreateThingType(ctx, tt)
	})
	if err != nil {
		return nil, err
	}
	return s.store.GetThingType(ctx, tt.Name)
}

// ThingType returns a thing type by name.
func (s *Service) ThingType(ctx context.Context, name string) (*store.ThingType, error) {
	return s.store.GetThingType(ctx, name)
}

// ThingTypes lists thing types.
func (s *Service) ThingTypes(ctx context.Context, p store.Page) ([]store.ThingType, error) {
	return s.store.ListThingTypes(ctx, p)
}

// UpdateThingType applies patch if ifVersion is 0 or current.
func (s *Service) UpdateThingType(ctx context.Context, name string, ifVersion int64, patch ThingTypePatch) (*store.ThingType, error) {
	var out *store.ThingType
	err := s.change(ctx, "thingtype.updated", func(tx *store.Tx) (string, any, error) {
		tt, err := tx.GetThingType(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, tt.Version); err != nil {
			return "", nil, err
		}
		if patch.Description != nil {
			tt.Description = *patch.Description
		}
		if patch.AttributeSchema != nil {
			tt.AttributeSchema = *patch.AttributeSchema
		}
		if patch.DefaultPolicies != nil {
			tt.DefaultPolicies = *patch.DefaultPolicies
		}
		if patch.AuthMethods != nil {
			tt.AuthMethods = *patch.AuthMethods
		}
		if patch.Scopes != nil {
			tt.Scopes = *patch.Scopes
		}
		if patch.ScopeDescriptions != nil {
			tt.ScopeDescriptions = *patch.ScopeDescriptions
		}
		if patch.ApproverRelation != nil {
			tt.ApproverRelation = *patch.ApproverRelation
		}
		if patch.KeyAlgorithm != nil {
			tt.KeyAlgorithm = *patch.KeyAlgorithm
		}
		var p problems
		checkThingType(&p, tt)
		if err := p.err(); err != nil {
			return "", nil, err
		}
		tt.UpdatedAt = s.now().UTC()
		if err := tx.UpdateThingType(ctx, tt); err != nil {
			return "", nil, err
		}
		out = tt
		return "thingtype/" + name, patch, nil
	})
	return out, err
}

// DeleteThingType removes an unused thing type.
func (s *Service) DeleteThingType(ctx context.Context, name string, ifVersion int64) error {
	return s.change(ctx, "thingtype.deleted", func(tx *store.Tx) (string, any, error) {
		tt, err := tx.GetThingType(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, tt.Version); err != nil {
			return "", nil, err
		}
		return "thingtype/" + name, nil, tx.DeleteThingType(ctx, name)
	})
}

func contextWithSystemActor(ctx context.Context) context.Context {
	return events.WithActor(ctx, "system:bootstrap")
}
