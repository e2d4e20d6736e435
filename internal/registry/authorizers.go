package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// MaxAuthorizerKeys is how many token-signing keys an authorizer holds, as
// in AWS IoT (two, so a key can be rotated).
const MaxAuthorizerKeys = 2

var tokenKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// AuthorizerSpec is the writable part of an authorizer.
type AuthorizerSpec struct {
	Name            string            `json:"authorizerName"`
	TokenKeyName    string            `json:"tokenKeyName,omitempty"`
	PublicKeys      map[string]string `json:"tokenSigningPublicKeys,omitempty"`
	SigningDisabled bool              `json:"signingDisabled,omitempty"`
	Status          string            `json:"status,omitempty"`
	Default         bool              `json:"default,omitempty"`
}

// ParseSigningKey parses a PEM public key an authorizer verifies token
// signatures with: RSA of at least 2048 bits, or ECDSA.
func ParseSigningKey(pemText string) (any, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, fmt.Errorf("not PEM")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: want at least 2048", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("%T keys are not supported: use RSA or ECDSA", pub)
	}
	return pub, nil
}

func checkAuthorizer(p *problems, a *store.Authorizer) {
	checkName(p, "authorizerName", a.Name)
	if !tokenKeyRE.MatchString(a.TokenKeyName) {
		p.add("tokenKeyName", "%q: use 1 to 128 of a-z A-Z 0-9 _ -", truncate(a.TokenKeyName))
	}
	if a.Status != store.AuthorizerActive && a.Status != store.AuthorizerInactive {
		p.add("status", "%q is not ACTIVE or INACTIVE", truncate(a.Status))
	}
	if !a.SigningDisabled && len(a.PublicKeys) == 0 {
		p.add("tokenSigningPublicKeys", "at least one key is needed unless signingDisabled")
	}
	if len(a.PublicKeys) > MaxAuthorizerKeys {
		p.add("tokenSigningPublicKeys", "%d keys, at most %d allowed", len(a.PublicKeys), MaxAuthorizerKeys)
	}
	for name, k := range a.PublicKeys {
		if !tokenKeyRE.MatchString(name) {
			p.add("tokenSigningPublicKeys", "key name %q: use 1 to 128 of a-z A-Z 0-9 _ -", truncate(name))
		}
		if _, err := ParseSigningKey(k); err != nil {
			p.add("tokenSigningPublicKeys."+truncate(name), "%v", err)
		}
	}
}

// CreateAuthorizer registers a custom authorizer.
func (s *Service) CreateAuthorizer(ctx context.Context, in AuthorizerSpec) (*store.Authorizer, error) {
	now := s.now()
	a := &store.Authorizer{Name: in.Name, TokenKeyName: in.TokenKeyName, PublicKeys: in.PublicKeys, SigningDisabled: in.SigningDisabled,
		Status: in.Status, Default: in.Default, CreatedAt: now, UpdatedAt: now}
	if a.TokenKeyName == "" {
		a.TokenKeyName = "token"
	}
	if a.Status == "" {
		a.Status = store.AuthorizerActive
	}
	if a.PublicKeys == nil {
		a.PublicKeys = map[string]string{}
	}
	var p problems
	checkAuthorizer(&p, a)
	if err := p.err(); err != nil {
		return nil, err
	}
	err := s.change(ctx, "authorizer.created", func(tx *store.Tx) (string, any, error) {
		if a.Default {
			if err := tx.ClearDefaultAuthorizer(ctx); err != nil {
				return "", nil, err
			}
		}
		return "authorizer/" + a.Name, map[string]any{"tokenKeyName": a.TokenKeyName, "keys": len(a.PublicKeys), "status": a.Status, "default": a.Default}, tx.CreateAuthorizer(ctx, a)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// AuthorizerPatch changes an authorizer; nil fields are left alone.
type AuthorizerPatch struct {
	TokenKeyName    *string            `json:"tokenKeyName,omitempty"`
	PublicKeys      *map[string]string `json:"tokenSigningPublicKeys,omitempty"`
	SigningDisabled *bool              `json:"signingDisabled,omitempty"`
	Status          *string            `json:"status,omitempty"`
	Default         *bool              `json:"default,omitempty"`
}

// UpdateAuthorizer applies patch if ifVersion is 0 or current.
func (s *Service) UpdateAuthorizer(ctx context.Context, name string, ifVersion int64, patch AuthorizerPatch) (*store.Authorizer, error) {
	var out *store.Authorizer
	err := s.change(ctx, "authorizer.updated", func(tx *store.Tx) (string, any, error) {
		a, err := tx.GetAuthorizer(ctx, name)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, a.Version); err != nil {
			return "", nil, err
		}
		if patch.TokenKeyName != nil {
			a.TokenKeyName = *patch.TokenKeyName
		}
		if patch.PublicKeys != nil {
			a.PublicKeys = *patch.PublicKeys
		}
		if patch.SigningDisabled != nil {
			a.SigningDisabled = *patch.SigningDisabled
		}
		if patch.Status != nil {
			a.Status = *patch.Status
		}
		var p problems
		checkAuthorizer(&p, a)
		if err := p.err(); err != nil {
			return "", nil, err
		}
		if patch.Default != nil {
			if *patch.Default && !a.Default {
				if err := tx.ClearDefaultAuthorizer(ctx); err != nil {
					return "", nil, err
				}
				// Clearing bumped every default's version; re-read ours.
				cur, err := tx.GetAuthorizer(ctx, name)
				if err != nil {
					return "", nil, err
				}
				a.Version = cur.Version
			}
			a.Default = *patch.Default
		}
		a.UpdatedAt = s.now()
		if err := tx.UpdateAuthorizer(ctx, a); err != nil {
			return "", nil, err
		}
		out = a
		return "authorizer/" + name, map[string]any{"status": a.Status, "default": a.Default, "keys": len(a.PublicKeys)}, nil
	})
	return out, err
}

// Authorizer returns an authorizer.
func (s *Service) Authorizer(ctx context.Context, name string) (*store.Authorizer, error) {
	return s.store.GetAuthorizer(ctx, name)
}

// Authorizers lists authorizers.
func (s *Service) Authorizers(ctx context.Context) ([]store.Authorizer, error) {
	return s.store.ListAuthorizers(ctx)
}

// DeleteAuthorizer removes an authorizer.
func (s *Service) DeleteAuthorizer(ctx context.Context, name string) error {
	return s.change(ctx, "authorizer.deleted", func(tx *store.Tx) (string, any, error) {
		return "authorizer/" + name, nil, tx.DeleteAuthorizer(ctx, name)
	})
}
