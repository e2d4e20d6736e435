package registry

import (
	"context"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// CreateThingInTx validates and inserts a thing inside tx, a transaction
// the caller owns, with the same rules as CreateThing (name, attributes,
// state, the thing type's attribute schema). It records no event: the
// caller records its own (e.g. thing.registered) in the same transaction.
// It lets other services create a thing together with other records
// (certificates, token uses) so that a failure leaves nothing half-made.
func (s *Service) CreateThingInTx(ctx context.Context, tx *store.Tx, in NewThing) (*store.Thing, error) {
	var p problems
	checkName(&p, "name", in.Name)
	if in.ThingType != "" {
		checkName(&p, "thingType", in.ThingType)
	}
	checkAttributes(&p, in.Attributes)
	if in.State == "" {
		in.State = store.StateEnabled
	}
	checkState(&p, in.State)
	if err := p.err(); err != nil {
		return nil, err
	}
	tt, err := s.thingType(ctx, tx, in.ThingType, &p)
	if err != nil {
		return nil, err
	}
	validateAgainstType(&p, in.Attributes, tt)
	if err := p.err(); err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	th := &store.Thing{ID: id, Name: in.Name, ThingType: in.ThingType, Attributes: in.Attributes, State: in.State, CreatedAt: now, UpdatedAt: now}
	if th.Attributes == nil {
		th.Attributes = map[string]string{}
	}
	if err := tx.CreateThing(ctx, th); err != nil {
		return nil, err
	}
	return th, nil
}

// CreatePolicyInTx validates and stores a new policy inside tx, with
// CreatePolicy's rules and no event of its own: the caller records
// policy.created in the same transaction.
func (s *Service) CreatePolicyInTx(ctx context.Context, tx *store.Tx, in NewPolicy) (*store.Policy, error) {
	var p problems
	checkName(&p, "name", in.Name)
	checkDescription(&p, in.Description)
	if err := p.err(); err != nil {
		return nil, err
	}
	if _, err := parseDocument(in.Document); err != nil {
		return nil, err
	}
	now := s.now()
	pol := &store.Policy{Name: in.Name, Description: in.Description, CreatedAt: now, UpdatedAt: now}
	if err := tx.CreatePolicy(ctx, pol, in.Document); err != nil {
		return nil, err
	}
	return pol, nil
}

// AttachPolicyInTx attaches a policy inside tx, with AttachPolicy's rules
// and no event of its own: the caller records policy.attached.
func (s *Service) AttachPolicyInTx(ctx context.Context, tx *store.Tx, name, kind, target string) (*store.PolicyAttachment, error) {
	if _, err := tx.GetPolicy(ctx, name); err != nil {
		return nil, err
	}
	var p problems
	if err := checkTarget(ctx, tx, &p, kind, target); err != nil {
		return nil, err
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	a := &store.PolicyAttachment{Policy: name, TargetKind: kind, Target: target, CreatedAt: s.now()}
	return a, tx.AttachPolicy(ctx, a)
}
