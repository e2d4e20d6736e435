package certs

import (
	"context"
	"sync"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Run follows the event log until ctx ends, so that a manufacturer CA
// registered, updated or deleted, or the CA replaced, on another replica
// applies here within a second rather than at the next caRecheck (which
// stays as a safety net).
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		s.events.FollowType(ctx, store.EventFilter{Type: "manufacturer_ca."}, func(store.Event) { s.invalidateVerifier() })
	})
	wg.Go(func() {
		s.events.FollowType(ctx, store.EventFilter{Type: "ca."}, func(ev store.Event) {
			if ev.Type != "ca.crl_published" {
				s.recheckCA()
			}
		})
	})
	wg.Wait()
	return nil
}

// recheckCA makes the next currentCA read the CA record again.
func (s *Service) recheckCA() {
	s.mu.Lock()
	if cur := s.ca; cur != nil {
		s.ca = &loadedCA{ca: cur.ca, chainPEM: cur.chainPEM, issuerFP: cur.issuerFP, regCode: cur.regCode}
	}
	s.verifier = nil
	s.mu.Unlock()
}
