package oauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// KindUser is the gatehouse:kind claim of a person's own access token: its
// sub is a username, not a thing or a client. Resource servers (the broker)
// tell people from things by it.
const KindUser = "user"

// actClaim is the RFC 8693 section 4.1 actor claim.
type actClaim struct {
	Subject string `json:"sub"`
}

// decorate adds the people and gateway claims of g to c.
func (g *grant) decorate(c *claims) {
	c.Kind, c.Roles = g.kind, g.roles
	if g.actor != "" {
		c.Act, c.Actor = &actClaim{Subject: g.actor}, g.actor
	}
}

// people copies the people and gateway claims to a verified token.
func (c *claims) people(at *AccessToken) {
	at.Kind, at.Roles = c.Kind, slices.Clone(c.Roles)
	switch {
	case c.Act != nil:
		at.Actor = c.Act.Subject
	case c.Actor != "":
		at.Actor = c.Actor
	}
}

// errUserInactive: the user a delegated grant is for is gone or disabled.
var errUserInactive = errors.New("oauth: the user no longer exists or is disabled")

// inactiveUser is the token endpoint's answer to errUserInactive.
func inactiveUser() error {
	return oidc.ErrInvalidGrant().WithDescription("the user no longer exists or is disabled")
}

// personGrant fills in the claims of a token a person gets through a client
// that is not a thing (the CLI, a registered app): gatehouse:kind=user and
// the user's roles. The user must exist and be enabled; it is returned (nil
// for a thing's grant).
func personGrant(ctx context.Context, tx *store.Tx, g *grant) (*store.User, error) {
	if g.thing != "" {
		return nil, nil // a thing acting with a person's approval stays the thing
	}
	u, err := tx.GetUser(ctx, g.subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil, errUserInactive
	}
	if err != nil {
		return nil, err
	}
	g.kind, g.roles = KindUser, slices.Clone(u.Roles)
	return u, nil
}

// peopleIntrospection adds the people and gateway claims to an
// introspection answer (RFC 7662 allows any claim of the token).
func peopleIntrospection(resp *oidc.IntrospectionResponse, at *AccessToken) {
	add := func(k string, v any) {
		if resp.Claims == nil {
			resp.Claims = map[string]any{}
		}
		resp.Claims[k] = v
	}
	if at.Kind != "" {
		add("gatehouse:kind", at.Kind)
		add("roles", at.Roles)
	}
	if at.Actor != "" {
		add("act", map[string]string{"sub": at.Actor})
		add("gatehouse:actor", at.Actor)
	}
}

// ConsoleClientID is the client_id of the tokens IssueSessionToken mints:
// the web console, acting for the person signed in to it.
const ConsoleClientID = "gatehouse-console"

// grantConsoleSession is the grant of those tokens in the event log.
const grantConsoleSession = "console_session"

// IssueSessionToken mints a short-lived access token for a person signed
// in to the web console (its MQTT test client logs in with it over
// WebSocket, under the person's own identity and policies): no refresh
// token, no scopes, valid for ttl or the configured access token
// lifetime, whichever is shorter. The user must exist and be enabled.
func (s *Server) IssueSessionToken(ctx context.Context, username string, ttl time.Duration) (string, time.Time, error) {
	key, err := s.keys.current(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oauth: signing key: %w", err)
	}
	var (
		raw string
		cl  claims
	)
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		g := grant{grantType: grantConsoleSession, clientID: ConsoleClientID, subject: username, ttl: ttl}
		if _, err := personGrant(ctx, tx, &g); err != nil {
			return err
		}
		if raw, cl, err = s.mint(key, g); err != nil {
			return err
		}
		_, err := s.events.Record(ctx, tx, "token.issued", "user/"+username, issuedDetails(g, cl))
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oauth: console session token for %s: %w", username, err)
	}
	return raw, time.Unix(cl.Expiry, 0), nil
}
