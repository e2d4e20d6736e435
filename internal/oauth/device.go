package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// userCodeAlphabet is 20 consonants: no vowels (no words spelled by
// accident) and no digits (nothing to confuse 0/O, 1/I, 5/S or 2/Z with).
// It is op.CharSetBase20.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLength gives 20^8 ~ 2^34.6 codes; with guesses rate-limited and
// codes living minutes that is far beyond reach.
const userCodeLength = 8

// slowDownStep is what RFC 8628 section 3.5 adds to the interval.
const slowDownStep = 5 * time.Second

// newUserCode returns a random user code, normalised (no dash).
func (s *Server) newUserCode() (string, error) {
	b := make([]byte, userCodeLength)
	var out [userCodeLength]byte
	for i := 0; i < userCodeLength; {
		if _, err := io.ReadFull(s.rand, b[:1]); err != nil {
			return "", fmt.Errorf("oauth: random: %w", err)
		}
		// Rejection sampling keeps the distribution uniform: 240 = 12*20.
		if b[0] >= 240 {
			continue
		}
		out[i] = userCodeAlphabet[int(b[0])%len(userCodeAlphabet)]
		i++
	}
	return string(out[:]), nil
}

// normalizeUserCode upper-cases a typed code and drops separators and
// spaces, so "bcdf-ghjk" and "BCDF GHJK" both match.
func normalizeUserCode(in string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(in) {
		if r == '-' || r == ' ' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// displayUserCode inserts the dash: BCDF-GHJK.
func displayUserCode(code string) string {
	if len(code) != userCodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// DeviceAuthorization implements op.Server (RFC 8628 section 3.1). The
// client was authenticated by VerifyClient: confidential clients must
// authenticate here too.
func (s *Server) DeviceAuthorization(ctx context.Context, r *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.hasGrant(oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the device authorization grant")
	}
	scopes, err := c.resolveScopes(r.Data.Scopes)
	if err != nil {
		return nil, err
	}
	deviceCode, err := s.newID(32)
	if err != nil {
		return nil, s.serverError(ctx, "device code", err)
	}
	now := s.now().UTC()
	d := &store.DeviceAuthorization{CodeHash: HashSecret(deviceCode), ClientID: c.id, Scopes: scopes, State: store.DeviceStatePending,
		Interval: s.pollInterval, CreatedAt: now, ExpiresAt: now.Add(s.deviceTTL)}
	for attempt := 0; ; attempt++ {
		if d.UserCode, err = s.newUserCode(); err != nil {
			return nil, s.serverError(ctx, "user code", err)
		}
		err = s.change(ctx, "device.requested", func(tx *store.Tx) (string, any, error) {
			return subjectOf(c), map[string]any{"client_id": c.id, "scope": strings.Join(scopes, " "), "expires": d.ExpiresAt}, tx.CreateDeviceAuthorization(ctx, d)
		})
		if !errors.Is(err, store.ErrExists) || attempt == 4 {
			break
		}
	}
	if err != nil {
		return nil, s.serverError(ctx, "store device authorization", err)
	}
	verification := s.issuer + PathDevice
	return op.NewResponse(&oidc.DeviceAuthorizationResponse{
		DeviceCode:              deviceCode,
		UserCode:                displayUserCode(d.UserCode),
		VerificationURI:         verification,
		VerificationURIComplete: verification + "?user_code=" + url.QueryEscape(displayUserCode(d.UserCode)),
		ExpiresIn:               int(s.deviceTTL / time.Second),
		Interval:                int(s.pollInterval / time.Second),
	}), nil
}

// DeviceToken implements op.Server (RFC 8628 section 3.4/3.5): polling
// answers authorization_pending, slow_down when a device polls faster than
// its interval (which then grows by 5 seconds), expired_token,
// access_denied, or the tokens once a person approved.
func (s *Server) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.hasGrant(oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use the device authorization grant")
	}
	if len(r.Data.DeviceCode) > maxSecretBytes {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid device code")
	}
	hash := HashSecret(r.Data.DeviceCode)
	aud, err := s.audienceFor(r.PostForm)
	if err != nil {
		return nil, err
	}
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
		notify, resp, result = notify[:0], nil, nil
		d, err := tx.GetDeviceAuthorization(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			result = oidc.ErrInvalidGrant().WithDescription("invalid device code")
			return nil
		}
		if err != nil {
			return err
		}
		now := s.now().UTC()
		switch {
		case d.ClientID != c.id:
			result = oidc.ErrInvalidGrant().WithDescription("device code was issued to another client")
			return nil
		case d.State == store.DeviceStateIssued:
			result = oidc.ErrInvalidGrant().WithDescription("device code was already used")
			return nil
		case d.State == store.DeviceStateDenied:
			result = oidc.ErrAccessDenied().WithDescription("the request was denied")
			return nil
		case now.After(d.ExpiresAt):
			result = oidc.ErrExpiredDeviceCode().WithDescription("the device code expired")
			return nil
		case d.State == store.DeviceStateApproved:
			d.State, d.ConsentHash, d.LastPollAt = store.DeviceStateIssued, "", now
			if err := tx.UpdateDeviceAuthorization(ctx, d); err != nil {
				return err
			}
			resp, err = s.issueDelegated(ctx, tx, key, c, d.Subject, d.Scopes, "", string(oidc.GrantTypeDeviceCode), tokenRequest{authTime: d.DecidedAt, audience: aud})
			return err
		}
		// Pending.
		if !d.LastPollAt.IsZero() && now.Sub(d.LastPollAt) < d.Interval {
			d.Interval += slowDownStep
			result = oidc.ErrSlowDown().WithDescription("poll at most every %d seconds", int(d.Interval/time.Second))
		} else {
			result = oidc.ErrAuthorizationPending().WithDescription("waiting for the user")
		}
		d.LastPollAt = now
		return tx.UpdateDeviceAuthorization(ctx, d)
	})
	if errors.Is(err, errUserInactive) {
		return nil, inactiveUser()
	}
	if err != nil {
		return nil, s.serverError(ctx, "device token", err)
	}
	runAll(notify)
	if result != nil {
		return nil, result
	}
	return op.NewResponse(resp), nil
}
