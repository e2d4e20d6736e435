package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// session is what the broker knows about one authenticated connection.
type session struct {
	cl *mqtt.Client
	// offline marks a persistent session whose client disconnected: it
	// stays so that messages can be queued for it (each still checked for
	// iot:Receive) until it expires, is taken over or is revoked.
	offline  atomic.Bool
	id       *authn.Identity
	clientID string
	sourceIP netip.Addr
	bound    atomic.Pointer[policy.Bound]
	// res is what bound was bound from: the policies and what the
	// rebinder matches changes against (nil for anonymous sessions).
	res atomic.Pointer[registry.Resolved]
	// anonymous marks a connection on the anonymous test listener: bound
	// to Config.AnonymousPolicy, never to anything in the registry.
	anonymous bool

	// subscribing counts SUBSCRIBE packets being checked; while it is not
	// zero, pending holds their filters, so that OnACLCheck (which mochi
	// calls with the same arguments for Subscribe and for Receive) can tell
	// them apart.
	subscribing atomic.Int32
	mu          sync.Mutex
	pending     map[string]struct{}
	timer       *time.Timer
	// denials counts denial events recorded, to bound them per connection.
	denials atomic.Int64
	// connectedAt is when the CONNECT was admitted.
	connectedAt time.Time
	// counted is set while the connection counts against its thing's
	// ConnectionsPerThing (see hook.admit).
	counted atomic.Bool
	// takenOver marks a session another connection took over by client
	// id: it stays known until its connection ends, so that its will is
	// authorized (and published) as the session it is.
	takenOver atomic.Bool
	// replaced marks a session a connection to this broker took over
	// (OnSessionEstablish), not one ended for another replica's: mochi
	// marks its client taken over moments later (see awaitTakenOver).
	replaced atomic.Bool
	// will is the will CONNECT gave (nil: none), and willHandled whether
	// mochi handed it to OnWill; see missedWill.
	will        *mqtt.Will
	willHandled atomic.Bool
}

// maxDenialEvents is how many denials one connection records in the event
// log; later ones are only counted in metrics and the debug log.
const maxDenialEvents = 20

func (s *session) ctx() context.Context {
	return events.WithActor(context.Background(), s.id.Principal)
}

// hook is the broker's one mochi hook: authentication and authorization.
type hook struct {
	mqtt.HookBase
	b        *Broker
	sessions sync.Map // *mqtt.Client -> *session (remember, forget)
	index    sessionIndex
	// revoked holds the jtis of tokens the event log said were revoked,
	// until the time.Time stored with them. A revocation made on another
	// replica reaches this replica's event follower before its token
	// revocation cache (reloaded every few seconds); without this a client
	// kicked for a revoked token could reconnect with it in between and
	// then keep its session.
	revoked sync.Map // string -> time.Time

	// perThing counts live connections by thing name and client id, for
	// Config.ConnectionsPerThing.
	perThingMu sync.Mutex
	perThing   map[string]map[string]int

	// byConn finds the session of a network connection when mochi is done
	// with it (see connectionEnded).
	byConn sync.Map // net.Conn -> *session

	// wills holds the delayed wills waiting to be sent, by client id
	// (see OnWill); willClient is the inline client that sends them.
	willsMu    sync.Mutex
	wills      map[string]*delayedWill
	willClient *mqtt.Client
}

// revokedMemory is how long the broker itself refuses a revoked token; by
// then the authenticator's revocation cache has it too.
const revokedMemory = time.Minute

// markRevoked remembers revoked token jtis and forgets expired ones.
func (h *hook) markRevoked(ids map[string]bool) {
	now := h.b.now()
	h.revoked.Range(func(k, v any) bool {
		if now.After(v.(time.Time)) {
			h.revoked.Delete(k)
		}
		return true
	})
	for id := range ids {
		h.revoked.Store(id, now.Add(revokedMemory))
	}
}

// isRevoked reports whether the event log recently revoked the token a
// session's credential id names.
func (h *hook) isRevoked(id string) bool {
	if id == "" {
		return false
	}
	v, ok := h.revoked.Load(id)
	return ok && !h.b.now().After(v.(time.Time))
}

func newHook(b *Broker) *hook {
	return &hook{b: b, perThing: map[string]map[string]int{}, wills: map[string]*delayedWill{},
		willClient: b.server.NewClient(nil, "local", "gatehouse-will", true)}
}

func (h *hook) ID() string { return "gatehouse" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnClientExpired, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPublish, mqtt.OnWill,
		mqtt.OnPacketRead, mqtt.OnPacketEncode,
	}, []byte{b})
}

func (h *hook) session(cl *mqtt.Client) *session {
	v, ok := h.sessions.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

func remoteIP(cl *mqtt.Client) netip.Addr {
	ap, err := netip.ParseAddrPort(cl.Net.Remote)
	if err != nil {
		if host, _, err := net.SplitHostPort(cl.Net.Remote); err == nil {
			a, _ := netip.ParseAddr(host)
			return a
		}
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// credentials gathers what the client presented, from CONNECT, the TLS
// handshake and, for WebSocket, the upgrade request.
func credentials(cl *mqtt.Client, pk packets.Packet) authn.Credentials {
	c := authn.Credentials{ClientID: cl.ID, Username: string(pk.Connect.Username), Password: pk.Connect.Password, SourceIP: remoteIP(cl)}
	conn := cl.Net.Conn
	if ws, ok := conn.(*wsConn); ok {
		c.AuthorizerName = ws.lookup("x-amz-customauthorizer-name")
		c.AuthorizerSignature = ws.lookup("x-amz-customauthorizer-signature")
		if c.AuthorizerName != "" || c.AuthorizerSignature != "" {
			c.TokenFromHeader = ws.lookup
		}
		conn = ws.Conn
	}
	if tc, ok := conn.(*tls.Conn); ok {
		c.PeerCertificates = tc.ConnectionState().PeerCertificates
	}
	return c
}

// codeFor maps an authentication error to a CONNACK reason.
func codeFor(err error) packets.Code {
	switch {
	case errors.Is(err, authn.ErrBadCredentials):
		return packets.ErrBadUsernameOrPassword
	case errors.Is(err, authn.ErrNotAuthorized):
		return packets.ErrNotAuthorized
	}
	return packets.ErrServerUnavailable
}

// OnConnect authenticates the client and checks iot:Connect and its will,
// answering a refusal itself so the CONNACK carries the precise reason.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if err := h.b.checkWill(cl, pk); err != nil {
		return err
	}
	capKeepAlive(cl, h.b.cfg.MaxKeepAlive)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	refuse := func(code packets.Code, id *authn.Identity, why string) error {
		principal := "anonymous"
		if id != nil {
			principal = id.Principal
		}
		h.b.log.Info("mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote, "principal", principal, "code", code.Code, "why", why)
		h.b.record(events.WithActor(ctx, principal), "broker.denied", "client/"+cl.ID, map[string]any{
			"action": "iot:Connect", "clientId": cl.ID, "remote": cl.Net.Remote, "reason": why})
		h.b.metrics.connect("refused")
		_ = h.b.server.SendConnack(cl, connackCode(cl, code), false, nil)
		return code
	}
	if ok, _ := h.b.cfg.ConnectPerIP.AllowAddr(cl.Net.Remote); !ok {
		// No event: a flood of these must not flood the event log.
		h.b.log.Debug("mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote, "why", "connectPerIP limit")
		h.b.metrics.connect("refused")
		code := packets.ErrConnectionRateExceeded
		_ = h.b.server.SendConnack(cl, connackCode(cl, code), false, nil)
		return code
	}
	anonymous := cl.Net.Listener == anonymousListener
	id := anonymousIdentity
	if !anonymous {
		var err error
		if id, err = h.b.cfg.Authn.Authenticate(ctx, credentials(cl, pk)); err != nil {
			return refuse(codeFor(err), nil, err.Error())
		}
	}
	s := &session{cl: cl, id: id, clientID: cl.ID, sourceIP: remoteIP(cl), anonymous: anonymous, pending: map[string]struct{}{}, connectedAt: h.b.now()}
	if err := h.bind(ctx, s); err != nil {
		return refuse(packets.ErrServerUnavailable, id, err.Error())
	}
	bound := s.bound.Load()
	if !bound.Allowed(policy.ActionConnect, cl.ID) {
		return refuse(packets.ErrNotAuthorized, id, "iot:Connect denied for client id "+cl.ID)
	}
	if pk.Connect.WillFlag && !h.willAllowed(bound, pk.Connect.WillTopic, pk.Connect.WillRetain) {
		return refuse(packets.ErrNotAuthorized, id, "will message to "+pk.Connect.WillTopic+" denied")
	}
	if !h.admit(s) {
		h.b.cfg.Rejections.Inc("connectionsPerThing")
		return refuse(packets.ErrQuotaExceeded, id, fmt.Sprintf("thing %s already has %d connections (limits.connectionsPerThing)", id.ThingName, h.b.cfg.ConnectionsPerThing))
	}
	if pk.Connect.WillFlag {
		will := cl.Properties.Will // as mochi parsed it; this is the client's goroutine
		s.will = &will
	}
	h.remember(cl, s)
	h.byConn.Store(cl.Net.Conn, s)
	// Checked after the session is visible: a concurrent follower either
	// finds the session to kick or has marked the credential already.
	if h.isRevoked(id.CredentialID) {
		h.forget(cl)
		h.release(s)
		return refuse(packets.ErrBadUsernameOrPassword, id, "credential revoked") // as the authenticator answers later
	}
	return nil
}

// connectionEnded runs when mochi returns from serving conn. Normally
// OnDisconnect has forgotten its session (or marked it offline) by then;
// but when the connection fails after OnConnect admitted it and before
// the session is running (the CONNACK or the resent inflight messages
// cannot be written, e.g. the client reset the connection), mochi returns
// without OnDisconnect: the session is forgotten here, or it would stay
// in memory and keep counting against its thing's connections forever.
func (h *hook) connectionEnded(conn net.Conn) {
	v, ok := h.byConn.LoadAndDelete(conn)
	if !ok {
		return
	}
	s := v.(*session)
	if s.offline.Load() {
		return
	}
	if cur, ok := h.sessions.Load(s.cl); !ok || cur != s {
		return
	}
	h.forget(s.cl)
	h.release(s)
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	h.b.log.Debug("mqtt connection ended before its session ran", "client", s.cl.ID, "remote", s.cl.Net.Remote)
}

// admit counts s against its thing's connections, or reports false when
// the thing has Config.ConnectionsPerThing other client ids connected.
func (h *hook) admit(s *session) bool {
	limit, thing := h.b.cfg.ConnectionsPerThing, s.id.ThingName
	if limit <= 0 || thing == "" || s.anonymous {
		return true
	}
	h.perThingMu.Lock()
	defer h.perThingMu.Unlock()
	ids := h.perThing[thing]
	if ids[s.clientID] == 0 && len(ids) >= limit {
		return false
	}
	if ids == nil {
		ids = map[string]int{}
		h.perThing[thing] = ids
	}
	ids[s.clientID]++
	s.counted.Store(true)
	return true
}

// release undoes admit, once.
func (h *hook) release(s *session) {
	if !s.counted.CompareAndSwap(true, false) {
		return
	}
	h.perThingMu.Lock()
	defer h.perThingMu.Unlock()
	ids := h.perThing[s.id.ThingName]
	if ids[s.clientID]--; ids[s.clientID] <= 0 {
		delete(ids, s.clientID)
	}
	if len(ids) == 0 {
		delete(h.perThing, s.id.ThingName)
	}
}

// willAllowed checks a will as the publish it will become. No will goes to
// a reserved topic: no feature defines one there.
func (h *hook) willAllowed(b *policy.Bound, topic string, retain bool) bool {
	if policy.ValidateTopicName(topic) != nil || h.reservedTopic(topic) || !b.Allowed(policy.ActionPublish, topic) {
		return false
	}
	return !retain || b.Allowed(policy.ActionRetainPublish, topic)
}

// anonymousIdentity is every anonymous test listener connection's identity.
var anonymousIdentity = &authn.Identity{Method: "anonymous", Principal: "anonymous"}

// anonymousPolicies names the policy anonymous sessions are bound to.
var anonymousPolicies = []string{"(anonymous policy)"}

// policies names the policies the session is bound to.
func (s *session) policies() []string {
	if s.anonymous {
		return anonymousPolicies
	}
	if res := s.res.Load(); res != nil {
		return res.Policies
	}
	return nil
}

// bind resolves the session's policies and binds them to its context.
func (h *hook) bind(ctx context.Context, s *session) error {
	if s.anonymous {
		s.bound.Store(h.b.cfg.AnonymousPolicy.Bind(policy.Context{ClientID: s.clientID, SourceIP: s.sourceIP}))
		return nil
	}
	res, err := h.b.cfg.Registry.ResolvePolicies(ctx, s.id.Subject, h.b.cfg.Policy)
	if err != nil {
		return err
	}
	h.bindTo(s, res)
	return nil
}

// bindTo binds the resolved policies to the session's context.
func (h *hook) bindTo(s *session, res *registry.Resolved) {
	pctx := registry.PolicyContext(res, s.clientID, s.sourceIP, s.id.Certificate, s.id.Token)
	if res.Thing == nil || res.Thing.Name != s.clientID {
		// As in AWS IoT, thing variables resolve only for a client whose
		// id is the thing's name.
		pctx.Thing = nil
	}
	s.bound.Store(res.Set.Bind(pctx))
	s.res.Store(res)
}

// OnConnectAuthenticate accepts exactly the clients OnConnect admitted.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return h.session(cl) != nil
}

// OnSessionEstablished re-checks subscriptions a resumed session brought
// along (mochi restores them unchecked) and arms the expiry timer.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s := h.session(cl)
	if s == nil {
		return
	}
	h.b.metrics.connect("accepted")
	h.recheckSubscriptions(s)
	h.armExpiry(s)
	policies := s.policies()
	h.b.log.Debug("mqtt connected", "client", cl.ID, "principal", s.id.Principal, "method", s.id.Method, "policies", policies)
	h.b.record(s.ctx(), "broker.connected", "client/"+cl.ID, &connectedDetails{
		ClientID: cl.ID, Remote: cl.Net.Remote, Listener: cl.Net.Listener, Method: s.id.Method,
		Thing: s.id.ThingName, Policies: policies, Protocol: cl.Properties.ProtocolVersion})
}

// connectedDetails and disconnectedDetails are the details of the
// broker.connected and broker.disconnected events, written for every
// connection: structs encode for less than maps (no map to build, no keys
// to sort). Their fields are in the order of their JSON names, so the
// details read exactly as the maps once written were (TestConnectionEventDetails).
type connectedDetails struct {
	ClientID string   `json:"clientId"`
	Listener string   `json:"listener"`
	Method   string   `json:"method"`
	Policies []string `json:"policies"`
	Protocol byte     `json:"protocol"`
	Remote   string   `json:"remote"`
	Thing    string   `json:"thing"`
}

type disconnectedDetails struct {
	ClientID    string `json:"clientId"`
	Reason      string `json:"reason"`
	SessionKept bool   `json:"sessionKept"`
}

// expired reports whether the session's credential has expired by the
// broker's clock: from ExpiresAt on, the instant the authenticator refuses
// it at CONNECT.
func (h *hook) expired(s *session) bool {
	exp := s.id.ExpiresAt
	return !exp.IsZero() && !h.b.now().Before(exp)
}

// armExpiry disconnects the session when its credential expires. The
// timer only wakes the check; the broker's clock decides, so the kick
// happens at the same instant as a refusal at CONNECT would.
func (h *hook) armExpiry(s *session) {
	if s.id.ExpiresAt.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(max(s.id.ExpiresAt.Sub(h.b.now()), 0), func() {
		if h.expired(s) {
			h.kick(s, packets.ErrMaxConnectTime, "credential expired")
		} else if h.session(s.cl) == s && !s.offline.Load() {
			h.armExpiry(s)
		}
	})
}

// recheckSubscriptions drops subscriptions the session may no longer hold:
// those iot:Subscribe no longer allows. iot:Receive is not a reason: as in
// AWS IoT the subscription stays and each delivery is checked (OnACLCheck),
// so deliveries resume when Receive is granted again.
func (h *hook) recheckSubscriptions(s *session) {
	bound := s.bound.Load()
	for filter := range s.cl.State.Subscriptions.GetAll() {
		if !h.reservedAllowed(s, policy.ActionSubscribe, filter) || !bound.Allowed(policy.ActionSubscribe, filter) {
			h.b.server.Topics.Unsubscribe(filter, s.cl.ID)
			s.cl.State.Subscriptions.Delete(filter)
			h.b.log.Info("mqtt subscription dropped", "client", s.cl.ID, "filter", filter)
		}
	}
}

// subscribeAllowed is the SUBSCRIBE decision for one filter. A literal
// (wildcard-free, unshared) filter also needs iot:Receive on that topic.
func subscribeAllowed(b *policy.Bound, filter string) bool {
	if !b.Allowed(policy.ActionSubscribe, filter) {
		return false
	}
	if _, _, shared := policy.SplitShared(filter); shared || policy.HasWildcard(filter) {
		return true
	}
	return b.Allowed(policy.ActionReceive, filter)
}

// OnDisconnect forgets the session.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.cfg.Rejections.Inc("mqtt.maxPacketSize")
	}
	v, ok := h.sessions.Load(cl)
	if !ok {
		return
	}
	s := v.(*session)
	h.release(s)
	if s.replaced.Load() {
		awaitTakenOver(cl)
	}
	if err == nil {
		h.missedWill(cl, s)
	}
	if expire || s.takenOver.Load() {
		h.forget(cl)
	} else {
		// A persistent session: keep it, so QoS 1/2 messages published
		// while the client is away are queued (and Receive-checked).
		s.offline.Store(true)
	}
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	// Why the connection ended: what stopped it (a takeover, a kick, a
	// read error, a protocol error) rather than what the read loop saw
	// afterwards (a closed connection, or nothing at all).
	reason := "client disconnected"
	switch cause := cl.StopCause(); {
	case cause != nil && !errors.Is(cause, packets.CodeDisconnect):
		reason = cause.Error()
	case err != nil:
		reason = err.Error()
	}
	h.b.record(s.ctx(), "broker.disconnected", "client/"+cl.ID, &disconnectedDetails{ClientID: cl.ID, Reason: reason, SessionKept: !expire})
}

// OnClientExpired forgets an offline session whose expiry interval passed.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.forget(cl)
}

// OnSessionEstablish runs before mochi hands a client id's earlier session
// (its subscriptions and unacknowledged messages) to the new connection:
// queued messages the new principal may not receive are dropped, so a
// session taken over by someone else does not leak them, and the earlier
// session is forgotten.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.b.established(cl)
	s := h.session(cl)
	if s == nil {
		return
	}
	// A new connection to the session: a delayed will of the earlier one
	// is not sent [MQTT-3.1.3-9].
	h.cancelWill(cl.ID)
	existing, ok := h.b.server.Clients.Get(cl.ID)
	if !ok || existing == cl {
		return
	}
	bound := s.bound.Load()
	for _, m := range existing.State.Inflight.GetAll(false) {
		if m.FixedHeader.Type == packets.Publish && !bound.Allowed(policy.ActionReceive, m.TopicName) {
			existing.State.Inflight.Delete(m.PacketID)
			h.b.log.Info("mqtt queued message dropped on resume", "client", cl.ID, "topic", m.TopicName)
		}
	}
	old := h.session(existing)
	if old == nil {
		return
	}
	h.release(old)
	if old.offline.Load() || existing.Closed() {
		h.forget(existing)
		return
	}
	// Still connected: mochi disconnects it next and publishes its will
	// (MQTT 5 §3.1.4; AWS IoT does on DUPLICATE_CLIENTID), which OnWill
	// authorizes against this session's binding of that moment; its
	// OnDisconnect then forgets it.
	old.replaced.Store(true)
	old.takenOver.Store(true)
}

// takeoverPolls bounds awaitTakenOver: up to about a second.
const takeoverPolls = 1000

// awaitTakenOver returns once mochi has marked cl, whose client id a new
// connection takes over, as taken over (or after about a second). mochi
// (v2.7.9, Server.inheritClientSession) disconnects the old client first
// and marks it afterwards, and the old client's goroutine, after
// OnDisconnect, removes the client id's entry and subscriptions unless
// the mark is set: when it read the mark before the new connection set
// it and removed them after the new connection registered under that id,
// it removed the new connection's. That one then stayed connected but
// unknown to the broker: nothing delivered to it, and its publishes
// without a publisher (CI: TestAWSLobbyOverMQTT). OnDisconnect returning
// only once the mark is set closes the window; the wait is the old
// connection's own, and the new one sets the mark right after it
// disconnected the old.
func awaitTakenOver(cl *mqtt.Client) {
	for i, wait := 0, 10*time.Microsecond; i < takeoverPolls && !cl.IsTakenOver(); i, wait = i+1, min(2*wait, time.Millisecond) {
		time.Sleep(wait)
	}
}

// kick disconnects a session's client (MQTT 5 clients get the reason).
func (h *hook) kick(s *session, code packets.Code, why string) {
	if s.offline.Load() {
		// Nothing to disconnect: forget the session so nothing more is
		// queued for it under credentials no longer valid, and end mochi's
		// session with it, so that a client coming back (a thing disabled
		// and enabled again) is told there is no session present rather
		// than resuming one whose queue was dead meanwhile.
		h.forget(s.cl)
		h.endSession(s.cl)
		h.b.log.Info("mqtt offline session dropped by gatehouse", "client", s.cl.ID, "principal", s.id.Principal, "why", why)
		return
	}
	h.b.log.Info("mqtt client disconnected by gatehouse", "client", s.cl.ID, "principal", s.id.Principal, "why", why)
	h.b.metrics.kick()
	h.b.record(s.ctx(), "broker.kicked", "client/"+s.cl.ID, map[string]any{"clientId": s.cl.ID, "reason": why, "code": code.Code})
	_ = h.b.server.DisconnectClient(s.cl, code)
}

// OnSubscribe notes the filters being checked (see session.pending).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	pk = h.b.limitFilters(cl, pk)
	if s := h.session(cl); s != nil {
		s.mu.Lock()
		for _, f := range pk.Filters {
			s.pending[f.Filter] = struct{}{}
		}
		s.subscribing.Add(1)
		s.mu.Unlock()
	}
	return pk
}

// OnSubscribed clears the pending filters and records denials.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s := h.session(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	clear(s.pending)
	s.subscribing.Add(-1)
	s.mu.Unlock()
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			h.denied(s, "iot:Subscribe", f.Filter)
		}
	}
}

// isPending reports whether filter is part of a SUBSCRIBE being checked.
func (s *session) isPending(filter string) bool {
	if s.subscribing.Load() == 0 {
		return false
	}
	s.mu.Lock()
	_, ok := s.pending[filter]
	s.mu.Unlock()
	return ok
}

// OnACLCheck is mochi's one authorization callback: write is a PUBLISH
// (iot:Publish); otherwise it is either a SUBSCRIBE filter (iot:Subscribe)
// or a delivery (iot:Receive), told apart by session.pending.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := h.session(cl)
	if s == nil || (!write && topic == withheldWillTopic) {
		return false
	}
	if h.expired(s) {
		// Nothing is published or delivered under an expired credential,
		// even before the expiry timer has kicked the client.
		return false
	}
	if write {
		return h.publishAllowed(s, topic)
	}
	b := s.bound.Load()
	if policy.HasWildcard(topic) || s.isPending(topic) {
		return h.reservedAllowed(s, policy.ActionSubscribe, topic) && subscribeAllowed(b, topic)
	}
	return h.reservedAllowed(s, policy.ActionReceive, topic) && b.Allowed(policy.ActionReceive, topic)
}

// publishAllowed is the iot:Publish decision for topic; refusals are
// recorded.
func (h *hook) publishAllowed(s *session, topic string) bool {
	if h.reservedAllowed(s, policy.ActionPublish, topic) && s.bound.Load().Allowed(policy.ActionPublish, topic) {
		return true
	}
	h.denied(s, "iot:Publish", topic)
	return false
}

// OnPublish checks iot:RetainPublish for retained publishes (the publish
// itself passed OnACLCheck already).
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := h.b.limitTopic(cl, pk); err != nil {
		return pk, err
	}
	if limit := h.b.cfg.MaxMessageSize; limit > 0 && !cl.Net.Inline && len(pk.Payload) > limit {
		h.b.cfg.Rejections.Inc("mqtt.maxMessageSize")
		h.b.log.Debug("mqtt publish too large", "client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload))
		return h.refusePublish(cl, pk, packets.ErrPacketTooLarge, fmt.Sprintf("publish of %d bytes over mqtt.maxMessageSize", len(pk.Payload)))
	}
	if ok, err := h.answer(cl, pk); ok {
		return pk, err
	}
	if cl.Net.Inline || !pk.FixedHeader.Retain {
		return pk, nil
	}
	s := h.session(cl)
	if s != nil && s.bound.Load().Allowed(policy.ActionRetainPublish, pk.TopicName) {
		return pk, nil
	}
	if s != nil {
		h.denied(s, "iot:RetainPublish", pk.TopicName)
	}
	return h.refusePublish(cl, pk, packets.ErrNotAuthorized, "retained publish to "+pk.TopicName+" denied")
}

// withheldWillTopic is where a will the policy no longer allows is sent
// instead of its own topic: mochi's OnWill cannot cancel a will, only
// change it, so the will is re-addressed to a topic that OnACLCheck never
// lets anyone receive and stripped of its retain flag and payload.
const withheldWillTopic = "$gatehouse/withheld-will"

// OnWill authorizes a will as it is about to be published, against the
// session's policy of that moment: wills are also checked at CONNECT, and a
// policy change while the client is connected re-binds the session, so a
// will the current policy forbids is withheld. OnWill runs on the client's
// own goroutine, the only one that may read cl.Properties.Will without
// racing mochi.
//
// A will with a Will Delay Interval is sent by the hook itself when the
// delay is over (sendWill), authorized then: mochi would authorize it here
// and send it later unchecked, so revoking iot:Publish during the delay
// would not stop it. mochi gets a withheld stub to queue instead.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	s := h.session(cl)
	if s != nil {
		s.willHandled.Store(true)
	}
	if s != nil && will.WillDelayInterval > 0 {
		// Sent when the delay is over or the session ends, whichever is
		// first (MQTT 5 §3.1.3.2.2).
		delay := min(will.WillDelayInterval, cl.Properties.Props.SessionExpiryInterval)
		h.delayWill(s, will, time.Duration(delay)*time.Second)
		return mqtt.Will{TopicName: withheldWillTopic, Flag: will.Flag, WillDelayInterval: will.WillDelayInterval}, nil
	}
	if s != nil && h.willAllowed(s.bound.Load(), will.TopicName, will.Retain) {
		h.b.log.Debug("mqtt will", "client", cl.ID, "topic", will.TopicName)
		return will, nil
	}
	if s != nil {
		h.denied(s, "iot:Publish", will.TopicName)
	}
	h.b.log.Info("mqtt will withheld by policy", "client", cl.ID, "topic", will.TopicName)
	return mqtt.Will{TopicName: withheldWillTopic, Qos: 0, Retain: false, Flag: will.Flag}, nil
}

// denied logs a refusal and records the first few per connection.
func (h *hook) denied(s *session, action, resource string) {
	h.b.metrics.deny(action)
	h.b.log.Debug("mqtt denied", "client", s.cl.ID, "principal", s.id.Principal, "action", action, "resource", resource)
	if s.denials.Add(1) <= maxDenialEvents {
		h.b.record(s.ctx(), "broker.denied", "client/"+s.cl.ID, map[string]any{"action": action, "resource": resource, "clientId": s.cl.ID})
	}
}

// capKeepAlive holds an MQTT 5 client that asks for a longer keep-alive than
// max, or for none, to max: mochi announces it as Server Keep Alive in the
// CONNACK [MQTT-3.1.2-21] and times the connection out by it. MQTT 3 has no
// way to tell the client, so its keep-alive stays as asked.
func capKeepAlive(cl *mqtt.Client, max time.Duration) {
	limit := uint16(max / time.Second)
	if limit == 0 || cl.Properties.ProtocolVersion < 5 {
		return
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > limit {
		cl.State.Keepalive = limit
		cl.State.ServerKeepalive = true
	}
}
