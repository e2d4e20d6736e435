package lobby

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Broker is the embedded broker as the lobby uses it: its inline client,
// and who each client authenticated as; *broker.Broker is one.
type Broker interface {
	Publisher
	Subscribe(filter string, subscriptionID int, handler mqtt.InlineSubFn) error
	Unsubscribe(filter string, subscriptionID int) error
	// Identity is whom the client connected with clientID authenticated
	// as; nil for the broker's own inline client (HTTPS publishes, the
	// server) and unknown ones.
	Identity(clientID string) *authn.Identity
}

// IDs of the lobby's inline subscriptions: knocks, AWS announces.
const (
	subscriptionID    = 6006
	awsSubscriptionID = 6007
)

// Run listens for knocks on the broker until ctx ends; assignments are
// published through it meanwhile.
func (s *Service) Run(ctx context.Context, b Broker) error {
	s.pub.Store(&b)
	defer s.pub.Store(nil)
	if err := b.Subscribe(knockFilter, subscriptionID, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		// mochi hands inline handlers its inline client: the publisher
		// is the packet's Origin.
		s.onKnock(ctx, b.Identity(pk.Origin), pk.Origin, pk.TopicName, pk.Payload)
	}); err != nil {
		return fmt.Errorf("lobby: subscribe %s: %w", knockFilter, err)
	}
	defer func() { _ = b.Unsubscribe(knockFilter, subscriptionID) }()
	if err := b.Subscribe(AWSAnnounceTopic, awsSubscriptionID, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		s.onAnnounce(ctx, b.Identity(pk.Origin), pk.Origin, pk.Payload)
	}); err != nil {
		return fmt.Errorf("lobby: subscribe %s: %w", AWSAnnounceTopic, err)
	}
	defer func() { _ = b.Unsubscribe(AWSAnnounceTopic, awsSubscriptionID) }()
	s.follow(ctx)
	return nil
}

// follow reads the lobby's events from the shared event log until ctx
// ends, so that a device connected to this replica gets what an operator
// did on any replica: the assignment of a commissioned device, the factory
// reset, the end of a rejected one. (The replica that made the change
// publishes at once too; deliveries are retained and idempotent. A device
// that still misses one gets it with its next knock.)
func (s *Service) follow(ctx context.Context) {
	var after int64
	for {
		id, err := s.events.LatestID(ctx)
		if err == nil {
			after = id
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lobby: read event log position", "err", err)
		sleep(ctx, time.Second)
	}
	for ctx.Err() == nil {
		var err error
		after, err = s.events.Follow(ctx, after, func(evs []store.Event) {
			for _, ev := range evs {
				if strings.HasPrefix(ev.Type, "lobby.") {
					s.replay(ctx, ev)
				}
			}
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("lobby: follow event log", "err", err)
			sleep(ctx, time.Second)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// replay publishes on this replica's broker what ev means for the device.
func (s *Service) replay(ctx context.Context, ev store.Event) {
	fp, ok := strings.CutPrefix(ev.Subject, "lobby/")
	if !ok {
		return
	}
	switch ev.Type {
	case "lobby.commissioned":
		d, err := s.store.GetLobbyDevice(ctx, fp)
		if err != nil {
			s.log.Warn("lobby: read ledger", "certificateId", fp, "err", err)
			return
		}
		if d.State != store.LobbyCommissioned {
			return // moved on meanwhile
		}
		if p := s.assignmentPayload(ctx, d); p != nil {
			s.publishSigned(fp, p, true)
		}
	case "lobby.reset":
		s.publish(AssignmentTopic(fp), nil, true)
		s.publishSigned(fp, []byte(factoryReset), false)
		s.awsResetReplay(ctx, fp)
	case "lobby.rejected", "lobby.decommissioned":
		s.publish(AssignmentTopic(fp), nil, true)
	case "lobby.arrived":
		var det struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(ev.Details, &det) == nil && det.Kind == store.LobbyTargetGatehouse {
			s.publish(AssignmentTopic(fp), nil, true) // it held a spent registration token
		}
	}
}

// KnockMessage is what a device publishes to its knock topic.
type KnockMessage struct {
	State  string `json:"state"`
	Config string `json:"config"`
}

// onKnock handles a message on a knock topic. Only the device itself may
// knock: the publisher must be its lobby session (the broker refuses
// everyone else already; this does not rely on it). A knock published by
// anyone else - another thing, an HTTPS publish, the server - is dropped.
func (s *Service) onKnock(ctx context.Context, publisher *authn.Identity, clientID, topic string, payload []byte) {
	fp := strings.TrimSuffix(strings.TrimPrefix(topic, TopicPrefix), "/knock")
	if !ReservedGrant(publisher, clientID, policy.ActionPublish, topic) {
		principal := "(server)"
		if publisher != nil {
			principal = publisher.Principal
		}
		s.log.WarnContext(ctx, "lobby: knock not from the device itself dropped", "certificateId", fp, "principal", principal, "client", clientID)
		return
	}
	var m KnockMessage
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &m); err != nil {
			s.log.InfoContext(ctx, "lobby: knock is not JSON", "certificateId", fp, "err", err)
			return
		}
	}
	if len(m.State) > 256 || len(m.Config) > 4096 {
		s.log.InfoContext(ctx, "lobby: knock too large", "certificateId", fp)
		return
	}
	if _, err := s.Knock(events.WithActor(ctx, "lobby:"+fp), fp, m.State, m.Config); err != nil {
		s.log.InfoContext(ctx, "lobby: knock refused", "certificateId", fp, "err", err)
	}
}

func (s *Service) publish(topic string, payload []byte, retain bool) {
	p := s.pub.Load()
	if p == nil {
		return // not serving MQTT (admin-only use, tests)
	}
	if err := (*p).Publish(topic, payload, retain, 1); err != nil {
		s.log.Warn("lobby: publish", "topic", topic, "err", err)
	}
}

// factoryReset is what a device is told when it is reset.
const factoryReset = `{"config":"factory reset"}`

// publishSigned publishes object, signed for device fp (see sign), on its
// assignment topic. Nothing unsigned is ever published there but the
// empty payload that clears a retained assignment.
func (s *Service) publishSigned(fp string, object []byte, retain bool) {
	if s.pub.Load() == nil {
		return
	}
	b, err := s.sign(fp, object)
	if err != nil {
		s.log.Warn("lobby: not published", "certificateId", fp, "err", err)
		return
	}
	s.publish(AssignmentTopic(fp), b, retain)
}

// ReservedGrant opens a lobby session's own topics in the broker's
// reserved $gatehouse/ space (see broker.ReservedGrant): the session of
// device FP - principal lobby:FP, client id FP, authenticated by its
// manufacturer certificate - may publish to its knock topic and subscribe
// to and receive its assignment topic, nothing else.
func ReservedGrant(id *authn.Identity, clientID string, action policy.Action, topic string) bool {
	if id == nil || id.Principal != PrincipalPrefix+clientID || id.CredentialID != clientID || !fingerprintRE.MatchString(clientID) {
		return false
	}
	switch action {
	case policy.ActionPublish:
		return topic == KnockTopic(clientID)
	case policy.ActionSubscribe, policy.ActionReceive:
		return topic == AssignmentTopic(clientID)
	}
	return false
}

// deliverLater publishes the device's assignment, retained, after commit.
func (s *Service) deliverLater(l *ledger) {
	d := *l.d
	if d.Assignment == "" {
		return
	}
	ctx := l.ctx
	l.later = append(l.later, func() {
		if p := s.assignmentPayload(ctx, &d); p != nil {
			s.publishSigned(d.Fingerprint, p, true)
		}
	})
}

// clearLater removes the retained assignment after commit and, for a
// factory reset, tells a connected device.
func (s *Service) clearLater(l *ledger, reset bool) {
	fp := l.d.Fingerprint
	l.later = append(l.later, func() {
		s.publish(AssignmentTopic(fp), nil, true)
		if reset {
			s.publishSigned(fp, []byte(factoryReset), false)
		}
	})
}

// ---- authentication ----

// Authn is what the broker authenticates with; *authn.Authenticator is
// one (and so is the Authenticator this package returns).
type Authn interface {
	Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error)
	Recheck(ctx context.Context, id *authn.Identity) error
}

// PrincipalPrefix starts the principal of lobby sessions.
const PrincipalPrefix = "lobby:"

// Authenticator wraps the broker's authenticator: a TLS client whose MQTT
// client id is the fingerprint of its certificate, with no other
// credentials, opens a lobby session if the certificate chains to an active
// manufacturer CA; everyone else authenticates as before, and a device
// commissioned here that logs in with its certificate is marked arrived.
type Authenticator struct {
	next  Authn
	lobby *Service
}

// Authenticator returns the lobby's wrapper around next.
func (s *Service) Authenticator(next Authn) *Authenticator {
	return &Authenticator{next: next, lobby: s}
}

func certificateOnly(c authn.Credentials) bool {
	return len(c.PeerCertificates) > 0 && len(c.Password) == 0 && c.Bearer == "" && c.AuthorizerName == "" &&
		c.AuthorizerSignature == "" && c.AuthorizerToken == "" && !strings.Contains(c.Username, "?")
}

// Authenticate implements the broker's Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error) {
	if certificateOnly(c) && c.ClientID == pki.Fingerprint(c.PeerCertificates[0]) {
		return a.admit(ctx, c.PeerCertificates)
	}
	id, err := a.next.Authenticate(ctx, c)
	if err != nil {
		if awsCandidate(c, err) {
			return a.admitAWS(ctx, c.PeerCertificates, err)
		}
		return nil, err
	}
	if id.Method == authn.MethodCertificate && id.CredentialID != "" {
		if err := a.lobby.markArrived(events.WithActor(ctx, id.Principal), id.CredentialID, id.ThingName); err != nil {
			a.lobby.log.WarnContext(ctx, "lobby: mark arrived", "certificateId", id.CredentialID, "err", err)
		}
	}
	return id, nil
}

func (a *Authenticator) admit(ctx context.Context, chain []*x509.Certificate) (*authn.Identity, error) {
	dev, err := a.lobby.certs.VerifyManufacturerDevice(ctx, chain)
	if err != nil {
		return nil, fmt.Errorf("%w: lobby: %w", authn.ErrBadCredentials, err)
	}
	return a.session(ctx, dev, "")
}

// session opens the lobby session of dev over protocol ("" native,
// ProtocolAWS).
func (a *Authenticator) session(ctx context.Context, dev *certs.ManufacturerDevice, protocol string) (*authn.Identity, error) {
	principal := PrincipalPrefix + dev.Fingerprint
	if _, err := a.lobby.seen(events.WithActor(ctx, principal), dev, protocol); err != nil {
		if errors.Is(err, ErrState) {
			return nil, fmt.Errorf("%w: %w", authn.ErrNotAuthorized, err)
		}
		return nil, err
	}
	return &authn.Identity{Method: authn.MethodCertificate, Principal: principal, Subject: registry.Subject{CertificateFingerprint: dev.Fingerprint},
		Certificate: dev.Certificate, CredentialID: dev.Fingerprint, ExpiresAt: dev.Leaf.NotAfter}, nil
}

// Recheck keeps a lobby session while its device may be in the lobby.
func (a *Authenticator) Recheck(ctx context.Context, id *authn.Identity) error {
	fp, ok := strings.CutPrefix(id.Principal, PrincipalPrefix)
	if !ok {
		return a.next.Recheck(ctx, id)
	}
	d, err := a.lobby.store.GetLobbyDevice(ctx, fp)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: lobby device %s is gone", authn.ErrNotAuthorized, fp)
	}
	if err != nil {
		return err
	}
	if d.State == store.LobbyRejected || d.State == store.LobbyDecommissioned {
		return fmt.Errorf("%w: lobby device %s is %s", authn.ErrNotAuthorized, fp, d.State)
	}
	return nil
}
