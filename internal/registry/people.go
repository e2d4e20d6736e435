package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// PeoplePolicyName is the stored policy that bootstrap attaches to every
// user (target kind all-users): what people may do with the things they
// have relationships with. Operators edit it like any other policy, except
// that its default version must let people connect as themselves (see
// RequirePolicy).
const PeoplePolicyName = "gatehouse-people"

// PeoplePolicyDocument is the first version of the gatehouse-people policy.
// A person connects with the client id <username>~<anything> ("~" occurs in
// neither usernames nor thing names, so a person can never take over a
// thing's or another person's MQTT session); owners and operators of a thing
// read its telemetry and send it commands, viewers only read its telemetry.
const PeoplePolicyDocument = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ConnectAsSelf", "Effect": "Allow", "Action": "iot:Connect",
     "Resource": "client/${gatehouse:User.Name}~*"},
    {"Sid": "WatchTelemetry", "Effect": "Allow", "Action": "iot:Subscribe",
     "Resource": ["topicfilter/things/${gatehouse:User.Things.owner}/telemetry/*",
                  "topicfilter/things/${gatehouse:User.Things.operator}/telemetry/*",
                  "topicfilter/things/${gatehouse:User.Things.viewer}/telemetry/*"]},
    {"Sid": "ReceiveTelemetry", "Effect": "Allow", "Action": "iot:Receive",
     "Resource": ["topic/things/${gatehouse:User.Things.owner}/telemetry",
                  "topic/things/${gatehouse:User.Things.owner}/telemetry/*",
                  "topic/things/${gatehouse:User.Things.operator}/telemetry",
                  "topic/things/${gatehouse:User.Things.operator}/telemetry/*",
                  "topic/things/${gatehouse:User.Things.viewer}/telemetry",
                  "topic/things/${gatehouse:User.Things.viewer}/telemetry/*"]},
    {"Sid": "SendCommands", "Effect": "Allow", "Action": "iot:Publish",
     "Resource": ["topic/things/${gatehouse:User.Things.owner}/commands",
                  "topic/things/${gatehouse:User.Things.owner}/commands/*",
                  "topic/things/${gatehouse:User.Things.operator}/commands",
                  "topic/things/${gatehouse:User.Things.operator}/commands/*"]}
  ]
}`

// AllUsersTarget is the target of a TargetAllUsers attachment.
const AllUsersTarget = "*"

// checkUserTarget validates a user or all-users attachment target.
func checkUserTarget(ctx context.Context, tx *store.Tx, p *problems, kind, target string) error {
	if kind == store.TargetAllUsers {
		if target != AllUsersTarget {
			p.add("target", "the target of an all-users attachment is %q, not %q", AllUsersTarget, truncate(target))
		}
		return nil
	}
	if _, err := tx.GetUser(ctx, target); errors.Is(err, store.ErrNotFound) {
		p.add("target", "user %q does not exist", truncate(target))
	} else if err != nil {
		return err
	}
	return nil
}

// userContext adds the policy targets of a user - the user, their groups
// and all users - and returns the user's policy variables: their groups and
// the things they have each relation with.
func (s *Service) userContext(ctx context.Context, username string, targets map[string][]string) (*policy.User, error) {
	u := &policy.User{Name: username, Things: map[string][]string{}}
	targets[store.TargetUser] = []string{username}
	targets[store.TargetAllUsers] = []string{AllUsersTarget}
	groups, err := s.store.GroupsOf(ctx, store.KindUser, username)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		u.Groups = append(u.Groups, g.Group)
		targets[store.TargetGroup] = append(targets[store.TargetGroup], g.Group)
	}
	rels, err := s.store.ListRelationships(ctx, store.RelationshipFilter{SubjectKind: store.KindUser, Subject: username, ObjectKind: store.KindThing})
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		u.Things[r.Relation] = append(u.Things[r.Relation], r.Object)
	}
	return u, nil
}

// gatewayChildren returns the things a gateway thing acts for.
func (s *Service) gatewayChildren(ctx context.Context, gateway string) ([]string, error) {
	rels, err := s.store.ListRelationships(ctx, store.RelationshipFilter{SubjectKind: store.KindThing, Subject: gateway, Relation: RelGateway, ObjectKind: store.KindThing})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rels {
		out = append(out, r.Object)
	}
	return out, nil
}

// IsGatewayOf reports whether thing gateway has a gateway relationship with
// thing child: the gateway may then act for the child.
func (s *Service) IsGatewayOf(ctx context.Context, gateway, child string) (bool, error) {
	children, err := s.gatewayChildren(ctx, gateway)
	if err != nil {
		return false, err
	}
	return slices.Contains(children, child), nil
}

// ActiveUser returns a user who exists and is not disabled; a person's
// token is good only while that holds. ErrNotFound otherwise.
func (s *Service) ActiveUser(ctx context.Context, username string) (*store.User, error) {
	u, err := s.store.GetUser(ctx, username)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, fmt.Errorf("user %q is disabled: %w", username, store.ErrNotFound)
	}
	return u, nil
}

// ensurePeoplePolicy creates the gatehouse-people policy and attaches it to
// all users, unless a policy of that name exists.
func (s *Service) ensurePeoplePolicy(ctx context.Context) error {
	if _, err := s.store.GetPolicy(ctx, PeoplePolicyName); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err := s.CreatePolicy(ctx, NewPolicy{Name: PeoplePolicyName, Description: "What people may do with the things they own, operate or view (bootstrap default; edit freely).", Document: []byte(PeoplePolicyDocument)})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("registry: bootstrap policy %s: %w", PeoplePolicyName, err)
	}
	if _, err := s.AttachPolicy(ctx, PeoplePolicyName, store.TargetAllUsers, AllUsersTarget); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("registry: attach bootstrap policy %s: %w", PeoplePolicyName, err)
	}
	return nil
}
