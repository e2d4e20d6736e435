package mosqauth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Authenticator checks credentials and re-checks identities later;
// *authn.Authenticator is one.
type Authenticator interface {
	Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error)
	Recheck(ctx context.Context, id *authn.Identity) error
}

// Config holds a Plugin's dependencies.
type Config struct {
	Authn    Authenticator
	Registry *registry.Service
	// Events is the log followed for changes (Plugin.Follow).
	Events *events.Log
	// Policy pins the region and account of ARN resources, as for the
	// embedded broker.
	Policy policy.Options
	// EventTopicPrefix is the server's event mirror prefix, reserved like
	// $gatehouse/ ("" for none).
	EventTopicPrefix string
	// Wake, if set, is called (from any goroutine, possibly with the
	// plugin's lock held: it must not call back) when clients are queued
	// to be kicked, so that the glue runs Tick soon.
	Wake func()
	// Changed, if set, is called (from any goroutine, possibly with the
	// plugin's lock held: it must not call back) whenever a live
	// session's answers to Check change: re-bound or ended. A glue that
	// keeps Check's answers drops them all then. A client's own Connect
	// and Disconnected, which the glue makes, are not reported: the glue
	// drops that client's answers itself.
	Changed func()
	Logger  *slog.Logger
	Now     func() time.Time
}

// Client names one Mosquitto connection: the address of its struct
// mosquitto, stable from CONNECT until Mosquitto frees it.
type Client uintptr

// Conn is what a CONNECT presents.
type Conn struct {
	ClientID string
	Username string
	Password []byte
	// PeerCertificates is the TLS client certificate, if any.
	PeerCertificates []*x509.Certificate
	// Address is the client's IP address as Mosquitto reports it.
	Address string
}

// Access is Mosquitto's ACL access kind.
type Access int

// Mosquitto's MOSQ_ACL_* values.
const (
	AccessRead        Access = 0x01
	AccessWrite       Access = 0x02
	AccessSubscribe   Access = 0x04
	AccessUnsubscribe Access = 0x08
)

// session is one authenticated connection.
type session struct {
	clientID string
	ip       netip.Addr
	id       *authn.Identity
	bound    *policy.Bound
	// ended: kicked or disconnected; every later check is denied.
	ended bool
	// gone: Mosquitto reported the disconnect; the entry is dropped at
	// the next tick (the will is checked after the disconnect event).
	gone bool
}

// Plugin is Gatehouse's authentication and authorization inside
// Mosquitto. Connect, Check, Disconnected and Tick are called on
// Mosquitto's thread; Follow runs on its own goroutine.
type Plugin struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu       sync.RWMutex
	sessions map[Client]*session
	// byClientID is the live session of each client id (the newest
	// connection wins, as Mosquitto takes over).
	byClientID map[string]Client
	// kicks are the client ids to disconnect at the next tick.
	kicks []string
	// connects are the successful CONNECTs' outcomes by credentials (see
	// connectKey), reused by a reconnect with the same ones; gen counts
	// their invalidations (dropConnectsLocked).
	connects map[[32]byte]cachedConnect
	gen      uint64
	// revoked are the token jtis the log said were revoked, and when that
	// was read: the token verifier reloads its revocations only every few
	// seconds, and a CONNECT decided on its stale list in that window
	// would be cached (revokedKeep).
	revoked map[string]time.Time
}

// revokedKeep is how long the plugin remembers a revocation it read: well
// past when the token verifier has reloaded its own list.
const revokedKeep = time.Minute

// cachedConnect is a CONNECT's authenticated identity and bound policy.
type cachedConnect struct {
	id    *authn.Identity
	bound *policy.Bound
	ip    netip.Addr
	at    time.Time
}

// connectCacheTTL bounds how long a CONNECT's outcome is reused, should
// the follower miss changes (the store unreachable): the registry's own
// caches have the same bound. Every change the follower reads drops them
// all (Apply, follow).
const connectCacheTTL = 30 * time.Second

// maxCachedConnects bounds the cache; it is emptied when full.
const maxCachedConnects = 10000

// New returns a Plugin.
func New(c Config) *Plugin {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Plugin{cfg: c, log: c.Logger, now: c.Now, sessions: map[Client]*session{}, byClientID: map[string]Client{},
		connects: map[[32]byte]cachedConnect{}, revoked: map[string]time.Time{}}
}

// Errors of Connect, decided once: Mosquitto answers both with CONNACK
// "not authorized" (MQTT 5: bad user name or password, not authorized).
var (
	ErrBadCredentials = authn.ErrBadCredentials
	ErrNotAuthorized  = authn.ErrNotAuthorized
)

// Connect authenticates a CONNECT and binds the client's policies, as the
// embedded broker does: the credential (token as password, custom-authorizer
// username, client certificate) through authn, then iot:Connect for the
// client id. It returns ErrBadCredentials or ErrNotAuthorized (wrapped,
// saying why) to refuse, or another error when Gatehouse could not decide.
//
// A reconnect presenting the same client id, username, password and address
// (and no client certificate) reuses the identity and bound policy of the
// last successful CONNECT with them, until any change is read from the
// event log (which drops them all), the credential expires, or
// connectCacheTTL passes: the decision would be the same.
func (p *Plugin) Connect(ctx context.Context, cl Client, c Conn) error {
	now := p.now()
	key, cacheable := connectKey(c)
	p.mu.Lock()
	gen := p.gen
	if cacheable {
		if e, ok := p.connects[key]; ok {
			if now.Sub(e.at) <= connectCacheTTL && (e.id.ExpiresAt.IsZero() || now.Before(e.id.ExpiresAt)) {
				p.addSessionLocked(cl, c.ClientID, e.ip, e.id, e.bound)
				p.mu.Unlock()
				return nil
			}
			delete(p.connects, key)
		}
	}
	p.mu.Unlock()
	ip, _ := netip.ParseAddr(c.Address)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		id, b, err := p.decideConnect(ctx, c, ip)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if p.gen != gen && attempt < maxConnectAttempts {
			// A change was applied to the live sessions while this one
			// was decided, before it was one of them: decide again on
			// the changed registry, or the change would pass it by.
			gen = p.gen
			p.mu.Unlock()
			continue
		}
		if _, ok := p.revoked[id.CredentialID]; ok && id.CredentialID != "" {
			p.mu.Unlock()
			return fmt.Errorf("%w: credential revoked", ErrNotAuthorized)
		}
		p.addSessionLocked(cl, c.ClientID, ip, id, b)
		stale := p.gen != gen
		// Not if a change was read meanwhile: the decision may predate it.
		if cacheable && !stale {
			if len(p.connects) >= maxCachedConnects {
				clear(p.connects)
			}
			p.connects[key] = cachedConnect{id: id, bound: b, ip: ip, at: now}
		}
		s := p.sessions[cl]
		p.mu.Unlock()
		if stale {
			// Changes kept coming: re-authorize the session now that it
			// is live, as the change did the others.
			p.refresh(ctx, s)
		}
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.Debug("mosquitto connect", "client", c.ClientID, "principal", id.Principal)
		}
		return nil
	}
}

// maxConnectAttempts bounds how often a CONNECT is decided again because
// changes were applied meanwhile.
const maxConnectAttempts = 3

// decideConnect authenticates a CONNECT's credentials and binds its
// policies: the identity and bound policy, or why it is refused.
func (p *Plugin) decideConnect(ctx context.Context, c Conn, ip netip.Addr) (*authn.Identity, *policy.Bound, error) {
	id, err := p.cfg.Authn.Authenticate(ctx, authn.Credentials{ClientID: c.ClientID, Username: c.Username, Password: c.Password,
		PeerCertificates: c.PeerCertificates, SourceIP: ip.Unmap()})
	if err != nil {
		return nil, nil, err
	}
	b, err := p.bind(ctx, id, c.ClientID, ip)
	if err != nil {
		return nil, nil, err
	}
	if !b.Allowed(policy.ActionConnect, c.ClientID) {
		return nil, nil, fmt.Errorf("%w: iot:Connect denied for client id %q", ErrNotAuthorized, c.ClientID)
	}
	return id, b, nil
}

// connectTimeout bounds one CONNECT's authentication (Mosquitto waits on
// its only thread meanwhile).
const connectTimeout = 5 * time.Second

func (p *Plugin) addSessionLocked(cl Client, clientID string, ip netip.Addr, id *authn.Identity, b *policy.Bound) {
	p.sessions[cl] = &session{clientID: clientID, ip: ip, id: id, bound: b}
	p.byClientID[clientID] = cl
}

// changedLocked tells the glue that answers to Check may have changed.
func (p *Plugin) changedLocked() {
	if p.cfg.Changed != nil {
		p.cfg.Changed()
	}
}

// connectKey is the SHA-256 of everything a CONNECT presents that its
// outcome depends on, each part length-prefixed; false when the outcome is
// not reused (a client certificate: its status is checked at each CONNECT).
func connectKey(c Conn) ([32]byte, bool) {
	if len(c.PeerCertificates) > 0 {
		return [32]byte{}, false
	}
	// One buffer, hashed at once: writing each part to a hash.Hash would
	// copy each string to the heap.
	var arr [1024]byte
	b := arr[:0]
	for _, part := range [...]string{c.ClientID, c.Username} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Password)))
	b = append(b, c.Password...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Address)))
	b = append(b, c.Address...)
	return sha256.Sum256(b), true
}

// CachedConnects returns how many CONNECT outcomes are cached.
func (p *Plugin) CachedConnects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.connects)
}

// dropConnectsLocked forgets every cached CONNECT outcome.
func (p *Plugin) dropConnectsLocked() {
	clear(p.connects)
	p.gen++
}

func (p *Plugin) bind(ctx context.Context, id *authn.Identity, clientID string, ip netip.Addr) (*policy.Bound, error) {
	b, err := authorizer.Bind(ctx, p.cfg.Registry, p.cfg.Policy, id.Subject, id, clientID, clientID, ip)
	if errors.Is(err, authorizer.ErrThingDisabled) {
		return nil, fmt.Errorf("%w: %w", ErrNotAuthorized, err)
	}
	return b, err
}

// Check decides an ACL check (keeping nothing of topic past the call): a publish or a will (write: iot:Publish,
// and iot:RetainPublish when retained), a subscription (iot:Subscribe,
// and iot:Receive for a literal filter), a delivery, retained messages
// included (read: iot:Receive), against the client's bound policy.
// Nothing is published under the reserved topics; a client subscribes
// and receives there only on the event mirror, as its policy allows.
// Unsubscribing is always allowed. It is CheckAt at Config.Now.
func (p *Plugin) Check(cl Client, access Access, topic string, retain bool) bool {
	ok, _ := p.CheckAt(cl, access, topic, retain, p.now())
	return ok
}

// CheckAt is Check at now, for a caller that has the time already: every
// delivery is checked, and reading the clock is a measurable share of a
// check (the Mosquitto glue passes a coarse clock it reads anyway). It
// also returns until when the answer holds (zero: no bound) unless
// Config.Changed is called meanwhile: the session's credential expiry.
func (p *Plugin) CheckAt(cl Client, access Access, topic string, retain bool, now time.Time) (bool, time.Time) {
	if access == AccessUnsubscribe {
		return true, time.Time{}
	}
	p.mu.RLock()
	s := p.sessions[cl]
	if s == nil || s.ended {
		p.mu.RUnlock()
		return false, time.Time{}
	}
	b, exp := s.bound, s.id.ExpiresAt
	p.mu.RUnlock()
	if !exp.IsZero() && !now.Before(exp) {
		return false, time.Time{}
	}
	return p.decide(b, access, topic, retain), exp
}

// decide is CheckAt's answer for a live session bound to b.
func (p *Plugin) decide(b *policy.Bound, access Access, topic string, retain bool) bool {
	reserved := live.ReservedTopic(p.cfg.EventTopicPrefix, topic)
	switch access {
	case AccessWrite:
		return !reserved && authorizer.PublishAllowed(b, topic, retain)
	case AccessSubscribe:
		if reserved && !live.EventTopic(p.cfg.EventTopicPrefix, topic) {
			return false
		}
		return authorizer.SubscribeAllowed(b, topic)
	case AccessRead:
		if reserved && !live.EventTopic(p.cfg.EventTopicPrefix, topic) {
			return false
		}
		return b.Allowed(policy.ActionReceive, topic)
	}
	return false
}

// Disconnected forgets a connection. Mosquitto checks the client's will
// after this event, so the session stays readable until the next Tick.
func (p *Plugin) Disconnected(cl Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sessions[cl]; s != nil {
		s.gone = true
		if p.byClientID[s.clientID] == cl {
			delete(p.byClientID, s.clientID)
		}
	}
}

// Tick returns the client ids to disconnect now (their sessions ended:
// credential revoked or expired, thing disabled, policy no longer allowing
// iot:Connect) and drops the sessions Mosquitto reported gone. Mosquitto
// calls it on its own thread (MOSQ_EVT_TICK), the only one that may kick.
func (p *Plugin) Tick() []string {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for cl, s := range p.sessions {
		switch {
		case s.gone:
			delete(p.sessions, cl)
		case !s.ended && !s.id.ExpiresAt.IsZero() && !now.Before(s.id.ExpiresAt):
			p.endLocked(s, "credential expired")
		}
	}
	for jti, at := range p.revoked {
		if now.Sub(at) > revokedKeep {
			delete(p.revoked, jti)
		}
	}
	k := p.kicks
	p.kicks = nil
	return k
}

// Sessions returns how many connections are authenticated.
func (p *Plugin) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byClientID)
}

// endLocked marks s ended and queues its kick.
func (p *Plugin) endLocked(s *session, why string) {
	if s.ended {
		return
	}
	s.ended = true
	p.changedLocked()
	p.kicks = append(p.kicks, s.clientID)
	if p.cfg.Wake != nil {
		p.cfg.Wake()
	}
	p.log.Info("mosquitto client disconnected by gatehouse", "client", s.clientID, "principal", s.id.Principal, "reason", why)
}

// Follower reads the event log's position now and returns the loop that
// applies the log's changes after it to live sessions until its context
// ends: revoked credentials and certificates end their sessions; policy,
// thing, group, relationship and user changes re-authorize them (a session
// that may no longer connect ends). It reads the log as a replica does
// (every second for other processes' commits, events.Log.Wait).
func (p *Plugin) Follower(ctx context.Context) (func(context.Context), error) {
	after, err := p.cfg.Events.LatestID(ctx)
	if err != nil {
		return nil, fmt.Errorf("mosqauth: read the event log: %w", err)
	}
	return func(ctx context.Context) { p.follow(ctx, after) }, nil
}

func (p *Plugin) follow(ctx context.Context, after int64) {
	for ctx.Err() == nil {
		evs, err := p.cfg.Events.Wait(ctx, store.EventFilter{AfterID: after, Limit: 1000}, 30*time.Second)
		if err != nil {
			if !p.pause(ctx, "follow event log", err) {
				return
			}
			continue
		}
		var c live.Changes
		for _, ev := range evs {
			after = ev.ID
			c.Add(ev)
		}
		p.Apply(ctx, &c)
		if len(evs) > 0 {
			// Any change, even one no live session is concerned with
			// (an enabled thing, a signing key), may change a CONNECT's
			// outcome.
			p.mu.Lock()
			p.dropConnectsLocked()
			p.mu.Unlock()
		}
	}
}

// pause logs err and waits a second before the follower retries; false
// when ctx ended.
func (p *Plugin) pause(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	p.log.Warn("gatehouse: "+what, "err", err)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Apply applies one batch of changes to the live sessions.
func (p *Plugin) Apply(ctx context.Context, c *live.Changes) {
	if c.Empty() {
		return
	}
	if c.Rebinds() {
		p.cfg.Registry.InvalidatePolicies()
	}
	p.mu.Lock()
	p.dropConnectsLocked()
	now := p.now()
	for jti := range c.Revoked {
		p.revoked[jti] = now
	}
	var recheck []*session
	for _, s := range p.sessions {
		if s.ended {
			continue
		}
		if why := c.Ends(s.id); why != "" {
			p.endLocked(s, why)
		} else if c.Concerns(s.id) {
			recheck = append(recheck, s)
		}
	}
	p.mu.Unlock()
	// Outside the lock: re-authorizing reads the store.
	for _, s := range recheck {
		p.refresh(ctx, s)
	}
}

// refresh re-authorizes a live session against the current registry and
// policies, as the embedded broker does.
func (p *Plugin) refresh(ctx context.Context, s *session) {
	why := ""
	var b *policy.Bound
	err := p.cfg.Authn.Recheck(ctx, s.id)
	if err == nil {
		b, err = p.bind(ctx, s.id, s.clientID, s.ip)
	}
	switch {
	case errors.Is(err, authn.ErrNotAuthorized):
		why = err.Error()
	case err != nil:
		p.log.Warn("gatehouse: recheck session", "client", s.clientID, "err", err)
		return
	case !b.Allowed(policy.ActionConnect, s.clientID):
		why = "iot:Connect no longer allowed"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if why != "" {
		p.endLocked(s, why)
		return
	}
	s.bound = b
	p.changedLocked()
}
