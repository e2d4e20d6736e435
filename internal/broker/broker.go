package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// Authenticator checks what a client presents; *authn.Authenticator is one.
type Authenticator interface {
	Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error)
	// Recheck tells whether an earlier identity is still acceptable.
	Recheck(ctx context.Context, id *authn.Identity) error
}

// Config holds the broker's dependencies and listeners. An empty address
// disables that listener.
type Config struct {
	Authn    Authenticator
	Registry *registry.Service
	Events   *events.Log
	Logger   *slog.Logger
	Now      func() time.Time
	// Policy pins the region and account of ARN resources, if set.
	Policy policy.Options

	TCPAddr string
	// TLSAddr serves MQTT over TLS with TLSConfig (client certificates are
	// requested, and verified by the authenticator, when it asks for them).
	TLSAddr   string
	TLSConfig *tls.Config
	WSAddr    string
	WSSAddr   string

	// MaxClientWritesPending bounds each client's outbound queue (mochi's
	// default of 8192 costs too much memory per connection).
	MaxClientWritesPending int32
	// EventTopicPrefix is where the event log is mirrored; "" disables.
	// Like $gatehouse/ and $SYS/ it is reserved: only the server publishes
	// there, and clients read it as their policy allows.
	EventTopicPrefix string
	// Reserved opens parts of the reserved topics ($gatehouse/, $SYS/,
	// EventTopicPrefix) to the sessions a feature defines them for (see
	// ReservedGrant); everything else there is the server's alone.
	Reserved []ReservedGrant
	// Answerers are topic spaces where the server answers clients'
	// requests to the requesting connection alone (answered.go), such as
	// AWS IoT fleet provisioning's $aws/certificates/ and
	// $aws/provisioning-templates/. They are reserved like the topics above.
	Answerers []Answerer
	// ReservedTopics reserve more topic spaces to the server, as
	// $gatehouse/ is (see ReservedSpace): the AWS Device Lobby protocol's
	// lobby/ and $aws/rules/lobby.
	ReservedTopics []ReservedSpace

	// AnonymousAddr, for interoperability testing only, serves plain MQTT
	// without authentication (listener id "anonymous"): every client is
	// the principal "anonymous", bound to AnonymousPolicy, which is still
	// checked for every connect, publish, subscribe, delivery and will.
	// Empty (the default) disables it; it needs AnonymousPolicy.
	AnonymousAddr string
	// AnonymousPolicy is the compiled policy set anonymous connections are
	// bound to; ${iot:ClientId} resolves, thing variables do not.
	AnonymousPolicy *policy.Set

	// MaxKeepAlive caps MQTT 5 clients' keep-alive (Server Keep Alive in
	// the CONNACK); 0 leaves it as the client asks. Whole seconds.
	MaxKeepAlive time.Duration
	// ConnectPerIP limits CONNECTs per client address before any
	// authentication work (refused with 0x9F connection rate exceeded, or
	// 0x03 server unavailable for MQTT 3). Nil: no limit.
	ConnectPerIP *ratelimit.Limiter
	// ConnectionsPerThing bounds the concurrent connections (distinct
	// client ids) authenticated as one thing; a new connection over it is
	// refused with 0x97 quota exceeded (0x05 for MQTT 3) and the existing
	// ones stay, so a leaked credential cannot push the device off. A
	// reconnect under a client id already connected is a takeover, not a
	// new connection. 0: no limit.
	ConnectionsPerThing int
	// MaxPacketSize bounds every packet in bytes (mochi disconnects the
	// client, 0x95 packet too large); 0: MQTT's own maximum.
	MaxPacketSize int
	// MaxMessageSize bounds a PUBLISH payload in bytes, MQTT and HTTPS
	// (0x95 in the PUBACK for MQTT 5 QoS 1/2; MQTT 3 QoS 1/2 clients are
	// disconnected; QoS 0 is dropped); 0: MaxHTTPPayload for HTTPS, no
	// limit for MQTT beyond MaxPacketSize.
	MaxMessageSize int
	// ConnectTimeout closes a connection that has not completed an
	// authenticated CONNECT this long after it was accepted (TLS handshake
	// and WebSocket upgrade included); 0: 10 seconds.
	ConnectTimeout time.Duration
	// PendingConnectionsPerIP bounds the concurrent connections of one
	// client address that have not completed an authenticated CONNECT; a
	// new one over it is closed at once. 0: no limit.
	PendingConnectionsPerIP int
	// MaxTopicBytes and MaxTopicLevels bound topic names and filters
	// (publish, subscribe, will, HTTPS publish); 0: no limit.
	MaxTopicBytes, MaxTopicLevels int
	// DropDeniedQoS0 drops a QoS 0 PUBLISH from an MQTT 3.1.1 client that
	// the policy refuses (iot:Publish, iot:RetainPublish, reserved
	// topics) and keeps the connection. False (the default) closes the
	// connection, as AWS IoT Core does on an authorization failure and as
	// for QoS 1/2, which MQTT 3.1.1 cannot refuse otherwise. MQTT 5 QoS 0
	// refusals are always dropped (QoS 1/2 get the reason code).
	DropDeniedQoS0 bool
	// Rejections counts refusals by the limits above (may be nil).
	Rejections *ratelimit.Rejections
	// DenialWindow aggregates broker.denied events of one source, action
	// and reason: the first of a window is written at once, the rest as
	// one event with their count when it ends. 0 writes every denial.
	DenialWindow time.Duration
	// Cluster joins this broker to the other replicas' (cluster.go); nil
	// for one replica.
	Cluster Cluster
}

// anonymousListener is the id of the unauthenticated test listener.
const anonymousListener = "anonymous"

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	server *mqtt.Server
	hook   *hook
	batch  *events.Batcher
	// denials aggregates broker.denied events through batch.
	denials *events.Aggregator
	// pending bounds connections not yet past an authenticated CONNECT.
	pending *pendingConns

	mu        sync.Mutex
	addrs     map[string]string // listener id -> address
	wsServers []*wsListener

	metrics *metrics
	// cluster is the cluster hook, or nil (cluster.go).
	cluster *clusterHook

	// followFrom is the newest event when the broker was built: the
	// follower applies everything after it, so a change made between New
	// and Run is not missed.
	followFrom  int64
	followKnown bool
	// rebinds is the follower's work for the rebinder (rebind.go).
	rebinds *rebinds
}

// New builds the broker and binds its listeners.
func New(cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClientWritesPending == 0 {
		cfg.MaxClientWritesPending = 1024
	}
	opts := &mqtt.Options{InlineClient: true, Logger: slog.New(newRedactHandler(cfg.Logger.Handler())).With("component", "mochi")}
	opts.Capabilities = mqtt.NewDefaultServerCapabilities()
	opts.Capabilities.MaximumClientWritesPending = cfg.MaxClientWritesPending
	// No session may outlive its credentials by much: a day.
	opts.Capabilities.MaximumSessionExpiryInterval = 24 * 60 * 60
	opts.Capabilities.TopicAliasMaximum = topicAliasMaximum
	if cfg.MaxPacketSize > 0 {
		opts.Capabilities.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, now: cfg.Now, server: mqtt.New(opts), addrs: map[string]string{}, metrics: &metrics{}, rebinds: newRebinds()}
	b.pending = newPendingConns(cfg.ConnectTimeout, cfg.PendingConnectionsPerIP, func() { cfg.Rejections.Inc(pendingLimit) })
	if cfg.Events != nil {
		b.batch = cfg.Events.NewBatcher(4096, cfg.Logger)
		b.denials = cfg.Events.NewAggregator(b.batch, cfg.DenialWindow)
		if id, err := cfg.Events.LatestID(context.Background()); err == nil {
			b.followFrom, b.followKnown = id, true
		}
	}
	b.hook = newHook(b)
	if err := b.server.AddHook(b.hook, nil); err != nil {
		return nil, err
	}
	if err := b.installCluster(); err != nil {
		return nil, err
	}
	if err := b.listen(); err != nil {
		b.server.Close()
		for _, ws := range b.wsServers {
			ws.close()
		}
		return nil, err
	}
	return b, nil
}

func (b *Broker) listen() error {
	if a := b.cfg.TCPAddr; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("broker: mqtt listener: %w", err)
		}
		if err := b.add("mqtt", b.pending.listen(ln)); err != nil {
			return err
		}
	}
	if a := b.cfg.TLSAddr; a != "" {
		if b.cfg.TLSConfig == nil {
			return errors.New("broker: mqtts listener needs a TLS configuration")
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("broker: mqtts listener: %w", err)
		}
		// Pending from the first byte: the TLS handshake must fit in the
		// connect deadline too.
		if err := b.add("mqtts", tls.NewListener(b.pending.listen(ln), b.cfg.TLSConfig)); err != nil {
			return err
		}
	}
	if a := b.cfg.AnonymousAddr; a != "" {
		if b.cfg.AnonymousPolicy == nil {
			return errors.New("broker: anonymous listener needs a policy")
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("broker: anonymous listener: %w", err)
		}
		if err := b.add(anonymousListener, b.pending.listen(ln)); err != nil {
			return err
		}
	}
	if a := b.cfg.WSAddr; a != "" {
		if err := b.addWS("ws", a, nil); err != nil {
			return err
		}
	}
	if a := b.cfg.WSSAddr; a != "" {
		if b.cfg.TLSConfig == nil {
			return errors.New("broker: wss listener needs a TLS configuration")
		}
		if err := b.addWS("wss", a, b.cfg.TLSConfig); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) add(id string, ln net.Listener) error {
	if err := b.server.AddListener(trackedListener{Listener: listeners.NewNet(id, ln), ended: b.hook.connectionEnded}); err != nil {
		ln.Close()
		return fmt.Errorf("broker: %s listener: %w", id, err)
	}
	b.addrs[id] = ln.Addr().String()
	return nil
}

// trackedListener tells the hook when mochi is done with a connection.
type trackedListener struct {
	listeners.Listener
	ended func(net.Conn)
}

func (l trackedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		defer l.ended(c)
		return establish(id, c)
	})
}

// Addr returns the address of a listener ("mqtt", "mqtts", "ws", "wss",
// "anonymous"),
// or "" if it is not enabled.
func (b *Broker) Addr(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[id]
}

// Run serves until ctx ends, then disconnects clients and stops.
func (b *Broker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	for _, ws := range b.wsServers {
		go ws.serve()
	}
	var wg sync.WaitGroup
	if b.batch != nil {
		wg.Go(func() { _ = b.batch.Run(ctx) })
		wg.Go(func() { _ = b.denials.Run(ctx) })
	}
	if b.cfg.Events != nil {
		wg.Go(func() { b.follow(ctx) })
		wg.Go(func() { b.rebinder(ctx) })
	}
	<-ctx.Done()
	b.hook.stopWills()
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Net.Inline {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	for _, ws := range b.wsServers {
		ws.close()
	}
	err := b.server.Close()
	wg.Wait()
	return err
}

// Server exposes mochi for tests and the HTTPS publish handler.
func (b *Broker) Server() *mqtt.Server { return b.server }

// record queues an event about a connection. Denials are aggregated
// (see Config.DenialWindow): a flood of failed CONNECTs must not grow the
// event log by a row each.
func (b *Broker) record(ctx context.Context, typ, subject string, details any) {
	if b.batch == nil {
		return
	}
	if typ == deniedEvent {
		b.denials.Record(ctx, denialKey(events.ActorFrom(ctx), details), typ, subject, details)
		return
	}
	b.batch.Record(ctx, typ, subject, details)
}

// deniedEvent is the type of the broker's denial events.
const deniedEvent = "broker.denied"

// denialKey is what makes two denials repeats of each other: who (the
// principal, and the client address when known, port dropped), the
// action, and why (the reason, or else the resource).
func denialKey(actor string, details any) string {
	d, _ := details.(map[string]any)
	str := func(k string) string { s, _ := d[k].(string); return s }
	source := str("remote")
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host
	}
	why := str("reason")
	if why == "" {
		why = str("resource")
	}
	return strings.Join([]string{actor, source, str("action"), str("via"), why}, "\x00")
}

// Publish publishes as the server (the inline client): no policy applies.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.server.Publish(topic, payload, retain, qos)
}

// Subscribe subscribes the server's inline client to filter.
func (b *Broker) Subscribe(filter string, subscriptionID int, handler mqtt.InlineSubFn) error {
	return b.server.Subscribe(filter, subscriptionID, handler)
}

// Unsubscribe ends an inline subscription.
func (b *Broker) Unsubscribe(filter string, subscriptionID int) error {
	return b.server.Unsubscribe(filter, subscriptionID)
}

// Identity is whom the client now connected with clientID authenticated
// as, or nil: an inline subscriber learns who published what it receives
// from the packet's Origin (mochi hands inline handlers its own inline
// client, not the publisher). Nil for the inline client (the server's own
// and HTTPS publishes) and ids with no live session.
func (b *Broker) Identity(clientID string) *authn.Identity {
	cl, ok := b.server.Clients.Get(clientID)
	if !ok || cl.Net.Inline {
		return nil
	}
	if s := b.hook.session(cl); s != nil && !s.offline.Load() {
		return s.id
	}
	return nil
}
