package awsiot

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// AccessKeyPrefix starts every access key id Gatehouse issues (AWS uses
// AKIA), so they are easy to recognise in logs and leaks.
const AccessKeyPrefix = "GHIA"

// Keys manages AWS Signature V4 access keys.
type Keys struct {
	store  *store.Store
	events *events.Log
	sealer *seal.Sealer
	rand   io.Reader
	now    func() time.Time
}

// NewKeys returns the access key service; rand and now default to
// crypto/rand and time.Now.
func NewKeys(s *store.Store, log *events.Log, sealer *seal.Sealer, rand io.Reader, now func() time.Time) *Keys {
	if rand == nil {
		rand = cryptorand.Reader
	}
	if now == nil {
		now = time.Now
	}
	return &Keys{store: s, events: log, sealer: sealer, rand: rand, now: now}
}

// additionalData binds a sealed secret to its key id, so a sealed value
// copied to another row does not open.
func additionalData(id string) []byte { return []byte("aws-access-key:" + id) }

// Create issues an access key with roles (admin: read and write; operator:
// read only). The secret is returned once.
func (k *Keys) Create(ctx context.Context, name string, roles []string) (*store.AWSAccessKey, string, error) {
	var problems []registry.Problem
	if name == "" || len(name) > 128 {
		problems = append(problems, registry.Problem{Field: "name", Message: "must be 1 to 128 bytes"})
	}
	if len(roles) == 0 {
		roles = []string{registry.RoleAdmin}
	}
	for _, r := range roles {
		if r != registry.RoleAdmin && r != registry.RoleOperator {
			problems = append(problems, registry.Problem{Field: "roles", Message: fmt.Sprintf("%q is not admin or operator", r)})
		}
	}
	if len(problems) > 0 {
		return nil, "", &registry.InvalidError{Problems: problems}
	}
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 30)
	if _, err := io.ReadFull(k.rand, idBytes); err != nil {
		return nil, "", fmt.Errorf("awsiot: key id: %w", err)
	}
	if _, err := io.ReadFull(k.rand, secretBytes); err != nil {
		return nil, "", fmt.Errorf("awsiot: secret: %w", err)
	}
	id := AccessKeyPrefix + base32.StdEncoding.EncodeToString(idBytes)
	secret := base64.StdEncoding.EncodeToString(secretBytes)
	sealed, err := k.sealer.Seal([]byte(secret), additionalData(id))
	if err != nil {
		return nil, "", fmt.Errorf("awsiot: seal secret: %w", err)
	}
	key := &store.AWSAccessKey{ID: id, Name: name, SealedSecret: []byte(base64.StdEncoding.EncodeToString(sealed)), Roles: roles,
		CreatedAt: k.now().UTC().Truncate(time.Microsecond)}
	_, err = k.events.Change(ctx, "aws_key.created", func(tx *store.Tx) (string, any, error) {
		return "aws_key/" + id, map[string]any{"name": name, "roles": roles}, tx.CreateAWSAccessKey(ctx, key)
	})
	if err != nil {
		return nil, "", err
	}
	return key, secret, nil
}

// List returns every access key (never the secrets).
func (k *Keys) List(ctx context.Context) ([]store.AWSAccessKey, error) {
	return k.store.ListAWSAccessKeys(ctx)
}

// Revoke deletes an access key.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	_, err := k.events.Change(ctx, "aws_key.revoked", func(tx *store.Tx) (string, any, error) {
		return "aws_key/" + id, nil, tx.DeleteAWSAccessKey(ctx, id)
	})
	return err
}

// secret returns the key and its secret for verification.
func (k *Keys) secret(ctx context.Context, id string) (*store.AWSAccessKey, []byte, error) {
	key, err := k.store.GetAWSAccessKey(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := base64.StdEncoding.DecodeString(string(key.SealedSecret))
	if err != nil {
		return nil, nil, fmt.Errorf("awsiot: stored secret of %s: %w", id, err)
	}
	secret, err := k.sealer.Open(sealed, additionalData(id))
	if err != nil {
		return nil, nil, fmt.Errorf("awsiot: open secret of %s: %w", id, err)
	}
	return key, secret, nil
}

func canWrite(key *store.AWSAccessKey) bool { return slices.Contains(key.Roles, registry.RoleAdmin) }
