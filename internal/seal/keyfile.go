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
	tmpName, err := writeTempKeyFile(path, key, createTemp)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmpName) // after Link, path keeps the data
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

// tempFile is what writeTempKeyFile needs of an *os.File; tests substitute
// one whose writes fail.
type tempFile interface {
	Name() string
	Chmod(fs.FileMode) error
	Write([]byte) (int, error)
	Sync() error
	Close() error
}

// createTemp is the tempFile constructor outside tests.
func createTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

// writeTempKeyFile is the one write path of a key file: it writes key
// (base64 and a newline, mode 0600) to a new temporary file next to path,
// syncs and closes it, and returns its name. Any failure removes the
// temporary file and is returned, so no caller can install a partial key.
func writeTempKeyFile(path string, key []byte, create func(dir, pattern string) (tempFile, error)) (string, error) {
	tmp, err := create(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("seal: create key file: %w", err)
	}
	fail := func(what string, err error) (string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("seal: %s key file: %w", what, err)
	}
	text := append(base64.StdEncoding.AppendEncode(nil, key), '\n')
	// CreateTemp uses mode 0600; Chmod makes that independent of its
	// implementation.
	if err := tmp.Chmod(0o600); err != nil {
		return fail("create", err)
	}
	if _, err := tmp.Write(text); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("seal: close key file: %w", err)
	}
	return tmp.Name(), nil
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
// replacing what was there. If any step fails, path keeps its old content.
func WriteKeyFile(path string, key []byte) error {
	return writeKeyFile(path, key, createTemp)
}

func writeKeyFile(path string, key []byte, create func(dir, pattern string) (tempFile, error)) error {
	if len(key) != KeySize {
		return fmt.Errorf("seal: key is %d bytes, want %d", len(key), KeySize)
	}
	tmpName, err := writeTempKeyFile(path, key, create)
	if err != nil {
		return err
	}
	defer os.Remove(tmpName) // a no-op once renamed
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("seal: install key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// KeyIDOf is the key id values sealed under masterKey carry (see KeyID).
func KeyIDOf(masterKey []byte) (uint32, error) {
	id, _, err := deriveKEK(masterKey)
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	return id, nil
}
