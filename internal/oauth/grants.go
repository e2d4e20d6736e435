package oauth

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// RefreshTokenPrefix starts every refresh token.
const RefreshTokenPrefix = "ghr_"

// ClientCredentialsExchange implements op.Server: a confidential client
// (normally a thing) gets a token for itself.
func (s *Server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	aud, err := s.audienceFor(r.PostForm)
	if err != nil {
		return nil, err
	}
	resp, err := s.issueForClient(ctx, c, r.Data.Scope, aud)
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// issueForClient issues a client-credentials token: the client is the
// subject.
func (s *Server) issueForClient(ctx context.Context, c *client, requested, audience []string) (*oidc.AccessTokenResponse, error) {
	if c.method == oidc.AuthMethodNone {
		return nil, invalidClient("client must authenticate")
	}
	if !c.hasGrant(oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the client credentials grant")
	}
	scopes, err := c.resolveScopes(requested)
	if err != nil {
		return nil, err
	}
	g := grant{grantType: string(oidc.GrantTypeClientCredentials), clientID: c.id, subject: c.id, thing: c.thingName(), thingType: c.thingType(), scopes: scopes, cnf: boundThumbprint(ctx), audience: audience}
	key, err := s.keys.current(ctx)
	if err != nil {
		return nil, s.serverError(ctx, "signing key", err)
	}
	raw, cl, err := s.mint(key, g)
	if err != nil {
		return nil, s.serverError(ctx, "issue access token", err)
	}
	if err := s.issued.Enqueue(ctx, "token.issued", subjectOf(c), issuedDetails(g, cl)); err != nil {
		return nil, s.serverError(ctx, "record token event", err)
	}
	s.metrics.Load().tokenIssued(g.grantType)
	return &oidc.AccessTokenResponse{AccessToken: raw, TokenType: oidc.BearerToken, ExpiresIn: uint64(s.atTTL / time.Second), Scope: scopes}, nil
}

// subjectOf names a client as an event subject.
func subjectOf(c *client) string {
	if c.thing != nil {
		return "thing/" + c.id
	}
	return "client/" + c.id
}

// issuedDetails are the details of a token.issued event.
func issuedDetails(g grant, c claims) issuedEvent {
	return issuedEvent{grant: g.grantType, clientID: g.clientID, sub: g.subject, scope: c.Scope, jti: c.JTI, exp: c.Expiry, thing: g.thing, thingType: g.thingType, actor: g.actor}
}

// issuedEvent encodes as the JSON object {"actor" (a gateway's token for
// its child only), "client_id", "exp", "grant",
// "jti", "refresh_family" (if set), "scope", "sub", "thing" and
// "thing_type" (both only for a thing)}, keys in this order, without
// reflection: it is written for every token issued.
type issuedEvent struct {
	grant, clientID, sub, scope, jti string
	exp                              int64
	thing, thingType                 string
	refreshFamily                    string
	actor                            string
}

func (e issuedEvent) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, '{')
	if e.actor != "" {
		b = append(b, `"actor":`...)
		b = appendJSONString(b, e.actor)
		b = append(b, ',')
	}
	b = append(b, `"client_id":`...)
	b = appendJSONString(b, e.clientID)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, e.exp, 10)
	b = append(b, `,"grant":`...)
	b = appendJSONString(b, e.grant)
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, e.jti)
	if e.refreshFamily != "" {
		b = append(b, `,"refresh_family":`...)
		b = appendJSONString(b, e.refreshFamily)
	}
	b = append(b, `,"scope":`...)
	b = appendJSONString(b, e.scope)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, e.sub)
	if e.thing != "" {
		b = append(b, `,"thing":`...)
		b = appendJSONString(b, e.thing)
		b = append(b, `,"thing_type":`...)
		b = appendJSONString(b, e.thingType)
	}
	return append(b, '}'), nil
}

// issueDelegated issues an access token and a new refresh token for a user
// delegated grant inside tx, and an ID token if the grant is a person's
// with the openid scope. familyID "" starts a new family.
func (s *Server) issueDelegated(ctx context.Context, tx *store.Tx, key *signingKey, c *client, subject string, scopes []string, familyID, grantType string, signIn tokenRequest) (*oidc.AccessTokenResponse, error) {
	g := grant{grantType: grantType, clientID: c.id, subject: subject, thing: c.thingName(), thingType: c.thingType(), scopes: scopes, cnf: boundThumbprint(ctx), audience: signIn.audience}
	user, err := personGrant(ctx, tx, &g)
	if err != nil {
		return nil, err
	}
	raw, cl, err := s.mint(key, g)
	if err != nil {
		return nil, err
	}
	idToken := ""
	if user != nil && slices.Contains(scopes, scopeOpenID) {
		if idToken, err = s.mintIDToken(key, user, c.id, scopes, raw, signIn); err != nil {
			return nil, err
		}
	}
	secret, err := s.newID(32)
	if err != nil {
		return nil, err
	}
	refresh := RefreshTokenPrefix + secret
	if familyID == "" {
		if familyID, err = s.newID(12); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	rt := &store.RefreshToken{Hash: HashSecret(refresh), FamilyID: familyID, ClientID: c.id, Subject: subject, Scopes: scopes,
		AccessJTI: cl.JTI, AccessExpiresAt: time.Unix(cl.Expiry, 0), CreatedAt: now, ExpiresAt: now.Add(s.rtTTL), AuthTime: signIn.authTime}
	if err := tx.CreateRefreshToken(ctx, rt); err != nil {
		return nil, err
	}
	d := issuedDetails(g, cl)
	d.refreshFamily = familyID
	ev, err := s.events.Record(ctx, tx, "token.issued", subjectOf(c), d)
	if err != nil {
		return nil, err
	}
	afterCommit(ctx, func() {
		s.events.Notify(ev)
		s.metrics.Load().tokenIssued(grantType)
	})
	return &oidc.AccessTokenResponse{AccessToken: raw, TokenType: oidc.BearerToken, RefreshToken: refresh, ExpiresIn: uint64(s.atTTL / time.Second), Scope: scopes, IDToken: idToken}, nil
}

// RefreshToken implements op.Server: refresh token rotation. Each refresh
// token works once; presenting a used one again is taken as theft and
// revokes the whole family with the access tokens issued from it.
func (s *Server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.hasGrant(oidc.GrantTypeRefreshToken) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use refresh tokens")
	}
	aud, err := s.audienceFor(r.PostForm)
	if err != nil {
		return nil, err
	}
	presented := r.Data.RefreshToken
	if len(presented) > maxSecretBytes || !strings.HasPrefix(presented, RefreshTokenPrefix) {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	}
	hash := HashSecret(presented)
	key, err := s.keys.current(ctx)
	if err != nil {
		return nil, s.serverError(ctx, "signing key", err)
	}
	var (
		resp   *oidc.AccessTokenResponse
		result error
		notify []func()
	)
	ctx = withAfterCommit(ctx, &notify)
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		notify = notify[:0]
		rt, err := tx.GetRefreshToken(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			result = oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
			return nil
		}
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case rt.ClientID != c.id:
			result = oidc.ErrInvalidGrant().WithDescription("refresh token was issued to another client")
			return nil
		case !rt.RevokedAt.IsZero():
			result = oidc.ErrInvalidGrant().WithDescription("refresh token was revoked")
			return nil
		case !rt.UsedAt.IsZero():
			// Reuse: someone holds a copy. Revoke everything of the grant.
			if err := s.revokeFamily(ctx, tx, rt.FamilyID, "refresh token reused"); err != nil {
				return err
			}
			result = oidc.ErrInvalidGrant().WithDescription("refresh token was already used; the grant is revoked")
			return nil
		case now.After(rt.ExpiresAt):
			result = oidc.ErrInvalidGrant().WithDescription("refresh token expired")
			return nil
		}
		scopes := rt.Scopes
		if len(r.Data.Scopes) > 0 {
			for _, sc := range r.Data.Scopes {
				if !contains(rt.Scopes, sc) {
					result = oidc.ErrInvalidScope().WithDescription("scope %q was not granted", truncate(sc))
					return nil
				}
			}
			scopes = r.Data.Scopes
		}
		if err := tx.MarkRefreshTokenUsed(ctx, hash, now.UTC()); err != nil {
			return err
		}
		// A refreshed ID token keeps the original sign-in time (Core 12.2).
		resp, err = s.issueDelegated(ctx, tx, key, c, rt.Subject, scopes, rt.FamilyID, string(oidc.GrantTypeRefreshToken), tokenRequest{authTime: rt.AuthTime, audience: aud})
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrStale) {
			return nil, oidc.ErrInvalidGrant().WithDescription("refresh token was already used")
		}
		if errors.Is(err, errUserInactive) {
			return nil, inactiveUser()
		}
		return nil, s.serverError(ctx, "refresh token", err)
	}
	runAll(notify)
	if result != nil {
		return nil, result
	}
	return op.NewResponse(resp), nil
}

// revokeFamily revokes every refresh token of a family and the access
// tokens issued with them.
func (s *Server) revokeFamily(ctx context.Context, tx *store.Tx, familyID, reason string) error {
	tokens, jtis, err := s.revokeFamilyTokens(ctx, tx, familyID)
	if err != nil {
		return err
	}
	return s.recordFamilyRevoked(ctx, tx, familyID, reason, tokens, jtis)
}

// revokeFamilyTokens revokes the refresh tokens of a family that are not
// revoked yet and the unexpired access tokens issued with them (the
// revocation list the broker and introspection read), and returns the
// refresh tokens as they were and the revoked access token IDs.
func (s *Server) revokeFamilyTokens(ctx context.Context, tx *store.Tx, familyID string) ([]store.RefreshToken, []string, error) {
	now := s.now().UTC()
	tokens, err := tx.RevokeRefreshFamily(ctx, familyID, now)
	if err != nil {
		return nil, nil, err
	}
	var jtis []string
	for _, t := range tokens {
		if t.AccessJTI != "" && t.AccessExpiresAt.After(now) {
			if err := tx.RevokeAccessToken(ctx, t.AccessJTI, t.AccessExpiresAt, now); err != nil {
				return nil, nil, err
			}
			jtis = append(jtis, t.AccessJTI)
			exp := t.AccessExpiresAt
			jti := t.AccessJTI
			afterCommit(ctx, func() { s.revoked.add(jti, exp) })
		}
	}
	return tokens, jtis, nil
}

// recordFamilyRevoked records token.revoked for a family revoked by
// revokeFamilyTokens (the broker follows it to drop sessions).
func (s *Server) recordFamilyRevoked(ctx context.Context, tx *store.Tx, familyID, reason string, tokens []store.RefreshToken, jtis []string) error {
	subject := "grant/" + familyID
	if len(tokens) > 0 {
		subject = "client/" + tokens[0].ClientID
	}
	ev, err := s.events.Record(ctx, tx, "token.revoked", subject, map[string]any{"refresh_family": familyID, "reason": reason, "access_jtis": jtis})
	if err != nil {
		return err
	}
	afterCommit(ctx, func() { s.events.Notify(ev) })
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// afterCommit hooks: work (notifications, cache updates) that must happen
// only once the transaction committed.
type afterCommitKey struct{}

func withAfterCommit(ctx context.Context, fns *[]func()) context.Context {
	return context.WithValue(ctx, afterCommitKey{}, fns)
}

func afterCommit(ctx context.Context, fn func()) {
	if fns, ok := ctx.Value(afterCommitKey{}).(*[]func()); ok {
		*fns = append(*fns, fn)
		return
	}
	fn()
}

func runAll(fns []func()) {
	for _, fn := range fns {
		fn()
	}
}
