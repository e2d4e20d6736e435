package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// MaxPolicyVersions is how many versions a policy keeps, as in AWS IoT.
const MaxPolicyVersions = 5

// NewPolicy is what CreatePolicy needs.
type NewPolicy struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Document is the AWS IoT policy JSON.
	Document []byte `json:"-"`
}

// parseDocument validates an AWS IoT policy document, turning parse errors
// into InvalidError so callers answer 400 with the reason.
func parseDocument(doc []byte) (*policy.Document, error) {
	d, err := policy.Parse(doc)
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) {
			field := "document"
			if pe.Statement >= 0 {
				field = fmt.Sprintf("document.Statement[%d]", pe.Statement)
			}
			return nil, &InvalidError{Problems: []Problem{{Field: field, Message: pe.Msg}}}
		}
		return nil, &InvalidError{Problems: []Problem{{Field: "document", Message: err.Error()}}}
	}
	return d, nil
}

// CreatePolicy stores a new policy whose document becomes version 1.
func (s *Service) CreatePolicy(ctx context.Context, in NewPolicy) (*store.Policy, error) {
	var pol *store.Policy
	err := s.change(ctx, "policy.created", func(tx *store.Tx) (string, any, error) {
		var err error
		pol, err = s.CreatePolicyInTx(ctx, tx, in)
		return "policy/" + in.Name, map[string]any{"versionId": 1}, err
	})
	if err != nil {
		return nil, err
	}
	return pol, nil
}

// Policy returns a policy.
func (s *Service) Policy(ctx context.Context, name string) (*store.Policy, error) {
	return s.store.GetPolicy(ctx, name)
}

// Policies lists policies.
func (s *Service) Policies(ctx context.Context, p store.Page) ([]store.Policy, error) {
	return s.store.ListPolicies(ctx, p)
}

// PolicyVersions lists a policy's versions, newest first.
func (s *Service) PolicyVersions(ctx context.Context, name string) ([]store.PolicyVersion, error) {
	if _, err := s.store.GetPolicy(ctx, name); err != nil {
		return nil, err
	}
	return s.store.ListPolicyVersions(ctx, name)
}

// CreatePolicyVersion adds a document to a policy, making it the default if
// setDefault. Like AWS IoT, a policy keeps at most MaxPolicyVersions
// versions: delete one first.
func (s *Service) CreatePolicyVersion(ctx context.Context, name string, ifVersion int64, doc []byte, setDefault bool) (*store.PolicyVersion, error) {
	if _, err := parseDocument(doc); err != nil {
		return nil, err
	}
	if setDefault {
		if err := s.checkBuiltin(name, doc); err != nil {
			return nil, err
		}
	}
	var out *store.PolicyVersion
	err := s.change(ctx, "policy.version_created", func(tx *store.Tx) (string, any, error) {
		pol, err := tx.GetPolicy(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, pol.Version); err != nil {
			return "", nil, err
		}
		versions, err := tx.ListPolicyVersions(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if len(versions) >= MaxPolicyVersions {
			return "", nil, &InvalidError{Problems: []Problem{{Field: "versions", Message: fmt.Sprintf("policy %q has %d versions, the most allowed: delete one first", name, len(versions))}}}
		}
		v := &store.PolicyVersion{Policy: name, VersionID: pol.NextVersion, Document: doc, CreatedAt: s.now()}
		if err := tx.AddPolicyVersion(ctx, v); err != nil {
			return "", nil, err
		}
		pol.NextVersion++
		if setDefault {
			pol.DefaultVersion = v.VersionID
			v.IsDefault = true
		}
		pol.UpdatedAt = s.now()
		if err := tx.UpdatePolicy(ctx, pol); err != nil {
			return "", nil, err
		}
		out = v
		return "policy/" + name, map[string]any{"versionId": v.VersionID, "default": setDefault}, nil
	})
	return out, err
}

// SetDefaultPolicyVersion makes an existing version the one in force.
func (s *Service) SetDefaultPolicyVersion(ctx context.Context, name string, ifVersion, versionID int64) (*store.Policy, error) {
	var out *store.Policy
	err := s.change(ctx, "policy.default_set", func(tx *store.Tx) (string, any, error) {
		pol, err := tx.GetPolicy(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, pol.Version); err != nil {
			return "", nil, err
		}
		doc, err := versionDocument(ctx, tx, name, versionID)
		if err != nil {
			return "", nil, err
		}
		if err := s.checkBuiltin(name, doc); err != nil {
			return "", nil, err
		}
		pol.DefaultVersion, pol.UpdatedAt = versionID, s.now()
		out = pol
		return "policy/" + name, map[string]any{"versionId": versionID}, tx.UpdatePolicy(ctx, pol)
	})
	return out, err
}

// DeletePolicyVersion deletes a version that is not the default.
func (s *Service) DeletePolicyVersion(ctx context.Context, name string, versionID int64) error {
	return s.change(ctx, "policy.version_deleted", func(tx *store.Tx) (string, any, error) {
		pol, err := tx.GetPolicy(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if pol.DefaultVersion == versionID {
			return "", nil, fmt.Errorf("version %d is the default version of policy %q: %w", versionID, name, store.ErrInUse)
		}
		return "policy/" + name, map[string]any{"versionId": versionID}, tx.DeletePolicyVersion(ctx, name, versionID)
	})
}

// DeletePolicy deletes a policy. Like AWS IoT, a policy that is still
// attached, or named by a thing type, cannot be deleted.
func (s *Service) DeletePolicy(ctx context.Context, name string, ifVersion int64) error {
	return s.change(ctx, "policy.deleted", func(tx *store.Tx) (string, any, error) {
		pol, err := tx.GetPolicy(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, pol.Version); err != nil {
			return "", nil, err
		}
		if err := s.checkBuiltinDelete(name); err != nil {
			return "", nil, err
		}
		att, err := tx.ListPolicyAttachments(ctx, store.AttachmentFilter{Policy: name})
		if err != nil {
			return "", nil, err
		}
		if len(att) > 0 {
			return "", nil, fmt.Errorf("policy %q is attached to %d targets: detach it first: %w", name, len(att), store.ErrInUse)
		}
		for after := ""; ; {
			tts, err := tx.ListThingTypes(ctx, store.Page{After: after, Limit: 1000})
			if err != nil {
				return "", nil, err
			}
			for _, tt := range tts {
				if slices.Contains(tt.DefaultPolicies, name) {
					return "", nil, fmt.Errorf("policy %q is a default policy of thing type %q: %w", name, tt.Name, store.ErrInUse)
				}
			}
			if len(tts) < 1000 {
				break
			}
			after = tts[len(tts)-1].Name
		}
		return "policy/" + name, nil, tx.DeletePolicy(ctx, name)
	})
}

// checkTarget validates an attachment target and that it exists.
func checkTarget(ctx context.Context, tx *store.Tx, p *problems, kind, target string) error {
	switch kind {
	case store.TargetThing:
		if _, err := tx.GetThing(ctx, target); errors.Is(err, store.ErrNotFound) {
			p.add("target", "thing %q does not exist", truncate(target))
		} else if err != nil {
			return err
		}
	case store.TargetGroup:
		if _, err := tx.GetGroup(ctx, target); errors.Is(err, store.ErrNotFound) {
			p.add("target", "group %q does not exist", truncate(target))
		} else if err != nil {
			return err
		}
	case store.TargetCertificate:
		if b, err := hex.DecodeString(target); err != nil || len(b) != 32 || strings.ToLower(target) != target {
			p.add("target", "%q is not a lowercase hex SHA-256 certificate fingerprint", truncate(target))
		}
	case store.TargetScope:
		if !scopeRE.MatchString(target) {
			p.add("target", "%q is not a valid OAuth scope", truncate(target))
		}
	case store.TargetUser, store.TargetAllUsers:
		return checkUserTarget(ctx, tx, p, kind, target)
	default:
		p.add("targetKind", "%q is not thing, group, certificate, scope, user or all-users (thing types name policies in defaultPolicies)", truncate(kind))
	}
	return nil
}

// AttachPolicy attaches a policy to a thing, group, certificate or scope.
func (s *Service) AttachPolicy(ctx context.Context, name, kind, target string) (*store.PolicyAttachment, error) {
	var a *store.PolicyAttachment
	err := s.change(ctx, "policy.attached", func(tx *store.Tx) (string, any, error) {
		var err error
		a, err = s.AttachPolicyInTx(ctx, tx, name, kind, target)
		return "policy/" + name, map[string]string{"targetKind": kind, "target": target}, err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DetachPolicy removes an attachment.
func (s *Service) DetachPolicy(ctx context.Context, name, kind, target string) error {
	return s.change(ctx, "policy.detached", func(tx *store.Tx) (string, any, error) {
		return "policy/" + name, map[string]string{"targetKind": kind, "target": target},
			tx.DetachPolicy(ctx, store.PolicyAttachment{Policy: name, TargetKind: kind, Target: target})
	})
}

// PolicyAttachments lists attachments.
func (s *Service) PolicyAttachments(ctx context.Context, f store.AttachmentFilter) ([]store.PolicyAttachment, error) {
	return s.store.ListPolicyAttachments(ctx, f)
}

// Subject names what a principal authenticated as; it decides which
// policies apply.
type Subject struct {
	// ThingName is the registry thing, or "" for none.
	ThingName string
	// CertificateFingerprint is the client certificate's SHA-256, or "".
	CertificateFingerprint string
	// Scopes are the OAuth scopes of the access token, if any.
	Scopes []string
	// UserName is the user a person's token was issued to, or "".
	UserName string
}

// Resolved is the compiled policy set for a subject, with the thing (nil if
// none) and the names of the policies that went into it.
type Resolved struct {
	Set      *policy.Set
	Thing    *store.Thing
	Policies []string
	// Named are the policies that apply to the subject, sorted, including
	// those a thing type names before they exist (Policies are the ones
	// that did exist).
	Named []string
	// Groups are the groups the thing or the person belongs to.
	Groups []string
	// User is the person's name, groups and related things (nil for
	// things); Children are the thing's gateway children.
	User     *policy.User
	Children []string
}

// ResolvePolicies gathers the policies that apply to a subject - the thing
// type's default policies and those attached to the thing, its groups, its
// certificate and its token's scopes - and compiles them. It does not look
// at the thing's state: callers refuse disabled things before asking.
func (s *Service) ResolvePolicies(ctx context.Context, sub Subject, opts policy.Options) (*Resolved, error) {
	key := subjectKey(sub, opts)
	now := s.now()
	if r := s.cache.getResolved(key, now); r != nil {
		return r, nil
	}
	r, err := s.resolvePolicies(ctx, sub, opts)
	if err != nil {
		return nil, err
	}
	s.cache.putResolved(key, r, now)
	return r, nil
}

func (s *Service) resolvePolicies(ctx context.Context, sub Subject, opts policy.Options) (*Resolved, error) {
	var (
		names    []string
		thing    *store.Thing
		targets  = map[string][]string{}
		user     *policy.User
		children []string
		err      error
	)
	if sub.ThingName != "" {
		th, err := s.store.GetThing(ctx, sub.ThingName)
		if err != nil {
			return nil, err
		}
		thing = th
		targets[store.TargetThing] = []string{th.Name}
		if th.ThingType != "" {
			tt, err := s.store.GetThingType(ctx, th.ThingType)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if tt != nil {
				names = append(names, tt.DefaultPolicies...)
			}
		}
		groups, err := s.store.GroupsOf(ctx, store.KindThing, th.Name)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			targets[store.TargetGroup] = append(targets[store.TargetGroup], g.Group)
		}
		if children, err = s.gatewayChildren(ctx, th.Name); err != nil {
			return nil, err
		}
	}
	if sub.UserName != "" {
		if user, err = s.userContext(ctx, sub.UserName, targets); err != nil {
			return nil, err
		}
	}
	if sub.CertificateFingerprint != "" {
		targets[store.TargetCertificate] = []string{sub.CertificateFingerprint}
	}
	if len(sub.Scopes) > 0 {
		targets[store.TargetScope] = sub.Scopes
	}
	attached, err := s.store.PoliciesAttachedTo(ctx, targets)
	if err != nil {
		return nil, err
	}
	names = append(names, attached...)
	slices.Sort(names)
	names = slices.Compact(names)
	docs, err := s.policyDocuments(ctx, names)
	if err != nil {
		return nil, err
	}
	r := &Resolved{Thing: thing, Named: names, Groups: targets[store.TargetGroup], User: user, Children: children}
	return s.compileNamed(r, nil, docs, opts)
}

// policyDocuments reads the default documents of the named policies in one
// query, parsed (once per content). Names of policies that do not exist
// are left out.
func (s *Service) policyDocuments(ctx context.Context, names []string) (map[string]*policy.Document, error) {
	raw, err := s.store.DefaultPolicyDocuments(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*policy.Document, len(raw))
	for n, doc := range raw {
		d, err := s.cache.parse(doc)
		if err != nil {
			return nil, fmt.Errorf("registry: stored policy %q: %w", n, err)
		}
		out[n] = d
	}
	return out, nil
}

// compileNamed returns a copy of res whose policy set is compiled from
// docs (a name missing there does not exist) for res.Named plus add.
// Sets are compiled once per distinct combination of documents.
func (s *Service) compileNamed(res *Resolved, add []string, docs map[string]*policy.Document, opts policy.Options) (*Resolved, error) {
	out := *res
	if len(add) > 0 {
		out.Named = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(res.Named), add...))))
	}
	named := make([]policy.NamedDocument, 0, len(out.Named))
	out.Policies = make([]string, 0, len(out.Named))
	for _, n := range out.Named {
		d, ok := docs[n]
		if !ok {
			continue // a thing type may name a policy not created yet
		}
		named = append(named, policy.NamedDocument{Name: n, Document: d})
		out.Policies = append(out.Policies, n)
	}
	set, err := s.cache.compile(opts, named)
	if err != nil {
		return nil, fmt.Errorf("registry: compile policies: %w", err)
	}
	out.Set = set
	return &out, nil
}

// Recompiler recompiles resolved subjects against policy documents read
// once, without reading the subjects again: what a policy's new default
// version, or a policy newly attached to a subject, changes. Subjects
// that had the same policies share the work: a policy edit concerning
// 100,000 sessions compiles once per distinct combination. Safe for
// concurrent use.
type Recompiler struct {
	s    *Service
	docs map[string]*policy.Document
	opts policy.Options
	mu   sync.Mutex
	memo map[recompiled]*Resolved
}

// recompiled keys Recompiler's memo: the policies a subject named and
// those added.
type recompiled struct{ named, add string }

// NewRecompiler reads the default documents of names - every policy the
// subjects to recompile name, and those to add - in one query.
func (s *Service) NewRecompiler(ctx context.Context, names []string, opts policy.Options) (*Recompiler, error) {
	docs, err := s.policyDocuments(ctx, names)
	if err != nil {
		return nil, err
	}
	return &Recompiler{s: s, docs: docs, opts: opts, memo: map[recompiled]*Resolved{}}, nil
}

// Recompile returns a copy of res bound to the documents read, with the
// policies add attached too.
func (r *Recompiler) Recompile(res *Resolved, add []string) (*Resolved, error) {
	k := recompiled{named: strings.Join(res.Named, "\x00"), add: strings.Join(add, "\x00")}
	r.mu.Lock()
	done := r.memo[k]
	r.mu.Unlock()
	if done == nil {
		var err error
		if done, err = r.s.compileNamed(res, add, r.docs, r.opts); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.memo[k] = done
		r.mu.Unlock()
	}
	out := *res
	out.Set, out.Policies, out.Named = done.Set, done.Policies, done.Named
	return &out, nil
}

// PolicyContext builds the evaluation context for a resolved subject.
func PolicyContext(r *Resolved, clientID string, sourceIP netip.Addr, cert *policy.Certificate, tok *policy.Token) policy.Context {
	c := policy.Context{ClientID: clientID, SourceIP: sourceIP, Certificate: cert, Token: tok}
	if r.Thing != nil {
		c.Thing = &policy.Thing{Name: r.Thing.Name, TypeName: r.Thing.ThingType, Attributes: r.Thing.Attributes, Children: r.Children}
	}
	c.User = r.User
	return c
}

// CompileStoredPolicy compiles the default version of the stored policy
// name on its own: for principals bound to one fixed policy rather than to
// what is attached to them (the broker's anonymous test listener). A
// missing policy gives store.ErrNotFound.
func (s *Service) CompileStoredPolicy(ctx context.Context, name string, opts policy.Options) (*policy.Set, error) {
	docs, err := s.store.DefaultPolicyDocuments(ctx, []string{name})
	if err != nil {
		return nil, fmt.Errorf("registry: policy %q: %w", name, err)
	}
	raw, ok := docs[name]
	if !ok {
		return nil, fmt.Errorf("registry: policy %q: %w", name, store.ErrNotFound)
	}
	d, err := policy.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("registry: stored policy %q: %w", name, err)
	}
	set, err := opts.Compile(policy.NamedDocument{Name: name, Document: d})
	if err != nil {
		return nil, fmt.Errorf("registry: compile policy %q: %w", name, err)
	}
	return set, nil
}
