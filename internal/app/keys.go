package app

import (
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/seal"
)

// masterKeyHint explains an error opening a sealed key: the usual cause
// is a master key file other than the one the database was sealed with.
func masterKeyHint(err error, file string, key []byte) error {
	var unknown *seal.UnknownKeyError
	if !errors.As(err, &unknown) {
		return err
	}
	id, _ := seal.KeyIDOf(key)
	return fmt.Errorf("%w: the database is sealed with master key %08x but %s holds key %08x: "+
		"point secrets.masterKeyFile at the right key (after `gatehouse keys rotate-master` the previous key is kept as %s.old-<time>)",
		err, unknown.KeyID, file, id, file)
}

// readKeyFiles reads the previous master keys.
func readKeyFiles(paths []string) ([][]byte, error) {
	var keys [][]byte
	for _, p := range paths {
		k, err := seal.ReadKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}
