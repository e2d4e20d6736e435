package authorizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Brokers, as the store's adapter sessions name them.
const (
	brokerEMQX     = "emqx"
	brokerRabbitMQ = "rabbitmq"
)

// session is an identity a broker authenticated through an adapter. It
// lives in the store (store.AdapterSession), so that the broker's later
// calls may reach any replica.
type session struct {
	id       *authn.Identity
	clientID string
	sourceIP netip.Addr
	expires  time.Time
}

// sessionData is what the store's identity column holds.
type sessionData struct {
	Identity *authn.Identity `json:"identity"`
	ClientID string          `json:"client_id"`
}

var (
	errTooManySessions = errors.New("authorizer: too many sessions")
	// errNoSession answers calls for connections that did not
	// authenticate through Gatehouse, or whose session ended.
	errNoSession = errors.New("no session (client did not authenticate through Gatehouse, or its session ended)")
	errRevoked   = fmt.Errorf("%w: credential revoked", authn.ErrNotAuthorized)
)

// newSession records id for a broker connection; its expiry is the
// credential's, capped by SessionTTL.
func (a *Adapters) newSession(id *authn.Identity, clientID string, ip netip.Addr) *session {
	exp := a.now().Add(a.cfg.SessionTTL)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(exp) {
		exp = id.ExpiresAt
	}
	return &session{id: id, clientID: clientID, sourceIP: ip, expires: exp}
}

// putSession stores s under the broker's key for the connection (EMQX:
// client id and username; RabbitMQ: username, and client id when sent).
func (a *Adapters) putSession(ctx context.Context, broker, clientID, username string, s *session) error {
	now := a.now()
	if err := a.admit(ctx, broker, clientID, username, now); err != nil {
		return err
	}
	data, err := json.Marshal(sessionData{Identity: s.id, ClientID: s.clientID})
	if err != nil {
		return fmt.Errorf("authorizer: encode session: %w", err)
	}
	ip := ""
	if s.sourceIP.IsValid() {
		ip = s.sourceIP.String()
	}
	if err := a.cfg.Store.PutAdapterSession(ctx, &store.AdapterSession{Broker: broker, ClientID: clientID, Username: username,
		CredentialID: s.id.CredentialID, ThingName: s.id.ThingName, UserName: s.id.UserName, Identity: data, SourceIP: ip,
		CreatedAt: now, ExpiresAt: s.expires}); err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	a.count.added()
	a.recent.put(sessionKey{broker, clientID, username}, s, now)
	return nil
}

// admit refuses a new session when MaxSessions unexpired ones exist. Below
// the bound it trusts a count at most a second old; at the bound it
// counts again and lets a connection replace its own session.
func (a *Adapters) admit(ctx context.Context, broker, clientID, username string, now time.Time) error {
	n, err := a.count.get(ctx, a.cfg.Store, now, false)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	if n < a.cfg.MaxSessions {
		return nil
	}
	if s, err := a.cfg.Store.AdapterSession(ctx, broker, clientID, username); err == nil && now.Before(s.ExpiresAt) {
		return nil
	}
	if n, err = a.count.get(ctx, a.cfg.Store, now, true); err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	if n >= a.cfg.MaxSessions {
		return errTooManySessions
	}
	return nil
}

// session finds the unexpired session of a connection, or nil: from the
// store, or from what this replica read or wrote there less than
// recentTTL ago (a broker asks for every publish and subscribe).
func (a *Adapters) session(ctx context.Context, broker, clientID, username string) (*session, error) {
	now := a.now()
	k := sessionKey{broker, clientID, username}
	if s, ok := a.recent.get(k, now); ok {
		if s == nil || !now.Before(s.expires) {
			return nil, nil
		}
		return s, nil
	}
	rec, err := a.cfg.Store.AdapterSession(ctx, broker, clientID, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authorizer: %w", err)
	}
	s, err := decodeSession(rec)
	if err != nil {
		return nil, err
	}
	a.recent.put(k, s, now)
	if !now.Before(rec.ExpiresAt) {
		return nil, nil
	}
	return s, nil
}

// sessionKey names a connection as a broker's calls do.
type sessionKey struct{ broker, clientID, username string }

// recentTTL is how long a replica answers from a session it read: another
// replica's newer authentication of the same connection, or its end,
// reaches it within this time. Revocation and the thing's state are
// checked on every call regardless.
const recentTTL = time.Second

// recentSessions caches sessions read or written for recentTTL.
type recentSessions struct {
	mu sync.Mutex
	m  map[sessionKey]recentSession
}

type recentSession struct {
	s  *session
	at time.Time
}

// maxRecent bounds the cache; it is emptied when full.
const maxRecent = 10_000

func (c *recentSessions) get(k sessionKey, now time.Time) (*session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.Sub(e.at) >= recentTTL || now.Before(e.at) {
		return nil, false
	}
	return e.s, true
}

func (c *recentSessions) put(k sessionKey, s *session, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxRecent {
		c.m = map[sessionKey]recentSession{}
	}
	c.m[k] = recentSession{s, now}
}

func (c *recentSessions) drop(k sessionKey) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func decodeSession(rec *store.AdapterSession) (*session, error) {
	var d sessionData
	if err := json.Unmarshal(rec.Identity, &d); err != nil || d.Identity == nil {
		return nil, fmt.Errorf("authorizer: session %s/%s: bad identity: %v", rec.Broker, truncate(rec.ClientID), err)
	}
	ip, _ := netip.ParseAddr(rec.SourceIP)
	return &session{id: d.Identity, clientID: d.ClientID, sourceIP: ip, expires: rec.ExpiresAt}, nil
}

// check tells whether a session's identity still may act: its token is
// not revoked, and authn's recheck (expiry, certificate, person, thing
// enabled and of a type allowing the method) passes. An identity that may
// not is an error wrapping authn.ErrNotAuthorized.
func (a *Adapters) check(ctx context.Context, s *session) error {
	if s.id.Method != authn.MethodCertificate && a.cfg.Revoked(ctx, s.id.CredentialID) {
		return errRevoked
	}
	return a.cfg.Authn.Recheck(ctx, s.id)
}

// sessionCount caches the number of unexpired sessions for a second.
type sessionCount struct {
	mu sync.Mutex
	n  int
	at time.Time
}

func (c *sessionCount) get(ctx context.Context, s *store.Store, now time.Time, fresh bool) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !fresh && !c.at.IsZero() && now.Sub(c.at) < time.Second && now.Sub(c.at) >= 0 {
		return c.n, nil
	}
	n, err := s.CountAdapterSessions(ctx, now)
	if err != nil {
		return 0, err
	}
	c.n, c.at = n, now
	return n, nil
}

func (c *sessionCount) added() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}
