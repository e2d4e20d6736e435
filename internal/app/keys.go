package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/awsiot"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
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

// resealAD returns the additional data the values of a sealed column
// (table.column, as store.SealedColumns names them) were sealed with.
func resealAD(column string) (func(id string) []byte, bool) {
	switch column {
	case "oauth_signing_keys.sealed_private":
		return oauth.SigningKeyAD, true
	case "pki_cas.sealed_key":
		return certs.CAKeyAD, true
	case "pki_cas.sealed_root_key":
		return certs.CARootKeyAD, true
	case "aws_access_keys.sealed_secret":
		return awsiot.AccessKeyAD, true
	case "lobby_targets.api_token_sealed":
		return lobby.TargetTokenAD, true
	case "lobby_devices.assignment_secret":
		return lobby.AssignmentAD, true
	}
	return nil, false
}

// Resealed counts what ResealMasterKey did.
type Resealed struct {
	// Resealed values were moved from the old key to the new one; Already
	// were under the new key (an earlier run that did not install it).
	Resealed, Already int
}

// ResealMasterKey re-seals every sealed value in the database at dsn from
// master key oldKey to newKey in one transaction: all of them or, on any
// error, none. Each resealed value is opened with the new key alone
// before it is written. It does not touch key files.
func ResealMasterKey(ctx context.Context, dsn string, oldKey, newKey []byte) (Resealed, error) {
	var r Resealed
	oldID, err := seal.KeyIDOf(oldKey)
	if err != nil {
		return r, err
	}
	newID, err := seal.KeyIDOf(newKey)
	if err != nil {
		return r, err
	}
	sealer, err := seal.New(newKey, seal.WithOldKeys(oldKey))
	if err != nil {
		return r, err
	}
	onlyNew, err := seal.New(newKey)
	if err != nil {
		return r, err
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return r, err
	}
	defer st.Close()
	err = st.InTx(ctx, func(tx *store.Tx) error {
		r = Resealed{}
		values, err := tx.ListSealedValues(ctx)
		if err != nil {
			return err
		}
		for _, v := range values {
			name := v.Table + "." + v.Column
			adFor, ok := resealAD(name)
			if !ok {
				return fmt.Errorf("%s: no additional data known for this sealed column (a gatehouse bug): nothing changed", name)
			}
			ad := adFor(v.ID)
			if id, err := seal.KeyID(v.Value); err == nil && id == newID {
				if _, err := onlyNew.Open(v.Value, ad); err != nil {
					return fmt.Errorf("%s %q: %w", name, v.ID, err)
				}
				r.Already++
				continue
			}
			out, err := sealer.Reseal(v.Value, ad)
			var unknown *seal.UnknownKeyError
			if errors.As(err, &unknown) {
				return fmt.Errorf("%s %q is sealed by master key %08x, neither the current one (%08x) nor the new one (%08x): nothing changed",
					name, v.ID, unknown.KeyID, oldID, newID)
			}
			if err != nil {
				return fmt.Errorf("%s %q: %w: nothing changed", name, v.ID, err)
			}
			if _, err := onlyNew.Open(out, ad); err != nil {
				return fmt.Errorf("%s %q: resealed value does not open: %w", name, v.ID, err)
			}
			v.Value = out
			if err := tx.UpdateSealedValue(ctx, v); err != nil {
				return err
			}
			r.Resealed++
		}
		return nil
	})
	return r, err
}
