package lobby

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// MessageType is the JWS "typ" of every message the lobby publishes on a
// device's assignment topic.
const MessageType = "gatehouse-lobby+jwt"

// ErrNoSigner means the lobby has no key to sign what it tells devices
// (Config.Signer is unset: there is no MQTT over TLS listener).
var ErrNoSigner = errors.New("lobby: no signing certificate")

// sign wraps what the lobby tells device fp (a JSON object: an assignment,
// or {"config":"factory reset"}) in a compact JWS, signed with the key of
// the broker's TLS server certificate, whose chain rides in the x5c
// header. The claims gain "sub" (the device's fingerprint: a message for
// one device is worthless to another) and "iat".
//
// The device already verified that certificate chain when it opened its
// lobby session over TLS, against the roots it trusts the lobby by: it
// accepts a message only if the x5c chain verifies the same way (its
// roots, serverAuth, a lobby host name it was configured with) and the
// signature and "sub" check out. No key needs pinning beyond the CA the
// device already has. See docs/security.md, "Device lobby protocol
// security".
func (s *Service) sign(fp string, object []byte) ([]byte, error) {
	if s.cfg.Signer == nil {
		return nil, ErrNoSigner
	}
	cert, err := s.cfg.Signer()
	if err != nil {
		return nil, fmt.Errorf("lobby: signing certificate: %w", err)
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, ErrNoSigner
	}
	alg, err := signingAlgorithm(cert)
	if err != nil {
		return nil, err
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(object, &claims); err != nil {
		return nil, fmt.Errorf("lobby: message to sign: %w", err)
	}
	claims["sub"], _ = json.Marshal(fp)
	claims["iat"], _ = json.Marshal(s.now().Unix())
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("lobby: message to sign: %w", err)
	}
	x5c := make([]string, len(cert.Certificate))
	for i, der := range cert.Certificate {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cert.PrivateKey},
		(&jose.SignerOptions{}).WithType(MessageType).WithHeader("x5c", x5c))
	if err != nil {
		return nil, fmt.Errorf("lobby: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("lobby: sign: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("lobby: sign: %w", err)
	}
	return []byte(out), nil
}

// signingAlgorithm is the JWS algorithm of a certificate's key.
func signingAlgorithm(cert *tls.Certificate) (jose.SignatureAlgorithm, error) {
	switch k := cert.PrivateKey.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case *rsa.PrivateKey:
		return jose.RS256, nil
	case ed25519.PrivateKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("lobby: cannot sign with a %T server key", cert.PrivateKey)
}
