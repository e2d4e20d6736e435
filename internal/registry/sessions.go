package registry

import (
	"context"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// ConsoleSessions lists a user's web console sessions, newest first
// (expired ones too, until the console purges them). The records hold the
// sessions' CSRF tokens: callers show them through a view that leaves the
// token out.
func (s *Service) ConsoleSessions(ctx context.Context, username string) ([]store.ConsoleSession, error) {
	if _, err := s.store.GetUser(ctx, username); err != nil {
		return nil, err
	}
	return s.store.ListConsoleSessions(ctx, username)
}

// EndConsoleSession signs a user's console session out: the session whose
// id (the SHA-256 of its cookie value, as ConsoleSessions lists it) is id.
// ErrNotFound if the user has no such session.
func (s *Service) EndConsoleSession(ctx context.Context, username, id string) error {
	return s.change(ctx, "console.session_revoked", func(tx *store.Tx) (string, any, error) {
		sess, err := tx.ConsoleSessionByHash(ctx, id)
		if err != nil {
			return "", nil, err
		}
		if sess.Username != username {
			return "", nil, fmt.Errorf("registry: console session of %s: %w", username, store.ErrNotFound)
		}
		return "user/" + username, map[string]any{"session": shortID(id)}, tx.DeleteConsoleSession(ctx, id)
	})
}

// shortID is the part of a session id the event log keeps: enough to tell
// sessions apart when reading the log.
func shortID(id string) string { return id[:min(len(id), 12)] }
