package oauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Access tokens are signed here rather than through go-jose's Signer: the
// protected header of a key never changes, so its encoding is computed once
// per key, and the claims are appended to a reused buffer instead of going
// through JSON reflection. The output is an ordinary JWS compact
// serialization (RFC 7515 section 7.1) that go-jose and any JWT library
// verify; VerifyAccessToken still parses with go-jose.

// jwtSigner signs the JWS signing input of an access token.
type jwtSigner struct {
	// header is base64url(protected header) followed by ".".
	header string
	// idHeader is the same for an OpenID Connect ID token (typ JWT).
	idHeader string
	sign     func(rand io.Reader, input []byte) ([]byte, error)
}

// jwtHeader is the protected header, fields in the order go-jose writes them.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// newJWTSigner prepares signing with priv (an *ecdsa.PrivateKey on P-256,
// an ed25519.PrivateKey, an *rsa.PrivateKey, or the HS256 secret as []byte)
// under kid.
func newJWTSigner(alg, kid string, priv any) (*jwtSigner, error) {
	h, err := json.Marshal(jwtHeader{Alg: alg, Kid: kid, Typ: "at+jwt"})
	if err != nil {
		return nil, fmt.Errorf("oauth: encode JWT header: %w", err)
	}
	idh, err := json.Marshal(jwtHeader{Alg: alg, Kid: kid, Typ: "JWT"})
	if err != nil {
		return nil, fmt.Errorf("oauth: encode JWT header: %w", err)
	}
	js := &jwtSigner{header: base64.RawURLEncoding.EncodeToString(h) + ".", idHeader: base64.RawURLEncoding.EncodeToString(idh) + "."}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if alg != ES256 || k.Curve.Params().BitSize != 256 {
			return nil, fmt.Errorf("oauth: %s key cannot sign %s", k.Curve.Params().Name, alg)
		}
		js.sign = func(rand io.Reader, input []byte) ([]byte, error) {
			digest := sha256.Sum256(input)
			der, err := ecdsa.SignASN1(rand, k, digest[:])
			if err != nil {
				return nil, err
			}
			return es256Signature(der)
		}
	case ed25519.PrivateKey:
		if alg != EdDSA {
			return nil, fmt.Errorf("oauth: Ed25519 key cannot sign %s", alg)
		}
		js.sign = func(_ io.Reader, input []byte) ([]byte, error) { return ed25519.Sign(k, input), nil }
	case *rsa.PrivateKey:
		if alg != RS256 {
			return nil, fmt.Errorf("oauth: RSA key cannot sign %s", alg)
		}
		js.sign = func(rand io.Reader, input []byte) ([]byte, error) {
			digest := sha256.Sum256(input)
			return rsa.SignPKCS1v15(rand, k, crypto.SHA256, digest[:])
		}
	case []byte:
		if alg != HS256 {
			return nil, fmt.Errorf("oauth: a shared secret cannot sign %s", alg)
		}
		js.sign = func(_ io.Reader, input []byte) ([]byte, error) {
			m := hmac.New(sha256.New, k)
			m.Write(input)
			return m.Sum(nil), nil
		}
	default:
		return nil, fmt.Errorf("oauth: %T keys cannot sign access tokens", priv)
	}
	return js, nil
}

// es256Signature turns an ASN.1 ECDSA signature into the JWS form: R and S
// as 32-byte big-endian integers (RFC 7518 section 3.4).
func es256Signature(der []byte) ([]byte, error) {
	var (
		r, s  []byte
		inner cryptobyte.String
	)
	in := cryptobyte.String(der)
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() {
		return nil, errors.New("oauth: malformed ECDSA signature")
	}
	out := make([]byte, 64)
	if !fixed32(out[:32], r) || !fixed32(out[32:], s) {
		return nil, errors.New("oauth: ECDSA signature out of range")
	}
	return out, nil
}

// fixed32 writes the unsigned big-endian integer v (as ReadASN1Integer
// returns it: possibly with a leading zero byte) right-aligned into dst.
func fixed32(dst, v []byte) bool {
	for len(v) > 0 && v[0] == 0 {
		v = v[1:]
	}
	if len(v) > len(dst) {
		return false
	}
	copy(dst[len(dst)-len(v):], v)
	return true
}

// tokenBuffer holds the buffers a token is built in; the Server keeps them
// in a sync.Pool.
type tokenBuffer struct{ payload, out []byte }

// compact returns the compact serialization of the access token with
// claims c, signed by js, built in b.
func (js *jwtSigner) compact(rand io.Reader, c *claims, b *tokenBuffer) (string, error) {
	b.payload = appendClaims(b.payload[:0], c)
	out := append(b.out[:0], js.header...)
	out = base64.RawURLEncoding.AppendEncode(out, b.payload)
	sig, err := js.sign(rand, out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, sig)
	b.out = out
	return string(out), nil
}

// idToken returns the compact serialization of an ID token whose JSON
// payload is payload (not a hot path: no buffer reuse).
func (js *jwtSigner) idToken(rand io.Reader, payload []byte) (string, error) {
	out := base64.RawURLEncoding.AppendEncode([]byte(js.idHeader), payload)
	sig, err := js.sign(rand, out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	return string(base64.RawURLEncoding.AppendEncode(out, sig)), nil
}

// appendClaims appends c as JSON, byte for byte what json.Marshal(c)
// writes (the claims struct's field order and omitempty rules).
func appendClaims(b []byte, c *claims) []byte {
	b = append(b, `{"iss":`...)
	b = appendJSONString(b, c.Issuer)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, c.Subject)
	b = append(b, `,"aud":`...)
	if c.Audience == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, a := range c.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expiry, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	if c.NotBefore != 0 {
		b = append(b, `,"nbf":`...)
		b = strconv.AppendInt(b, c.NotBefore, 10)
	}
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, c.JTI)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, c.ClientID)
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, c.Scope)
	}
	if c.ThingName != "" {
		b = append(b, `,"thing_name":`...)
		b = appendJSONString(b, c.ThingName)
	}
	if c.ThingType != "" {
		b = append(b, `,"thing_type":`...)
		b = appendJSONString(b, c.ThingType)
	}
	if c.Cnf != nil {
		b = append(b, `,"cnf":{"x5t#S256":`...)
		b = appendJSONString(b, c.Cnf.X5tS256)
		b = append(b, '}')
	}
	if c.Kind != "" {
		b = append(b, `,"gatehouse:kind":`...)
		b = appendJSONString(b, c.Kind)
	}
	if len(c.Roles) > 0 {
		b = append(b, `,"roles":[`...)
		for i, r := range c.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r)
		}
		b = append(b, ']')
	}
	if c.Act != nil {
		b = append(b, `,"act":`...)
		a, _ := json.Marshal(c.Act) // rare (gateways): no need to be fast
		b = append(b, a...)
	}
	if c.Actor != "" {
		b = append(b, `,"gatehouse:actor":`...)
		b = appendJSONString(b, c.Actor)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: plain printable ASCII is copied, anything else (quotes,
// backslashes, control and HTML characters, non-ASCII) goes through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// strictB64 decodes JWS segments: unpadded base64url, canonical.
var strictB64 = base64.RawURLEncoding.Strict()

// parseCompact splits the compact serialization of an access token and
// decodes its parts. It accepts only what newJWTSigner writes (and go-jose
// wrote before it): three segments, a protected header of exactly alg, kid
// and typ (no crit, jku, x5u or anything else to act on), a JSON object
// payload. The signature is not checked here.
func parseCompact(raw string) (h jwtHeader, input string, payload, sig []byte, err error) {
	first := strings.IndexByte(raw, '.')
	last := strings.LastIndexByte(raw, '.')
	if first <= 0 || last == first || last == len(raw)-1 || strings.IndexByte(raw[first+1:last], '.') >= 0 {
		return h, "", nil, nil, errors.New("not a compact JWS")
	}
	hb, err := strictB64.DecodeString(raw[:first])
	if err != nil {
		return h, "", nil, nil, fmt.Errorf("header: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, "", nil, nil, fmt.Errorf("header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, "", nil, nil, errors.New("header: trailing data")
	}
	if payload, err = strictB64.DecodeString(raw[first+1 : last]); err != nil {
		return h, "", nil, nil, fmt.Errorf("payload: %w", err)
	}
	if sig, err = strictB64.DecodeString(raw[last+1:]); err != nil {
		return h, "", nil, nil, fmt.Errorf("signature: %w", err)
	}
	return h, raw[:last], payload, sig, nil
}

// verifySignature checks sig over input with the public key, by the key's
// own type (never by the token's say): ES256 as R||S, EdDSA, RS256
// PKCS#1 v1.5, or HS256 with the shared secret.
func verifySignature(public any, input string, sig []byte) error {
	ok := false
	switch k := public.(type) {
	case *ecdsa.PublicKey:
		if len(sig) != 64 || k.Curve.Params().BitSize != 256 {
			return errors.New("ES256 signature must be 64 bytes")
		}
		digest := sha256.Sum256([]byte(input))
		ok = ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, []byte(input), sig)
	case *rsa.PublicKey:
		digest := sha256.Sum256([]byte(input))
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		ok = hmac.Equal(m.Sum(nil), sig)
	default:
		return fmt.Errorf("%T keys cannot verify", public)
	}
	if !ok {
		return errors.New("signature does not verify")
	}
	return nil
}
