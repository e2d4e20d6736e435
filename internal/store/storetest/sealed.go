package storetest

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// testSealedValues: every sealed value is listed (NULL root keys skipped,
// retired signing keys included) and can be replaced in one transaction;
// a rolled-back replacement changes nothing.
func testSealedValues(t *testing.T, s *store.Store) {
	ctx := t.Context()
	for _, k := range []*store.SigningKey{
		{KID: "old", Algorithm: "ES256", PublicJWK: []byte("{}"), SealedPrivate: []byte("sealed-old"), CreatedAt: t0},
		{KID: "new", Algorithm: "ES256", PublicJWK: []byte("{}"), SealedPrivate: []byte("sealed-new"), CreatedAt: t0.Add(1)},
	} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RetireSigningKey(ctx, "old", t0); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []*store.CARecord{
		{Name: "gatehouse", ChainPEM: "x", SealedKey: []byte("ca-key"), SealedRootKey: []byte("root-key"), IssuerFingerprint: fp('a'), RegistrationCode: "c", CreatedAt: t0, UpdatedAt: t0},
		{Name: "second", ChainPEM: "x", SealedKey: []byte("ca2-key"), IssuerFingerprint: fp('b'), RegistrationCode: "d", CreatedAt: t0, UpdatedAt: t0},
	} {
		if err := s.CreateCA(ctx, ca); err != nil {
			t.Fatal(err)
		}
	}
	// Columns added later: a base64 TEXT column (AWS access keys) and
	// optional secrets left empty (a lobby target without a token is skipped).
	if err := s.CreateAWSAccessKey(ctx, &store.AWSAccessKey{ID: "AKIDX", Name: "sync", SealedSecret: []byte(base64.StdEncoding.EncodeToString([]byte("aws\x00secret"))), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tg := range []*store.LobbyTarget{
		{Name: "remote", Kind: store.LobbyTargetGatehouse, APIURL: "https://gh.example", APITokenSealed: []byte("gh-token"), CreatedAt: t0, UpdatedAt: t0},
		{Name: "plain", Kind: store.LobbyTargetMQTT, Endpoint: "mqtts://x:8883", CreatedAt: t0, UpdatedAt: t0},
	} {
		if err := s.CreateLobbyTarget(ctx, tg); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []string {
		vs, err := s.ListSealedValues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vs {
			out = append(out, v.Table+"."+v.Column+"/"+v.ID+"="+string(v.Value))
		}
		return out
	}
	want := []string{
		"oauth_signing_keys.sealed_private/new=sealed-new", "oauth_signing_keys.sealed_private/old=sealed-old",
		"pki_cas.sealed_key/gatehouse=ca-key", "pki_cas.sealed_key/second=ca2-key", "pki_cas.sealed_root_key/gatehouse=root-key",
		"aws_access_keys.sealed_secret/AKIDX=aws\x00secret", "lobby_targets.api_token_sealed/remote=gh-token",
	}
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("ListSealedValues = %v, want %v", got, want)
	}
	reseal := func(fail bool) error {
		return s.InTx(ctx, func(tx *store.Tx) error {
			vs, err := tx.ListSealedValues(ctx)
			if err != nil {
				return err
			}
			for _, v := range vs {
				v.Value = append([]byte("re-"), v.Value...)
				if err := tx.UpdateSealedValue(ctx, v); err != nil {
					return err
				}
			}
			if fail {
				return errors.New("stop")
			}
			return nil
		})
	}
	if err := reseal(true); err == nil {
		t.Fatal("a failing transaction committed")
	}
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("after a rolled-back reseal: %v, want %v", got, want)
	}
	if err := reseal(false); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		table, rest, _ := cut(want[i], "/")
		id, val, _ := cut(rest, "=")
		want[i] = table + "/" + id + "=re-" + val
	}
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("after reseal: %v, want %v", got, want)
	}
	k, err := s.GetAWSAccessKey(ctx, "AKIDX")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(k.SealedSecret), base64.StdEncoding.EncodeToString([]byte("re-aws\x00secret")); got != want {
		t.Errorf("resealed AWS key stored as %q, want base64 %q", got, want)
	}
	if err := s.UpdateSealedValue(ctx, store.SealedValue{Table: "things", Column: "name", ID: "x", Value: []byte("y")}); err == nil {
		t.Error("UpdateSealedValue of a column that is not sealed succeeded")
	}
	if err := s.UpdateSealedValue(ctx, store.SealedValue{Table: "pki_cas", Column: "sealed_key", ID: "missing", Value: []byte("y")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateSealedValue of a missing row: %v, want ErrNotFound", err)
	}
}

func cut(s, sep string) (string, string, bool) { return strings.Cut(s, sep) }
