// Package lobby is Gatehouse's device lobby: a ledger of devices whose
// certificates a manufacturer's CA signed, which an operator claims (by the
// SHA-256 fingerprint of the certificate, the QR code printed on the device)
// and routes to a target, and the MQTT conversation that hands each device
// its target.
//
// It exists because the factory that provisions a device's identity does
// not know where the device will work: generic devices connect to the lobby
// with the manufacturer's certificate, knock, wait, and are told their
// endpoint once an operator decides - possibly before the device was ever
// seen (pre-claim), and again later to move it (reroute) or send it back
// (factory reset). The ledger keeps every transition; every transition is an
// event recorded in the same transaction.
//
// Device side (embedded broker, MQTT over TLS with the device certificate):
// a device opens a lobby session by connecting with its certificate
// fingerprint (64 lowercase hex digits) as MQTT client id. It may then only
// publish its knock {"state","config"} to $gatehouse/lobby/{fingerprint}/knock
// and subscribe to $gatehouse/lobby/{fingerprint}/assignment, where it
// receives, retained at QoS 1 once commissioned, a compact JWS (typ
// MessageType, signed by the broker's TLS server certificate, chain in x5c)
// whose claims are {"kind","endpoint","config","caChain","thingName"} (a
// gatehouse target adds "serverUrl" and a single-use "registrationToken")
// with "sub" = the fingerprint and "iat". The topics are authorized by the
// built-in policy "gatehouse-lobby" (PolicyName), attached to the
// certificate while the device is in the lobby, and opened to the session
// in the broker's reserved $gatehouse/ space by ReservedGrant; no other
// client may publish there, and a knock counts only when the device's own
// session published it. A device
// commissioned to this Gatehouse then connects with its thing name as
// client id, which marks it arrived; a device sent elsewhere (an MQTT
// target, another Gatehouse) knocks with state "arrived" once it logged in
// there, which a gatehouse target must confirm (it knows the thing with an
// active certificate).
//
// Devices of the AWS Device Lobby reference protocol (client id = the
// certificate's common name, lobby/{CN}, $aws/rules/lobby) are served on
// the same ledger: see aws.go.
//
// Several replicas on one database each deliver, from the shared event
// log, the assignments of the devices connected to their broker, so a
// device may knock at one lobby replica and be claimed on another.
package lobby

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// PolicyName is the built-in policy lobby sessions are authorized by.
const PolicyName = "gatehouse-lobby"

// PolicyDocument lets a lobby session (client id = certificate fingerprint,
// enforced at authentication) use only its own lobby topics.
const PolicyDocument = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/$gatehouse/lobby/${iot:ClientId}/knock"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/$gatehouse/lobby/${iot:ClientId}/assignment"},
 {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/$gatehouse/lobby/${iot:ClientId}/assignment"}]}`

// Topics.
const (
	TopicPrefix = "$gatehouse/lobby/"
	knockFilter = TopicPrefix + "+/knock"
)

// AssignmentTopic is where a device receives its assignment.
func AssignmentTopic(fingerprint string) string { return TopicPrefix + fingerprint + "/assignment" }

// KnockTopic is where a device knocks.
func KnockTopic(fingerprint string) string { return TopicPrefix + fingerprint + "/knock" }

// Errors.
var (
	// ErrState means the device's state does not allow the operation.
	ErrState = errors.New("lobby: not allowed in this state")
	// ErrInvalid means a request is malformed.
	ErrInvalid = errors.New("lobby: invalid request")
	// ErrRemote means a gatehouse target failed or refused a request.
	ErrRemote = errors.New("lobby: target gatehouse failed")
)

// Config holds a Service's dependencies.
type Config struct {
	Store    *store.Store
	Registry *registry.Service
	// Certs verifies manufacturer certificates and gives the CA chain
	// handed to devices commissioned here.
	Certs  *certs.Service
	Events *events.Log
	Now    func() time.Time
	Logger *slog.Logger
	// LocalEndpoint is the MQTT URL handed to devices commissioned to this
	// Gatehouse (mqtts://host:8883).
	LocalEndpoint string
	// Sealer keeps the API tokens of gatehouse targets and the
	// registration tokens minted there; without it gatehouse targets
	// cannot be created.
	Sealer *seal.Sealer
	// HTTPClient talks to gatehouse targets; default: 15 s timeout, the
	// target's caPem trusted besides the system roots.
	HTTPClient *http.Client
	// Signer returns the broker's current TLS server certificate (chain
	// and key): everything the lobby publishes to a device is signed with
	// it (see MessageType). Nil: nothing is published to devices.
	Signer func() (*tls.Certificate, error)
}

// Publisher is the part of the embedded broker the lobby talks through;
// *mqtt.Server (mochi) is one.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Service is the device lobby. It is safe for concurrent use.
type Service struct {
	cfg    Config
	store  *store.Store
	reg    *registry.Service
	certs  *certs.Service
	events *events.Log
	now    func() time.Time
	log    *slog.Logger
	// pub is the broker, while Run serves it.
	pub atomic.Pointer[Broker]
	// endpoint is the local MQTT URL; it starts as Config.LocalEndpoint.
	endpoint atomic.Pointer[string]
	// remoteBusy holds the fingerprints being commissioned at a gatehouse
	// target in the background.
	remoteBusy sync.Map
}

// SetLocalEndpoint changes the MQTT URL handed to devices commissioned
// here, for when it is known only once the broker is bound.
func (s *Service) SetLocalEndpoint(url string) { s.endpoint.Store(&url) }

func (s *Service) localEndpoint() string {
	if p := s.endpoint.Load(); p != nil {
		return *p
	}
	return s.cfg.LocalEndpoint
}

// New returns a Service. Call EnsurePolicy before serving devices.
func New(c Config) (*Service, error) {
	if c.Store == nil || c.Registry == nil || c.Certs == nil || c.Events == nil {
		return nil, errors.New("lobby: Store, Registry, Certs and Events are required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	clock := c.Now
	now := func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	c.Registry.RequirePolicy(PolicyName, policyRequirements()...)
	c.Registry.RequirePolicy(AWSPolicyName, awsPolicyRequirements()...)
	return &Service{cfg: c, store: c.Store, reg: c.Registry, certs: c.Certs, events: c.Events, now: now, log: c.Logger}, nil
}

// policyRequirements are what the lobby policy must keep allowing a lobby
// session (client id = certificate fingerprint): connecting, knocking and
// receiving its assignment. A version that denies any of them is refused.
func policyRequirements() []registry.PolicyRequirement {
	fp := strings.Repeat("0", 64)
	ctx := policy.Context{ClientID: fp}
	return []registry.PolicyRequirement{
		{Who: "lobby devices", Context: ctx, Action: policy.ActionConnect, Resource: fp},
		{Who: "lobby devices", Context: ctx, Action: policy.ActionPublish, Resource: KnockTopic(fp)},
		{Who: "lobby devices", Context: ctx, Action: policy.ActionSubscribe, Resource: AssignmentTopic(fp)},
		{Who: "lobby devices", Context: ctx, Action: policy.ActionReceive, Resource: AssignmentTopic(fp)},
	}
}

// lobbyPolicies are the built-in policies attached to a device's
// certificate while it may use the lobby: one per protocol.
var lobbyPolicies = []registry.NewPolicy{
	{Name: PolicyName, Description: "built-in: devices in the device lobby", Document: []byte(PolicyDocument)},
	{Name: AWSPolicyName, Description: "built-in: devices in the device lobby, AWS Device Lobby protocol", Document: []byte(AWSPolicyDocument)},
}

// EnsurePolicy creates the built-in lobby policies unless they exist.
func (s *Service) EnsurePolicy(ctx context.Context) error {
	for _, p := range lobbyPolicies {
		_, err := s.reg.CreatePolicy(events.WithActor(ctx, "lobby"), p)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("lobby: create policy %s: %w", p.Name, err)
		}
	}
	return nil
}

// Device is a ledger entry with its history.
type Device struct {
	store.LobbyDevice
	History []store.LobbyTransition `json:"history,omitempty"`
}

// Assignment is what a commissioned device receives.
type Assignment struct {
	// Kind is the target's kind (local, mqtt, gatehouse).
	Kind      string `json:"kind,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Config    string `json:"config,omitempty"`
	CAChain   string `json:"caChain,omitempty"`
	ThingName string `json:"thingName,omitempty"`
	// ServerURL is a Gatehouse target's base URL.
	ServerURL string `json:"serverUrl,omitempty"`
	// RegistrationToken registers the device at a Gatehouse target. It is
	// a secret: the ledger keeps it sealed, apart from the assignment.
	RegistrationToken string `json:"registrationToken,omitempty"`
}

// ClaimRequest routes a device to a target.
type ClaimRequest struct {
	// Device is a fingerprint in any common form or a QR payload.
	Device string `json:"device"`
	Target string `json:"target"`
	// Config is handed to the device; empty takes the target's.
	Config string `json:"config,omitempty"`
	// ThingName names the thing a local target registers; empty takes the
	// certificate's common name.
	ThingName string `json:"thingName,omitempty"`
}

// ---- reads ----

// Get returns a ledger entry with its history; device is a fingerprint or
// QR payload.
func (s *Service) Get(ctx context.Context, device string) (*Device, error) {
	fp, err := ParseQR(device)
	if err != nil {
		return nil, err
	}
	d, err := s.store.GetLobbyDevice(ctx, fp)
	if err != nil {
		return nil, err
	}
	h, err := s.store.ListLobbyTransitions(ctx, fp)
	if err != nil {
		return nil, err
	}
	return &Device{LobbyDevice: *d, History: h}, nil
}

// List returns ledger entries by fingerprint, optionally in one state.
func (s *Service) List(ctx context.Context, f store.LobbyFilter) ([]store.LobbyDevice, error) {
	if f.State != "" && !validState(f.State) {
		return nil, fmt.Errorf("%w: unknown state %q", ErrInvalid, f.State)
	}
	return s.store.ListLobbyDevices(ctx, f)
}

func validState(st string) bool {
	switch st {
	case store.LobbyKnocking, store.LobbyInLobby, store.LobbyClaimed, store.LobbyCommissioned, store.LobbyArrived, store.LobbyRejected, store.LobbyDecommissioned:
		return true
	}
	return false
}

// ---- targets ----

var targetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// fingerprintRE is a lobby session's client id: a certificate fingerprint.
var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Service) checkTarget(t *store.LobbyTarget) error {
	if !targetName.MatchString(t.Name) {
		return fmt.Errorf("%w: target name %q", ErrInvalid, t.Name)
	}
	if t.Kind != store.LobbyTargetGatehouse && (t.APIURL != "" || t.APIToken != "") {
		return fmt.Errorf("%w: apiUrl and apiToken are for gatehouse targets", ErrInvalid)
	}
	switch t.Kind {
	case store.LobbyTargetLocal:
	case store.LobbyTargetGatehouse:
		return s.checkGatehouseTarget(t)
	case store.LobbyTargetMQTT:
		if t.Endpoint == "" {
			return fmt.Errorf("%w: an mqtt target needs an endpoint", ErrInvalid)
		}
		if t.CAPEM != "" {
			if _, err := pki.ParseCertificatesPEM([]byte(t.CAPEM)); err != nil {
				return fmt.Errorf("%w: caPem: %w", ErrInvalid, err)
			}
		}
	default:
		return fmt.Errorf("%w: target kind %q (want local, mqtt or gatehouse)", ErrInvalid, t.Kind)
	}
	return nil
}

// CreateTarget adds a target.
func (s *Service) CreateTarget(ctx context.Context, t store.LobbyTarget) (*store.LobbyTarget, error) {
	if err := s.checkTarget(&t); err != nil {
		return nil, err
	}
	if err := s.sealTargetToken(&t); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = s.now(), s.now()
	err := s.change(ctx, func(tx *store.Tx) ([]event, error) {
		return []event{{"lobby.target_created", "lobby-target/" + t.Name, map[string]any{"kind": t.Kind, "endpoint": t.Endpoint}}}, tx.CreateLobbyTarget(ctx, &t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Target returns a target.
func (s *Service) Target(ctx context.Context, name string) (*store.LobbyTarget, error) {
	return s.store.GetLobbyTarget(ctx, name)
}

// Targets lists targets by name.
func (s *Service) Targets(ctx context.Context, p store.Page) ([]store.LobbyTarget, error) {
	return s.store.ListLobbyTargets(ctx, p)
}

// UpdateTarget replaces a target's settings (not its kind) if ifVersion is
// current (0 skips the check). Devices already commissioned keep their
// assignment until rerouted.
func (s *Service) UpdateTarget(ctx context.Context, name string, ifVersion int64, in store.LobbyTarget) (*store.LobbyTarget, error) {
	var out *store.LobbyTarget
	err := s.change(ctx, func(tx *store.Tx) ([]event, error) {
		t, err := tx.GetLobbyTarget(ctx, name)
		if err != nil {
			return nil, err
		}
		if ifVersion != 0 && ifVersion != t.Version {
			return nil, store.ErrStale
		}
		t.Description, t.Endpoint, t.CAPEM, t.ThingType, t.Config, t.UpdatedAt = in.Description, in.Endpoint, in.CAPEM, in.ThingType, in.Config, s.now()
		t.APIURL, t.APIToken = in.APIURL, in.APIToken
		if err := s.checkTarget(t); err != nil {
			return nil, err
		}
		if err := s.sealTargetToken(t); err != nil {
			return nil, err
		}
		out = t
		return []event{{"lobby.target_updated", "lobby-target/" + name, map[string]any{"endpoint": t.Endpoint}}}, tx.UpdateLobbyTarget(ctx, t)
	})
	return out, err
}

// DeleteTarget removes a target no claimed or commissioned device uses.
func (s *Service) DeleteTarget(ctx context.Context, name string) error {
	return s.change(ctx, func(tx *store.Tx) ([]event, error) {
		return []event{{"lobby.target_deleted", "lobby-target/" + name, nil}}, tx.DeleteLobbyTarget(ctx, name)
	})
}

// ---- transactions and events ----

type event struct {
	typ, subject string
	details      any
}

// after is work done once a change committed (MQTT publishes).
type after func()

// change runs fn in a transaction, recording its events there; then
// notifies the event log's readers and drops cached policies.
func (s *Service) change(ctx context.Context, fn func(tx *store.Tx) ([]event, error)) error {
	recorded, err := s.events.ChangeAll(ctx, func(tx *store.Tx) ([]events.Pending, error) {
		evs, err := fn(tx)
		if err != nil {
			return nil, err
		}
		out := make([]events.Pending, len(evs))
		for i, e := range evs {
			out[i] = events.Pending{Type: e.typ, Subject: e.subject, Details: e.details}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	s.reg.InvalidatePolicies()
	for _, ev := range recorded {
		s.log.InfoContext(ctx, "lobby change", "event", ev.Type, "subject", ev.Subject, "actor", ev.Actor)
	}
	return nil
}

// ledger is one device's read-modify-write inside a transaction.
type ledger struct {
	s      *Service
	ctx    context.Context
	tx     *store.Tx
	d      *store.LobbyDevice
	isNew  bool
	events []event
	later  []after
	// remote: the claim waits for commissioning at a gatehouse target,
	// which talks to it outside the transaction (commissionRemote).
	remote bool
	// verify: a device reported its arrival at a gatehouse target, which
	// is asked whether it knows the thing (verifyArrival).
	verify bool
}

func (l *ledger) subject() string { return "lobby/" + l.d.Fingerprint }

// move records a transition to state to (and its event typ).
func (l *ledger) move(to, typ, reason string, details map[string]any) error {
	from := l.d.State
	l.d.State = to
	tr := &store.LobbyTransition{Fingerprint: l.d.Fingerprint, From: from, To: to, Actor: events.ActorFrom(l.ctx), Reason: reason, Target: l.d.Target, At: l.s.now()}
	if details == nil {
		details = map[string]any{}
	}
	details["from"], details["to"] = from, to
	if l.d.Target != "" {
		details["target"] = l.d.Target
	}
	if reason != "" {
		details["reason"] = reason
	}
	l.events = append(l.events, event{typ, l.subject(), details})
	if l.isNew {
		return nil // written once the row exists
	}
	return l.tx.AddLobbyTransition(l.ctx, tr)
}

// save writes the device (creating it if new) and, for a new one, its
// first transitions.
func (l *ledger) save() error {
	l.d.UpdatedAt = l.s.now()
	if l.isNew {
		l.d.CreatedAt = l.d.UpdatedAt
		if err := l.tx.CreateLobbyDevice(l.ctx, l.d); err != nil {
			return err
		}
		for _, e := range l.events {
			det := e.details.(map[string]any)
			tr := &store.LobbyTransition{Fingerprint: l.d.Fingerprint, From: det["from"].(string), To: det["to"].(string),
				Actor: events.ActorFrom(l.ctx), At: l.d.CreatedAt}
			if r, ok := det["reason"].(string); ok {
				tr.Reason = r
			}
			if t, ok := det["target"].(string); ok {
				tr.Target = t
			}
			if err := l.tx.AddLobbyTransition(l.ctx, tr); err != nil {
				return err
			}
		}
		return nil
	}
	return l.tx.UpdateLobbyDevice(l.ctx, l.d)
}

// update runs fn on the ledger entry fp (create: whether a missing entry
// starts empty instead of failing with ErrNotFound), saves it and runs the
// after-commit work.
func (s *Service) update(ctx context.Context, fp string, create bool, fn func(l *ledger) error) (*store.LobbyDevice, error) {
	var (
		out   *store.LobbyDevice
		later []after
	)
	err := s.change(ctx, func(tx *store.Tx) ([]event, error) {
		l := &ledger{s: s, ctx: ctx, tx: tx}
		d, err := tx.GetLobbyDevice(ctx, fp)
		switch {
		case errors.Is(err, store.ErrNotFound) && create:
			l.d, l.isNew = &store.LobbyDevice{Fingerprint: fp}, true
		case err != nil:
			return nil, err
		default:
			l.d = d
		}
		if err := fn(l); err != nil {
			return nil, err
		}
		if err := l.save(); err != nil {
			return nil, err
		}
		out, later = l.d, l.later
		return l.events, nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range later {
		f()
	}
	return out, nil
}

func stateErr(d *store.LobbyDevice, op string) error {
	return fmt.Errorf("%w: cannot %s device %s in state %s", ErrState, op, d.Fingerprint, d.State)
}

// ---- lobby policy attachment ----

// attachLobbyPolicy attaches the lobby policies (lobbyPolicies) the
// device's certificate lacks.
func (l *ledger) attachLobbyPolicy() error {
	// Look first: on PostgreSQL a failed INSERT aborts the transaction.
	have, err := l.tx.PoliciesAttachedTo(l.ctx, map[string][]string{store.TargetCertificate: {l.d.Fingerprint}})
	if err != nil {
		return fmt.Errorf("lobby: policies of %s: %w", l.d.Fingerprint, err)
	}
	for _, p := range lobbyPolicies {
		if slices.Contains(have, p.Name) {
			continue
		}
		err = l.tx.AttachPolicy(l.ctx, &store.PolicyAttachment{Policy: p.Name, TargetKind: store.TargetCertificate, Target: l.d.Fingerprint, CreatedAt: l.s.now()})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("lobby: attach %s: %w", p.Name, err)
		}
	}
	return nil
}

func (l *ledger) detachLobbyPolicy() error {
	for _, p := range lobbyPolicies {
		err := l.tx.DetachPolicy(l.ctx, store.PolicyAttachment{Policy: p.Name, TargetKind: store.TargetCertificate, Target: l.d.Fingerprint})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lobby: detach %s: %w", p.Name, err)
		}
	}
	return nil
}

// lobbyPoliciesAttached reports whether a device in state keeps the lobby
// policies attached: until it arrived here, or is rejected or
// decommissioned. (A device that arrived at a remote target keeps them;
// one that arrived here does not, and then logs in as its thing.)
func lobbyPoliciesAttached(state string) bool {
	switch state {
	case store.LobbyKnocking, store.LobbyInLobby, store.LobbyClaimed, store.LobbyCommissioned:
		return true
	}
	return false
}

// marshalAssignment encodes a for the ledger and the device.
func marshalAssignment(a Assignment) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("lobby: encode assignment: %w", err)
	}
	return string(b), nil
}
