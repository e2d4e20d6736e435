package oauth

import (
	"context"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// change runs fn in a transaction and records one event with it; fn returns
// the event's subject and details. Details must never hold secrets.
func (s *Server) change(ctx context.Context, typ string, fn func(tx *store.Tx) (subject string, details any, err error)) error {
	_, err := s.events.Change(ctx, typ, fn)
	return err
}
