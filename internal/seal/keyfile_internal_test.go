package seal

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// failingFile is a real temporary file whose step named fail returns an
// error, like a full disk (Write) or a failing device (Sync).
type failingFile struct {
	*os.File
	fail string
}

var errInjected = errors.New("injected failure")

func (f failingFile) Chmod(mode fs.FileMode) error {
	if f.fail == "chmod" {
		return errInjected
	}
	return f.File.Chmod(mode)
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.fail == "write" {
		return 0, errInjected
	}
	return f.File.Write(p)
}

func (f failingFile) Sync() error {
	if f.fail == "sync" {
		return errInjected
	}
	return f.File.Sync()
}

func (f failingFile) Close() error {
	err := f.File.Close()
	if f.fail == "close" {
		return errInjected
	}
	return err
}

// TestWriteKeyFileFailingWriter: when writing, syncing or closing the new
// key file fails, WriteKeyFile (what `gatehouse keys rotate-master` uses)
// returns the error, the installed key is the old one and no temporary
// file is left behind. A shadowed err once dropped Write and Sync failures
// and installed an empty key.
func TestWriteKeyFileFailingWriter(t *testing.T) {
	for _, step := range []string{"chmod", "write", "sync", "close"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "master.key")
			old := bytes.Repeat([]byte{1}, KeySize)
			if err := WriteKeyFile(path, old); err != nil {
				t.Fatal(err)
			}
			create := func(dir, pattern string) (tempFile, error) {
				f, err := os.CreateTemp(dir, pattern)
				if err != nil {
					return nil, err
				}
				return failingFile{File: f, fail: step}, nil
			}
			err := writeKeyFile(path, bytes.Repeat([]byte{2}, KeySize), create)
			if !errors.Is(err, errInjected) {
				t.Fatalf("writeKeyFile error = %v, want the injected %s failure", err, step)
			}
			got, err := ReadKeyFile(path)
			if err != nil || !bytes.Equal(got, old) {
				t.Fatalf("key file after failed write = %x, %v; want the old key %x", got, err, old)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("directory holds %v, want only master.key", names)
			}
		})
	}
}
