package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// issueForChild issues a token for thing child to the gateway thing gw that
// authenticated at the things endpoint (ForgeRock IoT gateway style). The
// gateway must have a gateway relationship with the child, and the child
// must be enabled. The token is the child's - sub and thing_name are the
// child, scopes at most the child's - with the gateway named as actor (RFC
// 8693 "act" and gatehouse:actor) and as client_id.
func (s *Server) issueForChild(ctx context.Context, gw *client, child string, requested []string) (*oidc.AccessTokenResponse, error) {
	if gw.method == oidc.AuthMethodNone {
		return nil, invalidClient("client must authenticate")
	}
	ok, err := s.registry.IsGatewayOf(ctx, gw.id, child)
	if err != nil {
		return nil, s.serverError(ctx, "gateway relationship", err)
	}
	if !ok {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("authenticated as another thing than the one named in the path, which is not its gateway")
	}
	tc, err := s.loadThingClient(ctx, child)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the child thing is gone")
	}
	if err != nil {
		return nil, s.serverError(ctx, "load child thing", err)
	}
	if tc.State != store.StateEnabled {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the child thing is disabled")
	}
	scopes := tc.Scopes
	if tc.ThingType == "" {
		scopes = s.defaultScopes
	}
	cc := &client{id: tc.Name, thing: tc, method: gw.method, scopes: scopes, grants: thingGrants()}
	granted, err := cc.resolveScopes(requested)
	if err != nil {
		return nil, err
	}
	g := grant{grantType: "gateway", clientID: gw.id, subject: tc.Name, thing: tc.Name, thingType: tc.ThingType,
		scopes: granted, cnf: boundThumbprint(ctx), actor: gw.id}
	key, err := s.keys.current(ctx)
	if err != nil {
		return nil, s.serverError(ctx, "signing key", err)
	}
	raw, cl, err := s.mint(key, g)
	if err != nil {
		return nil, s.serverError(ctx, "issue access token", err)
	}
	if err := s.issued.Enqueue(ctx, "token.issued", "thing/"+tc.Name, issuedDetails(g, cl)); err != nil {
		return nil, s.serverError(ctx, "record token event", err)
	}
	return &oidc.AccessTokenResponse{AccessToken: raw, TokenType: oidc.BearerToken, ExpiresIn: uint64(s.atTTL / time.Second), Scope: granted}, nil
}
