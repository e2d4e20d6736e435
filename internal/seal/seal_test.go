package seal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testRand is a deterministic, NOT secure, random source for tests.
func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func mustNew(t *testing.T, key []byte, opts ...Option) *Sealer {
	t.Helper()
	s, err := New(key, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustNew(t, testKey(1), WithRand(testRand(1)))
	for _, tc := range []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"empty", nil, nil},
		{"key", []byte("-----BEGIN PRIVATE KEY-----\n..."), []byte("ca/root/key")},
		{"large", bytes.Repeat([]byte{0xAB}, 1<<16), []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := s.Seal(tc.plaintext, tc.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if got, want := len(sealed), minSealedSize+len(tc.plaintext); got != want {
				t.Errorf("len(sealed) = %d, want %d", got, want)
			}
			if len(tc.plaintext) > 0 && bytes.Contains(sealed, tc.plaintext) {
				t.Errorf("sealed value contains the plaintext")
			}
			got, err := s.Open(sealed, tc.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Errorf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	s := mustNew(t, testKey(1))
	a, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Errorf("two seals of the same plaintext are equal")
	}
}

func TestOpenRejects(t *testing.T) {
	s := mustNew(t, testKey(1), WithRand(testRand(2)))
	ad := []byte("ca/root/key")
	sealed, err := s.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	other := mustNew(t, testKey(2))
	for _, tc := range []struct {
		name    string
		s       *Sealer
		sealed  []byte
		ad      []byte
		wantErr error
		wantKey bool // *UnknownKeyError
	}{
		{name: "wrong additional data", s: s, sealed: sealed, ad: []byte("ca/intermediate/key"), wantErr: ErrAuthentication},
		{name: "missing additional data", s: s, sealed: sealed, ad: nil, wantErr: ErrAuthentication},
		{name: "wrong key", s: other, sealed: sealed, ad: ad, wantKey: true},
		{name: "tampered version", s: s, sealed: flip(0), ad: ad, wantErr: ErrMalformed},
		{name: "tampered key id", s: s, sealed: flip(2), ad: ad, wantKey: true},
		{name: "tampered wrap nonce", s: s, sealed: flip(headerSize), ad: ad, wantErr: ErrAuthentication},
		{name: "tampered wrapped key", s: s, sealed: flip(headerSize + nonceSize + 3), ad: ad, wantErr: ErrAuthentication},
		{name: "tampered data nonce", s: s, sealed: flip(prefixSize - 1), ad: ad, wantErr: ErrAuthentication},
		{name: "tampered ciphertext", s: s, sealed: flip(prefixSize), ad: ad, wantErr: ErrAuthentication},
		{name: "tampered tag", s: s, sealed: flip(len(sealed) - 1), ad: ad, wantErr: ErrAuthentication},
		{name: "truncated", s: s, sealed: sealed[:len(sealed)-1], ad: ad, wantErr: ErrAuthentication},
		{name: "too short", s: s, sealed: sealed[:minSealedSize-1], ad: ad, wantErr: ErrMalformed},
		{name: "empty", s: s, sealed: nil, ad: ad, wantErr: ErrMalformed},
		{name: "extended", s: s, sealed: append(bytes.Clone(sealed), 0), ad: ad, wantErr: ErrAuthentication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.s.Open(tc.sealed, tc.ad)
			if err == nil {
				t.Fatalf("Open = %q, nil; want error", got)
			}
			if got != nil {
				t.Errorf("Open returned plaintext %q with error", got)
			}
			var uk *UnknownKeyError
			if gotKey := errors.As(err, &uk); gotKey != tc.wantKey {
				t.Errorf("Open error %v: is *UnknownKeyError = %v, want %v", err, gotKey, tc.wantKey)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		opts []Option
	}{
		{"nil key", nil, nil},
		{"short key", make([]byte, 16), nil},
		{"long key", make([]byte, 33), nil},
		{"bad old key", testKey(1), []Option{WithOldKeys(make([]byte, 31))}},
		{"duplicate old key", testKey(1), []Option{WithOldKeys(testKey(1))}},
		{"nil rand", testKey(1), []Option{WithRand(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := New(tc.key, tc.opts...); err == nil {
				t.Errorf("New = %v, nil; want error", s)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := testKey(1), testKey(2)
	before := mustNew(t, oldKey)
	sealed, err := before.Seal([]byte("signing key"), []byte("oauth/k1"))
	if err != nil {
		t.Fatal(err)
	}
	after := mustNew(t, newKey, WithOldKeys(oldKey))
	if before.KeyID() == after.KeyID() {
		t.Fatalf("key ids of different keys are equal: %08x", after.KeyID())
	}
	if !after.NeedsReseal(sealed) {
		t.Errorf("NeedsReseal(old) = false, want true")
	}
	got, err := after.Open(sealed, []byte("oauth/k1"))
	if err != nil || string(got) != "signing key" {
		t.Fatalf("Open(old) = %q, %v; want %q, nil", got, err, "signing key")
	}
	resealed, err := after.Reseal(sealed, []byte("oauth/k1"))
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	if after.NeedsReseal(resealed) {
		t.Errorf("NeedsReseal(resealed) = true, want false")
	}
	if id, err := KeyID(resealed); err != nil || id != after.KeyID() {
		t.Errorf("KeyID(resealed) = %08x, %v; want %08x, nil", id, err, after.KeyID())
	}
	// Once the old key is dropped, only the resealed value opens.
	only := mustNew(t, newKey)
	if _, err := only.Open(resealed, []byte("oauth/k1")); err != nil {
		t.Errorf("Open(resealed) without old key: %v", err)
	}
	var uk *UnknownKeyError
	if _, err := only.Open(sealed, []byte("oauth/k1")); !errors.As(err, &uk) || uk.KeyID != before.KeyID() {
		t.Errorf("Open(old) without old key: got %v, want *UnknownKeyError{%08x}", err, before.KeyID())
	}
	if _, err := after.Reseal(sealed, []byte("other")); !errors.Is(err, ErrAuthentication) {
		t.Errorf("Reseal with wrong additional data: got %v, want ErrAuthentication", err)
	}
}

func TestKeyIDIsStable(t *testing.T) {
	a, b := mustNew(t, testKey(7)), mustNew(t, testKey(7))
	if a.KeyID() != b.KeyID() {
		t.Errorf("KeyID differs for the same key: %08x vs %08x", a.KeyID(), b.KeyID())
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestSealRandFailure(t *testing.T) {
	s := mustNew(t, testKey(1), WithRand(failingReader{}))
	if got, err := s.Seal([]byte("x"), nil); err == nil || !strings.Contains(err.Error(), "entropy exhausted") {
		t.Errorf("Seal = %x, %v; want the reader's error", got, err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	created, err := LoadOrCreateKeyFile(path, testRand(3))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(created) != KeySize {
		t.Fatalf("created key has %d bytes, want %d", len(created), KeySize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %o, want 600", got)
	}
	loaded, err := LoadOrCreateKeyFile(path, failingReader{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !bytes.Equal(loaded, created) {
		t.Errorf("loaded key %x, want created key %x", loaded, created)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory has %d entries, want 1 (temporary file left behind?)", len(entries))
	}
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKeyFile(path, testRand(uint64(i))) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("goroutine %d got key %x, goroutine 0 got %x", i, keys[i], keys[0])
		}
	}
}

func TestLoadKeyFileRejects(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{"not base64", "not base64 at all!\n"},
		{"short key", "AAAA\n"},
		{"empty", ""},
		{"too large", strings.Repeat("A", maxKeyFileSize+4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if key, err := LoadOrCreateKeyFile(path, testRand(1)); err == nil {
				t.Errorf("LoadOrCreateKeyFile = %x, nil; want error", key)
			}
		})
	}
}

func TestLoadKeyFileAcceptsShellGeneratedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	// head -c 32 /dev/zero | base64
	if err := os.WriteFile(path, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateKeyFile(path, nil)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !bytes.Equal(key, make([]byte, KeySize)) {
		t.Errorf("key = %x, want 32 zero bytes", key)
	}
}

func BenchmarkSealOpen(b *testing.B) {
	s, err := New(testKey(1))
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 256)
	ad := []byte("ca/root/key")
	for b.Loop() {
		sealed, err := s.Seal(pt, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Open(sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	s, err := New(testKey(1), WithRand(testRand(9)))
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := s.Seal([]byte("secret"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Add(sealed[:minSealedSize], []byte("ad"))
	f.Fuzz(func(t *testing.T, data, ad []byte) {
		pt, err := s.Open(data, ad)
		if err == nil && !(bytes.Equal(data, sealed) && bytes.Equal(ad, []byte("ad"))) {
			t.Fatalf("Open accepted a forged value: %x (ad %q) -> %q", data, ad, pt)
		}
	})
}
