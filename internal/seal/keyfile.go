package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFileSize bounds what LoadOrCreateKeyFile reads: a key file is 45
// bytes, anything much larger is the wrong file.
const maxKeyFileSize = 1 << 10

// LoadOrCreateKeyFile returns the master key stored at path, creating the
// file with a new random key from rand if it does not exist.
//
// The file holds the key in standard base64 followed by a newline, so it can
// also be produced with `head -c 32 /dev/urandom | base64` or copied into a
// secret manager. A new file is written with mode 0600 under a temporary name
// in the same directory, synced, and then linked into place, so readers never
// see a partial key and two processes racing to create it end up with the
// same key. A missing parent directory is created with mode 0700.
//
// The mode of an existing file is not checked: deployments mount keys in
// many ways (Kubernetes secrets are 0644 by default). Keep the file out of
// the database's backups.
func LoadOrCreateKeyFile(path string, rand io.Reader) ([]byte, error) {
	key, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if rand == nil {
		return nil, errors.New("seal: nil random source")
	}
	key = make([]byte, KeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, fmt.Errorf("seal: generate master key: %w", err)
	}
	created, err := createKeyFile(path, key)
	if err != nil {
		return nil, err
	}
	if !created {
		// Another process created the file first; use its key.
		return readKeyFile(path)
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: open key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seal: read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("seal: key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: not base64: %w", path, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key file %s: key is %d bytes, want %d", path, len(key), KeySize)
	}
	return key, nil
}

// createKeyFile writes key to path unless path already exists. It reports
// false, without error, if another file got there first.
func createKeyFile(path string, key []byte) (created bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("seal: create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("seal: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after Link, path keeps the data

	text := base64.StdEncoding.AppendEncode(nil, key)
	text = append(text, '\n')
	// CreateTemp uses mode 0600; Chmod makes that independent of its
	// implementation.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("seal: create key file: %w", err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return false, fmt.Errorf("seal: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("seal: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("seal: close key file: %w", err)
	}
	// Link, unlike Rename, fails if path exists: the first creator wins.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("seal: install key file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return false, err
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("seal: sync key directory: %w", err)
	}
	return nil
}

// ReadKeyFile returns the master key stored at path; unlike
// LoadOrCreateKeyFile it never creates one.
func ReadKeyFile(path string) ([]byte, error) { return readKeyFile(path) }

// WriteKeyFile stores key at path like a created key file (base64, mode
// 0600, written under a temporary name, synced, then renamed into place),
// replacing what was there.
func WriteKeyFile(path string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("seal: key is %d bytes, want %d", len(key), KeySize)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("seal: write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	text := append(base64.StdEncoding.AppendEncode(nil, key), '\n')
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(text)
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal: write key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("seal: install key file: %w", err)
	}
	return syncDir(dir)
}

// KeyIDOf is the key id values sealed under masterKey carry (see KeyID).
func KeyIDOf(masterKey []byte) (uint32, error) {
	id, _, err := deriveKEK(masterKey)
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	return id, nil
}
