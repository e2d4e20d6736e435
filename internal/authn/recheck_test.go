package authn_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestRecheckExpiry: a re-check decides expiry on the same clock and at the
// same instant as CONNECT: a token identity is good until the second
// before exp and refused (not authorized) from exp on.
func TestRecheckExpiry(t *testing.T) {
	clk := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	env := testenv.New(t, testenv.Now(clk.Now), testenv.TokenTTL(time.Hour))
	secrets := env.Things(env.As("test"), "", "dev-1")
	tok := env.Token("dev-1", secrets["dev-1"])
	id, err := env.Authn.Authenticate(env.Ctx, authn.Credentials{Password: []byte(tok)})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(time.Hour); !id.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %s, want %s", id.ExpiresAt, want)
	}
	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"1s before exp", time.Hour - time.Second, nil},
		{"at exp", time.Second, authn.ErrNotAuthorized},
		{"1s after exp", time.Second, authn.ErrNotAuthorized},
	} {
		clk.Advance(tc.advance)
		if err := env.Authn.Recheck(env.Ctx, id); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Recheck = %v, want %v", tc.name, err, tc.want)
		}
		_, err := env.Authn.Authenticate(env.Ctx, authn.Credentials{Password: []byte(tok)})
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%s: Authenticate = %v, want it to agree with Recheck", tc.name, err)
		}
	}
}
