package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/cluster"
)

// Persistent sessions across replicas. A session with clean start false
// (MQTT 3.1.1) or a session expiry interval (MQTT 5) keeps its
// subscriptions in the cluster (Cluster.SaveSession) whenever they change
// and when its client connects or disconnects. A client that reconnects
// to another replica - its replica was killed, or a load balancer moved
// it - resumes them there: the session is restored just before mochi
// looks for one to resume (OnSessionEstablish), as an offline client
// holding those subscriptions, which mochi then hands to the connection
// (session present), and the gatehouse hook re-checks each against the
// new connection's policy (recheckSubscriptions). Messages queued for the
// client while it was away, and its in-flight messages, are not kept
// across replicas: they stay on the replica that held the session.
//
// Each connection remembers the revision it last wrote; every later write
// and the final delete are conditional on it, so a replica that lost the
// client to another (takeover) cannot overwrite or delete what the other
// stored. Cluster writes take a round trip to the JetStream leader and
// happen on the client's own goroutine (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
// DISCONNECT of persistent sessions only), bounded by sessionTimeout (sessionLoadTimeout for the read at CONNECT).

// sessionTimeout bounds one read or write of a session in the cluster: a
// cluster without a JetStream leader delays a persistent session's
// CONNECT by at most this, and then it goes on without.
const sessionTimeout = 2 * time.Second

// sessionLoadTimeout bounds reading a session at CONNECT, longer than a
// write: after a server of the cluster is lost, the bucket answers again
// once a new leader is elected (a few seconds), and a client reconnecting
// meanwhile would otherwise lose its session's subscriptions.
const sessionLoadTimeout = 8 * time.Second

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// OnSessionEstablish restores a persistent session the cluster knows and
// this replica does not, for mochi to resume.
func (h *clusterHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) || pk.Connect.Clean {
		return
	}
	if _, ok := h.b.server.Clients.Get(cl.ID); ok {
		return // a session here: mochi resumes it
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionLoadTimeout)
	defer cancel()
	s, _, ok, err := h.c.LoadSession(ctx, cl.ID)
	if err != nil {
		// Not known whether the cluster holds a session: this connection
		// starts without one and stores nothing, so that what is stored
		// stays for the client's next connection.
		h.revs.Store(cl, &stored{dropped: true})
		h.clusterWarn("broker: load session from cluster", cl, err)
		return
	}
	if !ok {
		return
	}
	held := h.b.server.NewClient(nil, cl.Net.Listener, cl.ID, false)
	held.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
	held.Properties.Props.SessionExpiryInterval = s.Expiry
	held.Stop(packets.ErrSessionTakenOver) // offline, as a session left by its client
	for _, sub := range s.Subscriptions {
		held.State.Subscriptions.Add(sub.Filter, packets.Subscription{Filter: sub.Filter, Qos: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier})
	}
	h.b.server.Clients.Add(held)
	h.b.log.Info("mqtt session resumed from the cluster", "client", cl.ID, "from", s.Replica, "subscriptions", len(s.Subscriptions))
}

// OnSubscribed stores a persistent session's new subscriptions.
func (h *clusterHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if persistent(cl) {
		h.saveSession(cl, false)
	}
}

// OnUnsubscribed stores what a persistent session still subscribes to.
func (h *clusterHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.saveSession(cl, false)
	}
}

// OnClientExpired deletes an offline session whose expiry passed.
func (h *clusterHook) OnClientExpired(cl *mqtt.Client) {
	h.forget(cl)
}

// sessionDisconnected records that a persistent session's client left (the
// expiry counts from now), or deletes a session that ends with it.
func (h *clusterHook) sessionDisconnected(cl *mqtt.Client, expire bool) {
	if _, ok := h.revs.Load(cl); !ok {
		return
	}
	if expire || cl.IsTakenOver() {
		// Taken over here: the new connection writes after this if it
		// keeps the session, and this delete does nothing if it wrote
		// first; if it started clean, the session ends.
		h.dropSession(cl)
		return
	}
	h.save(cl, false, true)
}

// stored is what a connection of a persistent session wrote to the
// cluster. Its writes and its delete come from different goroutines (the
// client's, the cluster's announcements, the session expiry loop): mu
// keeps them in order, and after the delete nothing is written again.
type stored struct {
	mu      sync.Mutex
	rev     uint64
	dropped bool
}

// saveSession writes cl's session: replacing whatever the cluster holds
// when this connection establishes it (replace), else only over this
// connection's own last write.
func (h *clusterHook) saveSession(cl *mqtt.Client, replace bool) {
	h.save(cl, replace, false)
}

// save is saveSession, for a client that left when disconnected.
func (h *clusterHook) save(cl *mqtt.Client, replace, disconnected bool) {
	v, _ := h.revs.LoadOrStore(cl, &stored{})
	st := v.(*stored)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dropped || (!replace && st.rev == 0) {
		return // deleted, or never stored: another replica's now
	}
	s := cluster.Session{Expiry: cl.Properties.Props.SessionExpiryInterval}
	if cl.Properties.ProtocolVersion < 5 {
		s.Expiry = h.b.server.Options.Capabilities.MaximumSessionExpiryInterval
	}
	if disconnected {
		s.Disconnected = h.b.now().Unix()
	}
	for _, sub := range cl.State.Subscriptions.GetAll() {
		s.Subscriptions = append(s.Subscriptions, cluster.Subscription{Filter: sub.Filter, QoS: sub.Qos, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier})
	}
	rev := st.rev
	if replace {
		rev = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	rev, err := h.c.SaveSession(ctx, cl.ID, s, rev)
	switch {
	case err == nil:
		st.rev = rev
	case errors.Is(err, cluster.ErrSessionMoved):
		st.dropped = true
	default:
		h.clusterWarn("broker: save session to cluster", cl, err)
	}
}

// dropSession deletes the session this connection stored, unless another
// replica wrote it since; nothing is stored for the connection after.
func (h *clusterHook) dropSession(cl *mqtt.Client) {
	v, ok := h.revs.LoadAndDelete(cl)
	if !ok {
		return
	}
	st := v.(*stored)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dropped || st.rev == 0 {
		st.dropped = true
		return
	}
	st.dropped = true
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	if err := h.c.DeleteSession(ctx, cl.ID, st.rev); err != nil && !errors.Is(err, cluster.ErrSessionMoved) {
		h.clusterWarn("broker: delete session from cluster", cl, err)
	}
}

// clusterWarn logs a failed session read or write: a warning, but only at
// debug level while JetStream is not up yet (a cluster starting).
func (h *clusterHook) clusterWarn(msg string, cl *mqtt.Client, err error) {
	if errors.Is(err, cluster.ErrNotReady) {
		h.b.log.Debug(msg, "client", cl.ID, "err", err)
		return
	}
	h.b.log.Warn(msg, "client", cl.ID, "err", err)
}
