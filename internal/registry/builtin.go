package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// PolicyRequirement is a request that the default version of a built-in
// policy must keep allowing: a version that would deny it is refused, so a
// deny-all version saved from the console cannot lock the lobby or every
// person out. Operators extend built-in policies by adding statements, or
// restrict what they allow beyond the requirements, as with any policy.
type PolicyRequirement struct {
	// Who needs it, for the error message ("lobby devices").
	Who      string
	Context  policy.Context
	Action   policy.Action
	Resource string
}

// builtinPolicies holds the requirements of built-in policies by name.
type builtinPolicies struct {
	mu   sync.Mutex
	reqs map[string][]PolicyRequirement
}

// RequirePolicy makes name a built-in policy whose default version must
// allow reqs: CreatePolicyVersion (as default) and SetDefaultPolicyVersion
// refuse a version that does not, and DeletePolicy refuses to delete it.
// The services that own built-in policies call it when they start.
func (s *Service) RequirePolicy(name string, reqs ...PolicyRequirement) {
	s.builtin.mu.Lock()
	defer s.builtin.mu.Unlock()
	if s.builtin.reqs == nil {
		s.builtin.reqs = map[string][]PolicyRequirement{}
	}
	s.builtin.reqs[name] = append(s.builtin.reqs[name], reqs...)
}

// requirements returns what policy name must allow (nil for a policy that
// is not built in).
func (s *Service) requirements(name string) []PolicyRequirement {
	s.builtin.mu.Lock()
	defer s.builtin.mu.Unlock()
	return slices.Clone(s.builtin.reqs[name])
}

// BuiltinPolicy reports whether name is a built-in policy (one that
// RequirePolicy protects).
func (s *Service) BuiltinPolicy(name string) bool {
	return len(s.requirements(name)) > 0
}

// checkBuiltin reports, as an InvalidError, every requirement of policy
// name that doc would no longer allow.
func (s *Service) checkBuiltin(name string, doc []byte) error {
	reqs := s.requirements(name)
	if len(reqs) == 0 {
		return nil
	}
	d, err := parseDocument(doc)
	if err != nil {
		return err
	}
	set, err := policy.Compile(policy.NamedDocument{Name: name, Document: d})
	if err != nil {
		return fmt.Errorf("registry: compile %s: %w", name, err)
	}
	var p problems
	for _, r := range reqs {
		if !set.Bind(r.Context).Allowed(r.Action, r.Resource) {
			p.add("document", "%s is a built-in policy and %s need %s on %q, which this version would deny: keep the statements that allow it (add statements, or attach another policy, to change the rest)",
				name, r.Who, r.Action, r.Resource)
		}
	}
	return p.err()
}

// checkBuiltinDelete refuses to delete a built-in policy.
func (s *Service) checkBuiltinDelete(name string) error {
	reqs := s.requirements(name)
	if len(reqs) == 0 {
		return nil
	}
	var who []string
	for _, r := range reqs {
		if !slices.Contains(who, r.Who) {
			who = append(who, r.Who)
		}
	}
	return fmt.Errorf("policy %q is built in (%s need it): %w", name, strings.Join(who, ", "), store.ErrInUse)
}

// requirePeoplePolicy makes gatehouse-people built in: whatever else an
// operator changes, people may still connect as themselves.
func (s *Service) requirePeoplePolicy() {
	const client = "someone~phone"
	s.RequirePolicy(PeoplePolicyName, PolicyRequirement{Who: "people", Action: policy.ActionConnect, Resource: client,
		Context: policy.Context{ClientID: client, User: &policy.User{Name: "someone", Things: map[string][]string{}}}})
}

// versionDocument returns the document of version versionID of policy name.
func versionDocument(ctx context.Context, tx *store.Tx, name string, versionID int64) ([]byte, error) {
	versions, err := tx.ListPolicyVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v.VersionID == versionID {
			return v.Document, nil
		}
	}
	return nil, fmt.Errorf("policy %q version %d: %w", name, versionID, store.ErrNotFound)
}
