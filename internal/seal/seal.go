package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

// Sealed format, version 1:
//
//	off  len  field
//	0    1    version (1)
//	1    4    key id of the master key, big endian
//	5    12   nonce for wrapping the data key
//	17   48   data key (32) sealed by the key-encryption key, with GCM tag (16)
//	65   12   nonce for the data
//	77   n+16 plaintext (n) sealed by the data key, with GCM tag
//
// The wrapped data key is authenticated together with bytes 0-4; the data
// with bytes 0-76 followed by the caller's additional data.
const (
	version1      = 1
	nonceSize     = 12
	tagSize       = 16
	dataKeySize   = 32
	headerSize    = 1 + 4
	wrappedSize   = dataKeySize + tagSize
	prefixSize    = headerSize + nonceSize + wrappedSize + nonceSize
	minSealedSize = prefixSize + tagSize
)

// HKDF labels. The key-encryption key and the key id are derived from the
// master key under different labels, so the master key itself is never used
// directly and the id reveals nothing about the key.
const (
	labelKEK   = "gatehouse/seal/v1/key-encryption-key"
	labelKeyID = "gatehouse/seal/v1/key-id"
)

// ErrMalformed reports a sealed value that is truncated or of an unknown
// format version.
var ErrMalformed = errors.New("seal: malformed sealed value")

// ErrAuthentication reports a sealed value that does not open: it was
// modified, sealed with other additional data, or sealed by another key whose
// id happens to match.
var ErrAuthentication = errors.New("seal: message authentication failed")

// UnknownKeyError reports a sealed value whose master key this Sealer does
// not hold, typically an old key that was dropped before everything sealed
// under it was resealed.
type UnknownKeyError struct {
	KeyID uint32
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("seal: sealed by unknown master key %08x", e.KeyID)
}

// Sealer seals and opens values with a primary master key and opens values
// sealed under older master keys. It is safe for concurrent use.
type Sealer struct {
	primary uint32
	keks    map[uint32]cipher.AEAD
	rand    io.Reader
}

type config struct {
	oldKeys [][]byte
	rand    io.Reader
}

// Option configures New.
type Option func(*config)

// WithOldKeys adds master keys that Open and Reseal still accept but Seal no
// longer uses. Pass the previous master keys during a rotation.
func WithOldKeys(keys ...[]byte) Option {
	return func(c *config) { c.oldKeys = append(c.oldKeys, keys...) }
}

// WithRand sets the source of data keys and nonces. The default is
// crypto/rand.Reader. It must be cryptographically secure; tests may pass a
// deterministic reader.
func WithRand(r io.Reader) Option {
	return func(c *config) { c.rand = r }
}

// New returns a Sealer that seals with masterKey, which must be KeySize
// bytes.
func New(masterKey []byte, opts ...Option) (*Sealer, error) {
	cfg := config{rand: rand.Reader}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.rand == nil {
		return nil, errors.New("seal: nil random source")
	}
	s := &Sealer{keks: make(map[uint32]cipher.AEAD, 1+len(cfg.oldKeys)), rand: cfg.rand}
	for i, k := range append([][]byte{masterKey}, cfg.oldKeys...) {
		id, aead, err := deriveKEK(k)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("seal: master key: %w", err)
			}
			return nil, fmt.Errorf("seal: old key %d: %w", i-1, err)
		}
		if _, dup := s.keks[id]; dup {
			return nil, fmt.Errorf("seal: old key %d: duplicate key id %08x (same key given twice?)", i-1, id)
		}
		s.keks[id] = aead
		if i == 0 {
			s.primary = id
		}
	}
	return s, nil
}

// KeyID returns the id of the primary master key, the one Seal uses. It is
// derived from the key and safe to log.
func (s *Sealer) KeyID() uint32 { return s.primary }

// KeyID returns the id of the master key that sealed a value.
func KeyID(sealed []byte) (uint32, error) {
	if len(sealed) < minSealedSize {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(sealed), minSealedSize)
	}
	if sealed[0] != version1 {
		return 0, fmt.Errorf("%w: format version %d", ErrMalformed, sealed[0])
	}
	return binary.BigEndian.Uint32(sealed[1:5]), nil
}

// Seal encrypts plaintext under a fresh data key wrapped by the primary
// master key. additionalData is authenticated but not stored; Open needs the
// same bytes.
func (s *Sealer) Seal(plaintext, additionalData []byte) ([]byte, error) {
	out := make([]byte, prefixSize, prefixSize+len(plaintext)+tagSize)
	out[0] = version1
	binary.BigEndian.PutUint32(out[1:5], s.primary)

	var dataKey [dataKeySize]byte
	defer clear(dataKey[:])
	wrapNonce := out[headerSize : headerSize+nonceSize]
	dataNonce := out[prefixSize-nonceSize : prefixSize]
	if _, err := io.ReadFull(s.rand, dataKey[:]); err != nil {
		return nil, fmt.Errorf("seal: read data key: %w", err)
	}
	if _, err := io.ReadFull(s.rand, wrapNonce); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	if _, err := io.ReadFull(s.rand, dataNonce); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	wrapped := s.keks[s.primary].Seal(nil, wrapNonce, dataKey[:], out[:headerSize])
	copy(out[headerSize+nonceSize:], wrapped)

	dek, err := newGCM(dataKey[:])
	if err != nil {
		return nil, err
	}
	return dek.Seal(out, dataNonce, plaintext, dataAD(out[:prefixSize], additionalData)), nil
}

// Open decrypts a value sealed by Seal under any master key this Sealer
// holds. Errors are ErrMalformed, *UnknownKeyError or ErrAuthentication.
func (s *Sealer) Open(sealed, additionalData []byte) ([]byte, error) {
	id, err := KeyID(sealed)
	if err != nil {
		return nil, err
	}
	kek, ok := s.keks[id]
	if !ok {
		return nil, &UnknownKeyError{KeyID: id}
	}
	wrapNonce := sealed[headerSize : headerSize+nonceSize]
	wrapped := sealed[headerSize+nonceSize : prefixSize-nonceSize]
	dataKey, err := kek.Open(make([]byte, 0, dataKeySize), wrapNonce, wrapped, sealed[:headerSize])
	if err != nil {
		return nil, fmt.Errorf("%w (data key)", ErrAuthentication)
	}
	defer clear(dataKey)
	dek, err := newGCM(dataKey)
	if err != nil {
		return nil, err
	}
	dataNonce := sealed[prefixSize-nonceSize : prefixSize]
	plaintext, err := dek.Open(nil, dataNonce, sealed[prefixSize:], dataAD(sealed[:prefixSize], additionalData))
	if err != nil {
		return nil, fmt.Errorf("%w (data)", ErrAuthentication)
	}
	return plaintext, nil
}

// NeedsReseal reports whether a sealed value was sealed under a master key
// other than the primary one (or cannot be read at all).
func (s *Sealer) NeedsReseal(sealed []byte) bool {
	id, err := KeyID(sealed)
	return err != nil || id != s.primary
}

// Reseal opens a value under whichever held key sealed it and seals it again
// under the primary key. Run it over every stored value before dropping an
// old key.
func (s *Sealer) Reseal(sealed, additionalData []byte) ([]byte, error) {
	plaintext, err := s.Open(sealed, additionalData)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return s.Seal(plaintext, additionalData)
}

// deriveKEK derives the key id and the key-encryption AEAD of a master key.
func deriveKEK(masterKey []byte) (uint32, cipher.AEAD, error) {
	if len(masterKey) != KeySize {
		return 0, nil, fmt.Errorf("got %d bytes, want %d", len(masterKey), KeySize)
	}
	kek, err := hkdf.Key(sha256.New, masterKey, nil, labelKEK, KeySize)
	if err != nil {
		return 0, nil, fmt.Errorf("derive key: %w", err)
	}
	defer clear(kek)
	idBytes, err := hkdf.Key(sha256.New, masterKey, nil, labelKeyID, 4)
	if err != nil {
		return 0, nil, fmt.Errorf("derive key id: %w", err)
	}
	aead, err := newGCM(kek)
	if err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(idBytes), aead, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

// dataAD is the additional data of the data ciphertext: the fixed-size
// prefix, then the caller's additional data. The prefix has a fixed size, so
// the concatenation is unambiguous.
func dataAD(prefix, additionalData []byte) []byte {
	ad := make([]byte, 0, len(prefix)+len(additionalData))
	return append(append(ad, prefix...), additionalData...)
}
