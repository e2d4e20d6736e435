package seal_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-iot/gatehouse/internal/seal"
)

func Example() {
	dir, err := os.MkdirTemp("", "gatehouse-seal-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	key, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "master.key"), rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := seal.New(key)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Bind the sealed value to where it is stored.
	sealed, err := s.Seal([]byte("PKCS#8 bytes of the CA key"), []byte("ca/root/key"))
	if err != nil {
		fmt.Println(err)
		return
	}
	plaintext, err := s.Open(sealed, []byte("ca/root/key"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(plaintext))
	_, err = s.Open(sealed, []byte("oauth/signing-key"))
	fmt.Println(err)
	// Output:
	// PKCS#8 bytes of the CA key
	// seal: message authentication failed (data)
}

func ExampleWithOldKeys() {
	oldKey := make([]byte, seal.KeySize)
	newKey := make([]byte, seal.KeySize)
	newKey[0] = 1

	before, _ := seal.New(oldKey)
	sealed, _ := before.Seal([]byte("secret"), nil)

	// After a rotation: seal with the new key, still open the old values.
	after, _ := seal.New(newKey, seal.WithOldKeys(oldKey))
	fmt.Println(after.NeedsReseal(sealed))
	resealed, _ := after.Reseal(sealed, nil)
	fmt.Println(after.NeedsReseal(resealed))
	// Output:
	// true
	// false
}
