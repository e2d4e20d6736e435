package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// NewGroup is what CreateGroup needs.
type NewGroup struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// CreateGroup registers a group.
func (s *Service) CreateGroup(ctx context.Context, in NewGroup) (*store.Group, error) {
	var p problems
	checkName(&p, "name", in.Name)
	checkDescription(&p, in.Description)
	if err := p.err(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	g := &store.Group{Name: in.Name, Description: in.Description, CreatedAt: now, UpdatedAt: now}
	err := s.change(ctx, "group.created", func(tx *store.Tx) (string, any, error) {
		return "group/" + g.Name, in, tx.CreateGroup(ctx, g)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Group returns a group by name.
func (s *Service) Group(ctx context.Context, name string) (*store.Group, error) {
	return s.store.GetGroup(ctx, name)
}

// Groups lists groups.
func (s *Service) Groups(ctx context.Context, p store.Page) ([]store.Group, error) {
	return s.store.ListGroups(ctx, p)
}

// UpdateGroup sets a group's description if ifVersion is 0 or current.
func (s *Service) UpdateGroup(ctx context.Context, name string, ifVersion int64, description string) (*store.Group, error) {
	var p problems
	checkDescription(&p, description)
	if err := p.err(); err != nil {
		return nil, err
	}
	var out *store.Group
	err := s.change(ctx, "group.updated", func(tx *store.Tx) (string, any, error) {
		g, err := tx.GetGroup(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, g.Version); err != nil {
			return "", nil, err
		}
		g.Description = description
		g.UpdatedAt = s.now().UTC()
		out = g
		return "group/" + name, map[string]string{"description": description}, tx.UpdateGroup(ctx, g)
	})
	return out, err
}

// DeleteGroup removes a group and its memberships.
func (s *Service) DeleteGroup(ctx context.Context, name string, ifVersion int64) error {
	return s.change(ctx, "group.deleted", func(tx *store.Tx) (string, any, error) {
		g, err := tx.GetGroup(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, g.Version); err != nil {
			return "", nil, err
		}
		return "group/" + name, nil, tx.DeleteGroup(ctx, name)
	})
}

// principalExists checks that a user or thing exists, adding a problem if
// the kind is unknown or the principal is missing.
func principalExists(ctx context.Context, tx *store.Tx, p *problems, field, kind, name string) error {
	var err error
	switch kind {
	case store.KindUser:
		_, err = tx.GetUser(ctx, name)
	case store.KindThing:
		_, err = tx.GetThing(ctx, name)
	default:
		p.add(field+"Kind", "%q is not user or thing", truncate(kind))
		return nil
	}
	if errors.Is(err, store.ErrNotFound) {
		p.add(field, "%s %q does not exist", kind, truncate(name))
		return nil
	}
	return err
}

// AddGroupMember adds an existing user or thing to a group.
func (s *Service) AddGroupMember(ctx context.Context, group, kind, member string) (*store.GroupMember, error) {
	m := &store.GroupMember{Group: group, Kind: kind, Member: member, CreatedAt: s.now().UTC()}
	err := s.change(ctx, "group.member_added", func(tx *store.Tx) (string, any, error) {
		if _, err := tx.GetGroup(ctx, group); err != nil {
			return "", nil, err
		}
		var p problems
		if err := principalExists(ctx, tx, &p, "member", kind, member); err != nil {
			return "", nil, err
		}
		if err := p.err(); err != nil {
			return "", nil, err
		}
		return "group/" + group, map[string]string{"kind": kind, "member": member}, tx.AddGroupMember(ctx, m)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// RemoveGroupMember removes a member from a group.
func (s *Service) RemoveGroupMember(ctx context.Context, group, kind, member string) error {
	return s.change(ctx, "group.member_removed", func(tx *store.Tx) (string, any, error) {
		return "group/" + group, map[string]string{"kind": kind, "member": member}, tx.RemoveGroupMember(ctx, group, kind, member)
	})
}

// GroupMembers lists a group's members.
func (s *Service) GroupMembers(ctx context.Context, group string) ([]store.GroupMember, error) {
	if _, err := s.store.GetGroup(ctx, group); err != nil {
		return nil, err
	}
	return s.store.ListGroupMembers(ctx, group)
}

// ---- Relationships ----

// Relations between principals.
const (
	RelOwner    = "owner"    // user -> thing
	RelOperator = "operator" // user -> thing
	RelViewer   = "viewer"   // user -> thing
	RelGateway  = "gateway"  // thing (gateway) -> thing (child)
)

// checkRelationship validates the kinds a relation joins.
func checkRelationship(p *problems, r store.Relationship) {
	switch r.Relation {
	case RelOwner, RelOperator, RelViewer:
		if r.SubjectKind != store.KindUser || r.ObjectKind != store.KindThing {
			p.add("relation", "%s joins a user to a thing, not %s to %s", r.Relation, truncate(r.SubjectKind), truncate(r.ObjectKind))
		}
	case RelGateway:
		if r.SubjectKind != store.KindThing || r.ObjectKind != store.KindThing {
			p.add("relation", "gateway joins a thing to a thing, not %s to %s", truncate(r.SubjectKind), truncate(r.ObjectKind))
		}
		if r.Subject == r.Object {
			p.add("object", "a thing cannot be its own gateway")
		}
	default:
		p.add("relation", "%q is not owner, operator, viewer or gateway", truncate(r.Relation))
	}
}

// AddRelationship records an edge between two existing principals.
func (s *Service) AddRelationship(ctx context.Context, r store.Relationship) (*store.Relationship, error) {
	var added *store.Relationship
	err := s.change(ctx, "relationship.added", func(tx *store.Tx) (string, any, error) {
		rel, err := s.AddRelationshipInTx(ctx, tx, r)
		if err != nil {
			return "", nil, err
		}
		added = rel
		return fmt.Sprintf("%s/%s", rel.ObjectKind, rel.Object), rel, nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// AddRelationshipInTx validates and inserts a relationship inside tx, a
// transaction the caller owns, with the same rules as AddRelationship
// (kinds, relation, an expiry in the future, subject and object exist).
// Like CreateThingInTx it records no event (the caller records
// relationship.added in the same transaction); after the commit the caller
// must call InvalidatePolicies, since the relationship changes what the
// subject's policies resolve to.
func (s *Service) AddRelationshipInTx(ctx context.Context, tx *store.Tx, r store.Relationship) (*store.Relationship, error) {
	var p problems
	checkRelationship(&p, r)
	if err := p.err(); err != nil {
		return nil, err
	}
	r.CreatedAt = s.now().UTC()
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(r.CreatedAt) {
		p.add("expiresAt", "%s is not in the future", r.ExpiresAt.Format(time.RFC3339))
		return nil, p.err()
	}
	r.ExpiresAt = r.ExpiresAt.UTC().Truncate(time.Microsecond)
	if err := principalExists(ctx, tx, &p, "subject", r.SubjectKind, r.Subject); err != nil {
		return nil, err
	}
	if err := principalExists(ctx, tx, &p, "object", r.ObjectKind, r.Object); err != nil {
		return nil, err
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := tx.AddRelationship(ctx, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RemoveRelationship deletes an edge.
func (s *Service) RemoveRelationship(ctx context.Context, r store.Relationship) error {
	return s.change(ctx, "relationship.removed", func(tx *store.Tx) (string, any, error) {
		return fmt.Sprintf("%s/%s", r.ObjectKind, r.Object), r, tx.RemoveRelationship(ctx, r)
	})
}

// Relationships lists edges matching f.
func (s *Service) Relationships(ctx context.Context, f store.RelationshipFilter) ([]store.Relationship, error) {
	if f.At.IsZero() {
		f.At = s.now()
	}
	return s.store.ListRelationships(ctx, f)
}
