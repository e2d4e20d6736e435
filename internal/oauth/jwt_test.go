package oauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestAppendClaimsIsJSONMarshal: the hand-written encoder writes exactly
// what encoding/json writes for the claims struct.
func TestAppendClaimsIsJSONMarshal(t *testing.T) {
	tests := []struct {
		name string
		c    claims
	}{
		{"thing token", claims{Issuer: "https://gh.example", Subject: "sensor-1", Audience: audience{"https://gh.example"}, Expiry: 1900000000, IssuedAt: 1899996400,
			JTI: "abc_-", ClientID: "sensor-1", Scope: "publish subscribe", ThingName: "sensor-1", ThingType: "sensor"}},
		{"static client, no scope", claims{Issuer: "http://127.0.0.1:8080", Subject: "rs", Audience: audience{"a", "b"}, Expiry: 1, IssuedAt: 0, JTI: "j", ClientID: "rs"}},
		{"nil audience, nbf, cnf", claims{Issuer: "i", Subject: "s", NotBefore: -5, JTI: "j", ClientID: "c", Cnf: &confirmation{X5tS256: "x5t"}}},
		{"characters encoding/json escapes", claims{Issuer: `a"b\c`, Subject: "<script>&", Audience: audience{"\u2028\u2029", "tab\there"}, JTI: "\x00\x1f",
			ClientID: "ünïcode", Scope: "\xff\xfe invalid utf-8", ThingName: "日本", ThingType: "\x7f"}},
		{"empty strings", claims{}},
		{"person", claims{Issuer: "i", Subject: "alice", JTI: "j", ClientID: "app.console", Scope: "openid", Kind: "user", Roles: []string{"user", "operator"}}},
		{"gateway for its child", claims{Issuer: "i", Subject: "sensor-7", JTI: "j", ClientID: "gw-1", ThingName: "sensor-7", Act: &actClaim{Subject: "gw-1"}, Actor: "gw-1"}},
		{"empty roles", claims{Issuer: "i", Roles: []string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := appendClaims(nil, &tc.c)
			want, err := json.Marshal(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("appendClaims = %s\nwant           %s", got, want)
			}
		})
	}
}

// TestIssuedEventIsTheMap: token.issued details encode as the map they
// were built as before (keys sorted, thing keys only for things).
func TestIssuedEventIsTheMap(t *testing.T) {
	asMap := func(e issuedEvent) map[string]any {
		d := map[string]any{"grant": e.grant, "client_id": e.clientID, "sub": e.sub, "scope": e.scope, "jti": e.jti, "exp": e.exp}
		if e.thing != "" {
			d["thing"] = e.thing
			d["thing_type"] = e.thingType
		}
		if e.refreshFamily != "" {
			d["refresh_family"] = e.refreshFamily
		}
		if e.actor != "" {
			d["actor"] = e.actor
		}
		return d
	}
	tests := []issuedEvent{
		{grant: "client_credentials", clientID: "sensor-1", sub: "sensor-1", scope: "publish", jti: "j1", exp: 1900000000, thing: "sensor-1", thingType: "sensor"},
		{grant: "client_credentials", clientID: "loose-1", sub: "loose-1", scope: "", jti: "j2", exp: 5, thing: "loose-1"},
		{grant: "client_credentials", clientID: "rs", sub: "rs", scope: "introspect", jti: "j3", exp: 7},
		{grant: "refresh_token", clientID: "gatehouse-cli", sub: "<alice>", scope: "openid", jti: "j4", exp: 9, refreshFamily: "fam"},
		{grant: "gateway", clientID: "gw-1", sub: "sensor-7", scope: "mqtt", jti: "j5", exp: 11, thing: "sensor-7", thingType: "sensor", actor: "gw-1"},
	}
	for _, e := range tests {
		got, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(asMap(e))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("issuedEvent = %s\nwant          %s", got, want)
		}
	}
}

// TestES256SignatureLayout: R and S are right-aligned 32-byte integers
// whatever their DER length (leading zero byte, or shorter than 32 bytes).
func TestES256SignatureLayout(t *testing.T) {
	short := bytes.Repeat([]byte{0x11}, 31)
	high := append([]byte{0xff}, bytes.Repeat([]byte{0x22}, 31)...) // DER adds a 0x00
	tests := []struct {
		name    string
		r, s    []byte
		want    []byte
		wantErr bool
	}{
		{"short R", short, high, append(append([]byte{0}, short...), high...), false},
		{"high R and S", high, high, append(append([]byte{}, high...), high...), false},
		{"too long", append([]byte{1}, high...), high, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(tc.r), new(big.Int).SetBytes(tc.s)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := es256Signature(der)
			if (err != nil) != tc.wantErr || !bytes.Equal(got, tc.want) {
				t.Errorf("es256Signature = %x, %v; want %x (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := es256Signature([]byte{0x30, 0x01}); err == nil {
		t.Error("malformed DER accepted")
	}
}

// TestCompactVerifiesWithJose signs many tokens (so that short R and S
// occur) and checks each with go-jose.
func TestCompactVerifiesWithJose(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	js, err := newJWTSigner(ES256, "kid-1", key)
	if err != nil {
		t.Fatal(err)
	}
	var b tokenBuffer
	for i := range 600 {
		c := claims{Issuer: "https://gh.example", Subject: "s", Audience: audience{"a"}, Expiry: int64(i), JTI: strings.Repeat("j", i%7), ClientID: "c"}
		raw, err := js.compact(rand.Reader, &c, &b)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Header
		if h.KeyID != "kid-1" || h.Algorithm != "ES256" || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
			t.Fatalf("header = %+v", h)
		}
		payload, err := jws.Verify(&key.PublicKey)
		if err != nil {
			t.Fatalf("token %d does not verify: %v", i, err)
		}
		if want, _ := json.Marshal(c); !bytes.Equal(payload, want) {
			t.Fatalf("payload = %s, want %s", payload, want)
		}
	}
	if _, err := newJWTSigner(EdDSA, "k", key); err == nil {
		t.Error("an EC key was accepted for EdDSA")
	}
	// The header is what go-jose writes for the same key and type.
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "kid-1"}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	if want, _, _ := strings.Cut(raw, "."); js.header != want+"." {
		h, _ := base64.RawURLEncoding.DecodeString(want)
		t.Errorf("header = %q, go-jose writes %q (%s)", js.header, want+".", h)
	}
}

// FuzzVerifyCompact: the hand-written verification accepts a token only if
// go-jose (what verified tokens before) accepts it too with the same key
// and algorithm, with the same payload; and it accepts the genuine tokens.
func FuzzVerifyCompact(f *testing.F) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	secret := bytes.Repeat([]byte("k"), 32)
	type key struct {
		alg     string
		private any
		public  any
	}
	keys := []key{{ES256, ec, &ec.PublicKey}, {EdDSA, ed, ed.Public()}, {HS256, secret, secret}}
	c := claims{Issuer: "https://gh.example", Subject: "s", Audience: audience{"a"}, Expiry: 1, JTI: "j", ClientID: "c"}
	var genuine []string
	for _, k := range keys {
		js, err := newJWTSigner(k.alg, "kid-"+k.alg, k.private)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := js.compact(rand.Reader, &c, &tokenBuffer{})
		if err != nil {
			f.Fatal(err)
		}
		genuine = append(genuine, raw)
		parts := strings.Split(raw, ".")
		for _, seed := range []string{raw, raw + "=", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2], raw + ".x",
			base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+k.alg+`","kid":"kid-`+k.alg+`","typ":"at+jwt","crit":["exp"]}`)) + "." + parts[1] + "." + parts[2]} {
			f.Add(seed)
		}
	}
	verify := func(raw string, k key) ([]byte, bool) {
		h, input, payload, sig, err := parseCompact(raw)
		if err != nil || h.Alg != k.alg || verifySignature(k.public, input, sig) != nil {
			return nil, false
		}
		return payload, true
	}
	for i, raw := range genuine {
		if _, ok := verify(raw, keys[i]); !ok {
			f.Fatalf("genuine %s token refused", keys[i].alg)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, k := range keys {
			payload, ok := verify(raw, k)
			if !ok {
				continue
			}
			jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(k.alg)})
			if err != nil {
				t.Fatalf("%s: accepted %q, go-jose cannot parse it: %v", k.alg, raw, err)
			}
			want, err := jws.Verify(k.public)
			if err != nil || !bytes.Equal(payload, want) {
				t.Fatalf("%s: accepted %q, go-jose: %v (payload %q vs %q)", k.alg, raw, err, payload, want)
			}
		}
	})
}
