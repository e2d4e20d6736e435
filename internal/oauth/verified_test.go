package oauth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
)

// TestVerifiedTokenCache: a token that verified once is served from the
// cache, and the cache changes no answer: revocation, expiry and key
// retirement apply to a cached token at once, and only genuine tokens are
// cached.
func TestVerifiedTokenCache(t *testing.T) {
	tests := []struct {
		name string
		// change happens after the token was verified (and cached).
		change     func(e *env, tok string)
		wantErr    string
		wantCached bool
	}{
		{"nothing changes", func(*env, string) {}, "", true},
		{"revoked", func(e *env, tok string) {
			if err := e.srv.RevokeAccessToken(e.t.Context(), tok); err != nil {
				e.t.Fatal(err)
			}
		}, "revoked", true},
		{"expired", func(e *env, _ string) { e.clock.Advance(time.Hour + time.Minute) }, "expired", false},
		// No leeway for Gatehouse's own tokens: good until the second
		// before exp, refused from exp on.
		{"1s before exp", func(e *env, _ string) { e.clock.Advance(time.Hour - time.Second) }, "", true},
		{"at exp", func(e *env, _ string) { e.clock.Advance(time.Hour) }, "expired", false},
		{"expired by 1s", func(e *env, _ string) { e.clock.Advance(time.Hour + time.Second) }, "expired", false},
		{"signing key retired", func(e *env, _ string) {
			for range 2 { // the token's key becomes previous, then retires
				if err := e.srv.RotateKeys(e.t.Context()); err != nil {
					e.t.Fatal(err)
				}
			}
		}, "unknown key", false},
		{"clock set back before iat", func(e *env, _ string) { e.clock.Advance(-time.Hour) }, "issued in the future", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, storetestSQLite(t))
			ctx := t.Context()
			tok := clientToken(t, e, "sensor-1")
			want, err := e.srv.VerifyAccessToken(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if !oauth.VerifiedCached(e.srv, tok) {
				t.Fatal("a verified token is not cached")
			}
			tc.change(e, tok)
			got, err := e.srv.VerifyAccessToken(ctx, tok)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("VerifyAccessToken = %v, want the token", err)
			case tc.wantErr == "" && (got.JTI != want.JTI || got.Subject != want.Subject || !got.ExpiresAt.Equal(want.ExpiresAt) || strings.Join(got.Scopes, " ") != strings.Join(want.Scopes, " ")):
				t.Errorf("cached VerifyAccessToken = %+v, want %+v", got, want)
			case tc.wantErr != "" && (!errors.Is(err, oauth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("VerifyAccessToken = %+v, %v; want ErrInvalidToken (%s)", got, err, tc.wantErr)
			}
			if cached := oauth.VerifiedCached(e.srv, tok); cached != tc.wantCached {
				t.Errorf("cached after the change = %v, want %v", cached, tc.wantCached)
			}
		})
	}
	// Tokens that do not verify are never cached.
	e := newEnv(t, storetestSQLite(t))
	good := clientToken(t, e, "sensor-1")
	parts := strings.Split(good, ".")
	for _, bad := range []string{"garbage", parts[0] + "." + parts[1] + ".AAAA", parts[0] + ".e30." + parts[2]} {
		if _, err := e.srv.VerifyAccessToken(t.Context(), bad); err == nil {
			t.Fatalf("%q verified", bad)
		}
		if oauth.VerifiedCached(e.srv, bad) {
			t.Errorf("%q was cached", bad)
		}
	}
}

// TestTokenLivesAtLeastExpiresIn: exp is whole seconds with no leeway, so
// it is rounded up: a token issued in the middle of a second is good for
// at least the expires_in its client was told (1 h), not refused up to a
// second early.
func TestTokenLivesAtLeastExpiresIn(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	e.clock.Advance(900 * time.Millisecond)
	tok := clientToken(t, e, "sensor-1")
	e.clock.Advance(time.Hour - time.Millisecond)
	if _, err := e.srv.VerifyAccessToken(t.Context(), tok); err != nil {
		t.Errorf("1 h after issue, less a millisecond: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.srv.VerifyAccessToken(t.Context(), tok); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("1 h and a second after issue: %v, want expired", err)
	}
}
