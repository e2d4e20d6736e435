package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// keyReload bounds how long a replica keeps using its cached key set before
// looking for keys another replica rotated in.
const keyReload = 30 * time.Second

// signingKey is a usable signing key (or, in HS256 mode, the shared secret).
type signingKey struct {
	kid       string
	alg       string
	public    any // verification key: *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey or []byte
	jwk       jose.JSONWebKey
	jwt       *jwtSigner
	createdAt time.Time
}

// keyring caches the published signing keys: the newest is current, the
// one before it previous.
type keyring struct {
	s *Server

	mu       sync.RWMutex
	cur      *signingKey
	byKID    map[string]*signingKey
	loadedAt time.Time
	reload   sync.Mutex
}

func newKeyring(s *Server) *keyring {
	kr := &keyring{s: s, byKID: map[string]*signingKey{}}
	if s.alg == HS256 {
		sum := sha256.Sum256(s.hsSecret)
		k := &signingKey{kid: "hs256-" + base64.RawURLEncoding.EncodeToString(sum[:6]), alg: HS256, public: s.hsSecret}
		k.jwt, _ = newJWTSigner(HS256, k.kid, s.hsSecret) // fails only for other algorithms
		kr.cur = k
		kr.byKID[k.kid] = k
	}
	return kr
}

// current returns the key to sign with, loading keys on first use and
// rotating when the current one is older than the rotation period or of
// another algorithm than configured.
func (kr *keyring) current(ctx context.Context) (*signingKey, error) {
	now := kr.s.now()
	kr.mu.RLock()
	cur, loadedAt := kr.cur, kr.loadedAt
	kr.mu.RUnlock()
	if kr.s.alg == HS256 {
		return cur, nil
	}
	if cur != nil && now.Sub(loadedAt) < keyReload && now.Sub(cur.createdAt) < kr.s.rotation {
		return cur, nil
	}
	if cur != nil && !kr.reload.TryLock() {
		// Someone else is reloading; the cached key is still good to use
		// for the moment.
		return cur, nil
	} else if cur == nil {
		kr.reload.Lock()
	}
	defer kr.reload.Unlock()
	if err := kr.load(ctx); err != nil {
		return nil, err
	}
	kr.mu.RLock()
	cur = kr.cur
	kr.mu.RUnlock()
	if cur == nil || cur.alg != kr.s.alg || now.Sub(cur.createdAt) >= kr.s.rotation {
		if err := kr.rotate(ctx, false); err != nil {
			return nil, err
		}
		kr.mu.RLock()
		cur = kr.cur
		kr.mu.RUnlock()
	}
	return cur, nil
}

// lookup returns the published key with kid, reloading the set once if it
// is unknown (another replica may have rotated).
func (kr *keyring) lookup(ctx context.Context, kid string) (*signingKey, bool) {
	kr.mu.RLock()
	k, ok := kr.byKID[kid]
	loadedAt := kr.loadedAt
	kr.mu.RUnlock()
	if ok || kr.s.alg == HS256 || kr.s.now().Sub(loadedAt) < time.Second {
		return k, ok
	}
	if !kr.reload.TryLock() {
		return nil, false
	}
	err := kr.load(ctx)
	kr.reload.Unlock()
	if err != nil {
		kr.s.log.ErrorContext(ctx, "reload signing keys", "err", err)
		return nil, false
	}
	kr.mu.RLock()
	k, ok = kr.byKID[kid]
	kr.mu.RUnlock()
	return k, ok
}

// refresh reloads the keys now: another replica rotated them.
func (kr *keyring) refresh(ctx context.Context) {
	if kr.s.alg == HS256 {
		return
	}
	kr.reload.Lock()
	defer kr.reload.Unlock()
	if err := kr.load(ctx); err != nil {
		kr.s.log.ErrorContext(ctx, "reload signing keys", "err", err)
	}
}

// has reports whether kid is among the loaded keys, without reloading.
func (kr *keyring) has(kid string) bool {
	kr.mu.RLock()
	_, ok := kr.byKID[kid]
	kr.mu.RUnlock()
	return ok
}

// published returns the keys in the JWKS, current first.
func (kr *keyring) published(ctx context.Context) ([]*signingKey, error) {
	if _, err := kr.current(ctx); err != nil {
		return nil, err
	}
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	out := []*signingKey{kr.cur}
	for _, k := range kr.byKID {
		if k != kr.cur {
			out = append(out, k)
		}
	}
	return out, nil
}

// load reads the unretired keys from the store and opens them.
func (kr *keyring) load(ctx context.Context) error {
	rows, err := kr.s.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("oauth: load signing keys: %w", err)
	}
	byKID := make(map[string]*signingKey, len(rows))
	var cur *signingKey
	for i, row := range rows {
		if i >= 2 {
			break // only current and previous are published
		}
		k, err := kr.open(row)
		if err != nil {
			return err
		}
		byKID[k.kid] = k
		if cur == nil {
			cur = k
		}
	}
	kr.mu.Lock()
	kr.cur, kr.byKID, kr.loadedAt = cur, byKID, kr.s.now()
	kr.mu.Unlock()
	return nil
}

func sealAD(kid string) []byte { return []byte("gatehouse/oauth/signing-key/" + kid) }

func (kr *keyring) open(row store.SigningKey) (*signingKey, error) {
	der, err := kr.s.sealer.Open(row.SealedPrivate, sealAD(row.KID))
	if err != nil {
		return nil, fmt.Errorf("oauth: open signing key %s: %w", row.KID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("oauth: parse signing key %s: %w", row.KID, err)
	}
	return newSigningKey(row.KID, row.Algorithm, priv, row.CreatedAt)
}

func newSigningKey(kid, alg string, priv any, createdAt time.Time) (*signingKey, error) {
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("oauth: signing key %s: %T is not a signer", kid, priv)
	}
	k := &signingKey{kid: kid, alg: alg, public: signer.Public(), createdAt: createdAt}
	k.jwk = jose.JSONWebKey{Key: signer.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
	var err error
	if k.jwt, err = newJWTSigner(alg, kid, priv); err != nil {
		return nil, fmt.Errorf("oauth: signing key %s: %w", kid, err)
	}
	return k, nil
}

// generate makes a private key for alg.
func (s *Server) generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), s.rand)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(s.rand)
		return priv, err
	case RS256:
		return rsa.GenerateKey(s.rand, 2048)
	}
	return nil, fmt.Errorf("oauth: cannot generate a key for %s", alg)
}

// ErrRotationUnsupported is returned by RotateKeys in HS256 mode, whose
// shared secret is configured, not generated.
var ErrRotationUnsupported = errors.New("oauth: HS256 shared secret cannot be rotated by Gatehouse; change the configured secret")

// RotateKeys makes a new current signing key now. The old current key stays
// published as the previous key, so tokens it signed verify until the next
// rotation; the key before it is retired.
func (s *Server) RotateKeys(ctx context.Context) error {
	if s.alg == HS256 {
		return ErrRotationUnsupported
	}
	s.keys.reload.Lock()
	defer s.keys.reload.Unlock()
	return s.keys.rotate(ctx, true)
}

// rotate creates a new key in a transaction holding the rotation lock. If
// force is false it first checks whether another replica already did.
// The caller holds kr.reload.
func (kr *keyring) rotate(ctx context.Context, force bool) error {
	s := kr.s
	priv, err := s.generate(s.alg)
	if err != nil {
		return fmt.Errorf("oauth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("oauth: encode signing key: %w", err)
	}
	pubJWK, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), Algorithm: s.alg, Use: "sig"})
	if err != nil {
		return fmt.Errorf("oauth: encode public key: %w", err)
	}
	thumb, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("oauth: key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb[:12])
	sealed, err := s.sealer.Seal(der, sealAD(kid))
	if err != nil {
		return fmt.Errorf("oauth: seal signing key: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var retired []string
	rotated := false
	err = s.change(ctx, "key.rotated", func(tx *store.Tx) (string, any, error) {
		if err := tx.LockOAuthKeys(ctx); err != nil {
			return "", nil, err
		}
		keys, err := tx.ListSigningKeys(ctx)
		if err != nil {
			return "", nil, err
		}
		if !force && len(keys) > 0 && keys[0].Algorithm == s.alg && now.Sub(keys[0].CreatedAt) < s.rotation {
			return "", nil, errSkip // another replica rotated meanwhile
		}
		created := now
		if len(keys) > 0 && !created.After(keys[0].CreatedAt) {
			// Keys are ordered by creation; keep the new one the newest
			// even if clocks disagree.
			created = keys[0].CreatedAt.Add(time.Microsecond)
		}
		if err := tx.CreateSigningKey(ctx, &store.SigningKey{KID: kid, Algorithm: s.alg, PublicJWK: pubJWK, SealedPrivate: sealed, CreatedAt: created}); err != nil {
			return "", nil, err
		}
		// The newest existing key becomes previous; older ones retire.
		for i, k := range keys {
			if i >= 1 {
				if err := tx.RetireSigningKey(ctx, k.KID, now); err != nil {
					return "", nil, err
				}
				retired = append(retired, k.KID)
			}
		}
		rotated = true
		return "oauth/keys", map[string]any{"kid": kid, "alg": s.alg, "retired": retired}, nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return fmt.Errorf("oauth: rotate signing key: %w", err)
	}
	if rotated {
		s.log.InfoContext(ctx, "signing key rotated", "kid", kid, "alg", s.alg, "retired", retired)
	}
	return kr.load(ctx)
}

// errSkip rolls back a change that turned out to be unnecessary.
var errSkip = errors.New("oauth: nothing to do")

// ErrNoSigningKeys: the store holds no signing key yet (no server has
// started on it).
var ErrNoSigningKeys = errors.New("oauth: the database holds no signing keys yet (start gatehouse serve on it first)")

// LoadKeys reads and opens the published signing keys now, without ever
// creating or rotating one: a verifier that must not write (the Mosquitto
// plugin on a read-only store) calls it at start to fail there, with the
// master key's error, rather than at the first CONNECT. Verification
// reloads keys by itself later.
func (s *Server) LoadKeys(ctx context.Context) error {
	if s.alg == HS256 {
		return nil
	}
	s.keys.reload.Lock()
	defer s.keys.reload.Unlock()
	if err := s.keys.load(ctx); err != nil {
		return err
	}
	if !s.keys.hasAny() {
		return ErrNoSigningKeys
	}
	return nil
}

func (kr *keyring) hasAny() bool {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return len(kr.byKID) > 0
}
