package seal_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/seal"
)

// TestWriteReadKeyFileAndKeyIDOf: a written key file reads back, replaces
// an existing one with mode 0600, ReadKeyFile never creates one, and
// KeyIDOf is the id values sealed under the key carry.
func TestWriteReadKeyFileAndKeyIDOf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	if _, err := seal.ReadKeyFile(path); err == nil {
		t.Fatal("ReadKeyFile of a missing file succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("ReadKeyFile created the file")
	}
	for _, key := range [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)} {
		if err := seal.WriteKeyFile(path, key); err != nil {
			t.Fatal(err)
		}
		got, err := seal.ReadKeyFile(path)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("ReadKeyFile = %x, %v; want %x", got, err, key)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
		s, err := seal.New(key)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := s.Seal([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		gotID, _ := seal.KeyID(sealed)
		wantID, err := seal.KeyIDOf(key)
		if err != nil || gotID != wantID {
			t.Errorf("KeyIDOf = %08x, %v; sealed values carry %08x", wantID, err, gotID)
		}
	}
	if err := seal.WriteKeyFile(path, []byte("short")); err == nil {
		t.Error("WriteKeyFile of a short key succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
