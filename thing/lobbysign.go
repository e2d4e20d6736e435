package thing

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// LobbyMessageType is the JWS "typ" of the lobby's messages.
const LobbyMessageType = "gatehouse-lobby+jwt"

// ErrLobbySignature means a message on the assignment topic is not signed
// by the lobby: it is not a JWS, its signing certificate is not one the
// device would accept as the lobby's TLS server certificate, its signature
// does not verify, or it names another device.
var ErrLobbySignature = errors.New("thing: lobby message not signed by the lobby")

// lobbyAlgorithms are the JWS algorithms a lobby signs with (those of its
// server certificate's key).
var lobbyAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256, jose.EdDSA}

// VerifyLobbyMessage checks a message the lobby published on the
// assignment topic of the device whose certificate fingerprint is fp, and
// returns what it says. The message is a compact JWS (typ
// LobbyMessageType) signed with the key of the lobby's TLS server
// certificate, whose chain is in its x5c header. It is accepted only if
// that chain verifies as the device's TLS connection to the lobby did:
// against roots (nil: the system roots) at time now, for serverAuth, and
// for one of the lobby's host names (the hosts of LobbyConfig.Lobbies) -
// and if the signature verifies and its "sub" is fp. Anything else fails
// with ErrLobbySignature. JoinLobby and WaitForAssignment use it; a device
// with its own MQTT client can too.
func VerifyLobbyMessage(msg []byte, fp string, hosts []string, roots *x509.CertPool, now time.Time) (*Assignment, error) {
	jws, err := jose.ParseSignedCompact(string(msg), lobbyAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLobbySignature, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrLobbySignature, len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != LobbyMessageType {
		return nil, fmt.Errorf("%w: typ %q", ErrLobbySignature, typ)
	}
	chains, err := h.Certificates(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, fmt.Errorf("%w: signing certificate: %w", ErrLobbySignature, err)
	}
	leaf := chains[0][0]
	named := false
	for _, host := range hosts {
		if leaf.VerifyHostname(host) == nil {
			named = true
			break
		}
	}
	if !named {
		return nil, fmt.Errorf("%w: the signing certificate is not for %v", ErrLobbySignature, hosts)
	}
	payload, err := jws.Verify(leaf.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLobbySignature, err)
	}
	var claims struct {
		Assignment
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrLobbySignature, err)
	}
	if claims.Sub != fp {
		return nil, fmt.Errorf("%w: the message is for device %.16s…", ErrLobbySignature, claims.Sub)
	}
	return &claims.Assignment, nil
}
