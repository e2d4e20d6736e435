package registry

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Roles a user may hold.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleUser     = "user"
)

func validRole(r string) bool { return r == RoleAdmin || r == RoleOperator || r == RoleUser }

// NewUser is what CreateUser needs. Password may be empty for a user who
// only signs in through another way later (the account then cannot log in).
type NewUser struct {
	Username    string   `json:"username"`
	Password    string   `json:"password,omitempty"`
	DisplayName string   `json:"displayName,omitempty"`
	Email       string   `json:"email,omitempty"`
	Roles       []string `json:"roles,omitempty"`
}

// UserPatch changes a user; nil fields are left alone.
type UserPatch struct {
	Password    *string   `json:"password,omitempty"`
	DisplayName *string   `json:"displayName,omitempty"`
	Email       *string   `json:"email,omitempty"`
	Roles       *[]string `json:"roles,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
}

func checkUserFields(p *problems, displayName, email string, roles []string) {
	if utf8.RuneCountInString(displayName) > maxDisplayNameRune || !utf8.ValidString(displayName) {
		p.add("displayName", "must be valid UTF-8 of at most %d characters", maxDisplayNameRune)
	}
	if email != "" {
		if len(email) > maxEmailLength {
			p.add("email", "longer than %d bytes", maxEmailLength)
		} else if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			p.add("email", "%q is not an e-mail address", truncate(email))
		}
	}
	checkList(p, "roles", roles, validRole, "role (want admin, operator or user)")
}

func checkPassword(p *problems, pw string) {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLength:
		p.add("password", "shorter than %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		p.add("password", "longer than %d bytes", MaxPasswordLength)
	}
}

// CreateUser registers a user.
func (s *Service) CreateUser(ctx context.Context, in NewUser) (*store.User, error) {
	var p problems
	if !ValidUsername(in.Username) {
		p.add("username", "%q is not a valid username: use 1 to %d of a-z A-Z 0-9 . _ @ -, not . or ..", truncate(in.Username), maxUsernameLength)
	}
	if in.Password != "" {
		checkPassword(&p, in.Password)
	}
	if len(in.Roles) == 0 {
		in.Roles = []string{RoleUser}
	}
	checkUserFields(&p, in.DisplayName, in.Email, in.Roles)
	if err := p.err(); err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	u := &store.User{ID: id, Username: in.Username, DisplayName: in.DisplayName, Email: in.Email, Roles: in.Roles, CreatedAt: now, UpdatedAt: now}
	if in.Password != "" {
		if u.PasswordHash, err = HashPassword(in.Password, s.hash, s.rand); err != nil {
			return nil, err
		}
	}
	err = s.change(ctx, "user.created", func(tx *store.Tx) (string, any, error) {
		return "user/" + u.Username, map[string]any{"roles": u.Roles, "email": u.Email}, tx.CreateUser(ctx, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// User returns a user by username.
func (s *Service) User(ctx context.Context, username string) (*store.User, error) {
	return s.store.GetUser(ctx, username)
}

// Users lists users.
func (s *Service) Users(ctx context.Context, p store.Page) ([]store.User, error) {
	return s.store.ListUsers(ctx, p)
}

// UpdateUser applies patch if ifVersion is 0 or current.
func (s *Service) UpdateUser(ctx context.Context, username string, ifVersion int64, patch UserPatch) (*store.User, error) {
	var p problems
	var newHash string
	if patch.Password != nil {
		checkPassword(&p, *patch.Password)
		if err := p.err(); err != nil {
			return nil, err
		}
		h, err := HashPassword(*patch.Password, s.hash, s.rand)
		if err != nil {
			return nil, err
		}
		newHash = h
	}
	var out *store.User
	err := s.change(ctx, "user.updated", func(tx *store.Tx) (string, any, error) {
		u, err := tx.GetUser(ctx, username)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, u.Version); err != nil {
			return "", nil, err
		}
		details := map[string]any{}
		if patch.DisplayName != nil {
			u.DisplayName = *patch.DisplayName
			details["displayName"] = u.DisplayName
		}
		if patch.Email != nil {
			u.Email = *patch.Email
			details["email"] = u.Email
		}
		if patch.Roles != nil {
			u.Roles = *patch.Roles
			details["roles"] = u.Roles
		}
		if patch.Disabled != nil {
			u.Disabled = *patch.Disabled
			details["disabled"] = u.Disabled
		}
		if newHash != "" {
			u.PasswordHash = newHash
			details["passwordChanged"] = true
		}
		checkUserFields(&p, u.DisplayName, u.Email, u.Roles)
		if err := p.err(); err != nil {
			return "", nil, err
		}
		u.UpdatedAt = s.now().UTC()
		if err := tx.UpdateUser(ctx, u); err != nil {
			return "", nil, err
		}
		out = u
		return "user/" + username, details, nil
	})
	return out, err
}

// DeleteUser removes a user with their relationships, memberships and tokens.
func (s *Service) DeleteUser(ctx context.Context, username string, ifVersion int64) error {
	return s.change(ctx, "user.deleted", func(tx *store.Tx) (string, any, error) {
		u, err := tx.GetUser(ctx, username)
		if err != nil {
			return "", nil, err
		}
		if err := checkVersion(ifVersion, u.Version); err != nil {
			return "", nil, err
		}
		return "user/" + username, nil, tx.DeleteUser(ctx, username)
	})
}

// Authenticate checks a username and password. Unknown users, wrong
// passwords and disabled accounts all give ErrBadCredentials, in about the
// same time. A username with too many failures just now gives
// ErrSignInThrottled (with RetryAfter) without its password being checked:
// see SignInThrottle.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*store.User, error) {
	if err := s.signIn.check(username); err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hash := s.dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok, err := CheckPassword(hash, password)
	if err != nil {
		return nil, fmt.Errorf("registry: user %q: %w", username, err)
	}
	if u == nil || u.PasswordHash == "" || !ok || u.Disabled {
		s.signIn.failed(username)
		return nil, ErrBadCredentials
	}
	s.signIn.succeeded(username)
	return u, nil
}

// HasRole reports whether u holds role (admins hold every role).
func HasRole(u *store.User, role string) bool {
	return slices.Contains(u.Roles, RoleAdmin) || slices.Contains(u.Roles, role)
}
