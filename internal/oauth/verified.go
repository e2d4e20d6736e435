package oauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxVerified bounds the verified-token cache (about 300 bytes an entry).
const maxVerified = 50_000

// verifiedCache remembers access tokens whose signature and claims
// verified, keyed by the SHA-256 of the token, until they expire: a device
// that reconnects with the same token (a dropped connection, a NAT timeout,
// a broker-wide reconnect) costs a hash and a map lookup instead of an
// ECDSA verification, the larger part of authenticating a CONNECT.
//
// It caches only the result of verifyJWT - what cannot change for a given
// token - and is consulted under the same rules:
//   - revocation is not cached: VerifyAccessToken checks the jti against
//     the revocation list on every call, so a revoked token is refused at
//     once, as without the cache; nor is the status of the certificate a
//     token is bound to, asked on every call too;
//   - time is not cached: exp, nbf and iat are checked against the clock on
//     every hit, and an expired entry is dropped;
//   - the key is not cached: a hit counts only while the key that signed
//     the token (its kid) is still published, so retiring a key retires its
//     tokens at once.
//
// Only successful verifications are stored, so garbage cannot fill it; at
// the bound, an arbitrary entry makes room.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	c   *claims // never modified once stored
	kid string
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{m: map[[sha256.Size]byte]verifiedEntry{}}
}

func (v *verifiedCache) get(key [sha256.Size]byte) (verifiedEntry, bool) {
	v.mu.RLock()
	e, ok := v.m[key]
	v.mu.RUnlock()
	return e, ok
}

func (v *verifiedCache) put(key [sha256.Size]byte, e verifiedEntry, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= maxVerified {
		// Look at a few entries (map order is random): drop the expired
		// ones among them, and the first one in any case.
		visited := 0
		for k, old := range v.m {
			if visited == 0 || !now.Before(time.Unix(old.c.Expiry, 0)) {
				delete(v.m, k)
			}
			if visited++; visited >= 64 {
				break
			}
		}
	}
	v.m[key] = e
}

func (v *verifiedCache) drop(key [sha256.Size]byte) {
	v.mu.Lock()
	delete(v.m, key)
	v.mu.Unlock()
}
