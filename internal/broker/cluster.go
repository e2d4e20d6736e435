package broker

import (
	"bytes"
	"context"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/cluster"
)

// Cluster carries messages between replicas; *cluster.Node is one. With
// Config.Cluster nil (one replica) the broker does none of this: no hook
// is installed and no publish pays for it.
type Cluster interface {
	// Publish sends a message this replica accepted to the others.
	Publish(ctx context.Context, m cluster.Message) error
	// AnnounceClient tells the others that clientID connected here, and
	// returns the announcement's stamp.
	AnnounceClient(clientID string) (cluster.Stamp, error)
	// SaveSession, LoadSession and DeleteSession keep persistent
	// sessions' subscriptions where every replica finds them
	// (cluster.Node's, with their revisions).
	SaveSession(ctx context.Context, clientID string, s cluster.Session, rev uint64) (uint64, error)
	LoadSession(ctx context.Context, clientID string) (cluster.Session, uint64, bool, error)
	DeleteSession(ctx context.Context, clientID string, rev uint64) error
}

// clusterClientID is the inline client that injects the other replicas'
// messages: the cluster hook knows them by it and never forwards them.
const clusterClientID = "gatehouse-cluster"

// clusterHook forwards what this replica accepted to the others and
// announces connected client ids. It is a second mochi hook, installed
// after the gatehouse hook only when a cluster is configured; it decides
// nothing (it provides no authentication or ACL callback).
type clusterHook struct {
	mqtt.HookBase
	b *Broker
	c Cluster
	// inject is the inline client that publishes remote messages.
	inject *mqtt.Client
	// takenOver holds the clients disconnected because their client id
	// connected on another replica, until their connection ends.
	takenOver sync.Map // *mqtt.Client -> struct{}
	// revs holds, per connection of a persistent session, what it wrote
	// to the cluster (sessions.go).
	revs sync.Map // *mqtt.Client -> *stored
	// announced holds the stamp of each connection's announcement, while
	// its session lives here (an offline one too).
	announced sync.Map // *mqtt.Client -> cluster.Stamp
}

func (h *clusterHook) ID() string { return "gatehouse-cluster" }

func (h *clusterHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnPublished, mqtt.OnWillSent, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnClientExpired}, []byte{b})
}

// OnPublish forwards a client's QoS 1 or 2 message before mochi answers
// it: this hook runs after the gatehouse hook's OnPublish (iot:Publish was
// checked before either, iot:RetainPublish and the limits by the gatehouse
// hook), and the PUBACK (PUBREC) goes out only once the stream has the
// message. QoS 0 and the server's publishes are forwarded in OnPublished.
func (h *clusterHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline && pk.FixedHeader.Qos > 0 {
		h.forward(pk)
	}
	return pk, nil
}

// OnPublished forwards a message mochi delivered here (after iot:Publish,
// iot:RetainPublish and the limits passed): QoS 0 from MQTT clients, HTTPS
// publishes and delayed wills (QoS 1 and 2 from clients went in
// OnPublish). Reserved topics stay local: the server's own publishes there
// (event mirror, lobby) come from the shared event log on every replica,
// and a knock is handled by the replica it reached.
func (h *clusterHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl == h.inject || (!cl.Net.Inline && pk.FixedHeader.Qos > 0) {
		return
	}
	h.forward(pk)
}

// OnWillSent forwards a will mochi published at once (delayed ones are
// published by the will client and reach OnPublished).
func (h *clusterHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.forward(pk)
}

func (h *clusterHook) forward(pk packets.Packet) {
	if pk.Ignore || h.b.hook.reservedTopic(pk.TopicName) {
		return
	}
	m := cluster.Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		Properties: clusterProperties(pk.Properties)}
	if err := h.c.Publish(context.Background(), m); err != nil {
		h.b.log.Warn("broker: forward to cluster", "err", err)
	}
}

// OnSessionEstablished stores a persistent session's subscriptions in the
// cluster, then announces the client id, so that another replica with a
// connection under it closes that one (session taken over): that replica
// can then no longer overwrite what this one stored.
func (h *clusterHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if persistent(cl) {
		h.saveSession(cl, true)
	}
	at, err := h.c.AnnounceClient(cl.ID)
	h.announced.Store(cl, at)
	if err != nil {
		h.b.log.Warn("broker: announce client to cluster", "client", cl.ID, "err", err)
	}
}

// newerHere reports whether the session of cl here is the newer of it and
// the connection another replica announced at at: announced later here, or
// not announced yet (it will be, later). The other replica then ends its
// own connection on this one's announcement.
func (h *clusterHook) newerHere(cl *mqtt.Client, at cluster.Stamp) bool {
	mine, ok := h.announced.Load(cl)
	return !ok || mine.(cluster.Stamp).After(at)
}

// forget drops what the hook keeps for a session that ended here.
func (h *clusterHook) forget(cl *mqtt.Client) {
	h.dropSession(cl)
	h.announced.Delete(cl)
}

// OnDisconnect ends the session of a client taken over on another
// replica: the client id lives there now, so a persistent session left
// here would only queue messages nobody collects (the gatehouse hook
// forgot it already, see takenOverElsewhere).
func (h *clusterHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if _, ok := h.takenOver.LoadAndDelete(cl); ok {
		// Stored by the other replica since if it keeps the session (it
		// wrote before announcing the client): then this delete does
		// nothing. If it started clean, the session ends here.
		h.forget(cl)
		if !expire {
			h.b.hook.endSession(cl)
		}
		h.b.log.Debug("mqtt session ended: client id taken over on another replica", "client", cl.ID)
		return
	}
	h.sessionDisconnected(cl, expire)
	if expire || cl.IsTakenOver() {
		h.announced.Delete(cl)
	}
}

// installCluster adds the cluster hook when a cluster is configured.
func (b *Broker) installCluster() error {
	if b.cfg.Cluster == nil {
		return nil
	}
	b.cluster = &clusterHook{b: b, c: b.cfg.Cluster, inject: b.server.NewClient(nil, "local", clusterClientID, true)}
	return b.server.AddHook(b.cluster, nil)
}

// ClusterHandler is what the cluster delivers to this broker: other
// replicas' messages (injected as the server publishes: each delivery is
// still checked for iot:Receive against the subscriber's policy), the
// cluster's retained messages as this replica starts, and client ids
// connected elsewhere.
func (b *Broker) ClusterHandler() cluster.Handler {
	return cluster.Handler{Message: b.injectRemote, Retained: b.setRetained, Connected: b.takenOverElsewhere}
}

// injectRemote publishes another replica's message to local subscribers.
func (b *Broker) injectRemote(m cluster.Message) {
	if b.cluster == nil {
		return
	}
	err := b.server.InjectPacket(b.cluster.inject, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic, Payload: m.Payload, PacketID: uint16(m.QoS), Properties: mqttProperties(m.Properties),
	})
	if err != nil {
		b.log.Warn("broker: inject cluster message", "err", err)
	}
}

// setRetained stores a retained message without delivering it.
func (b *Broker) setRetained(m cluster.Message) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: true},
		TopicName:   m.Topic, Payload: m.Payload, Origin: clusterClientID, Properties: mqttProperties(m.Properties),
		Created: b.now().Unix(),
	}
	if e := pk.Properties.MessageExpiryInterval; e > 0 {
		// Counted from when this replica learnt of it.
		pk.Expiry = pk.Created + int64(e)
	}
	b.server.Topics.RetainMessage(pk)
}

// takenOverElsewhere disconnects the local connection under clientID
// (0x8E session taken over; mochi then publishes its will, authorized by
// OnWill as on one replica), or ends the offline session held under it.
//
// Two connections announced at about the same time on two replicas each
// reach the other replica after it established its own: only the one
// with the earlier stamp ends (newerHere), so exactly one survives.
func (b *Broker) takenOverElsewhere(clientID string, at cluster.Stamp) {
	cl, ok := b.server.Clients.Get(clientID)
	if b.cluster == nil || !ok || cl.Net.Inline || b.cluster.newerHere(cl, at) {
		return
	}
	if cl.Closed() {
		// An offline session here: the client is back elsewhere, which
		// resumed the session from the cluster or started clean. Either
		// way nothing is to be queued here any more.
		b.hook.forget(cl)
		b.hook.endSession(cl)
		b.log.Debug("mqtt offline session ended: client id connected on another replica", "client", clientID)
		return
	}
	b.log.Info("mqtt client id connected on another replica", "client", clientID)
	b.cluster.takenOver.Store(cl, struct{}{})
	if s := b.hook.session(cl); s != nil {
		// As for a takeover here: its will is still authorized as this
		// session, which OnDisconnect then forgets.
		s.takenOver.Store(true)
	}
	_ = b.server.DisconnectClient(cl, packets.ErrSessionTakenOver)
}

// clusterProperties are the MQTT 5 properties of a PUBLISH that travel to
// the other replicas; nil when it has none.
func clusterProperties(p packets.Properties) *cluster.Properties {
	if !p.PayloadFormatFlag && p.MessageExpiryInterval == 0 && p.ContentType == "" && p.ResponseTopic == "" &&
		len(p.CorrelationData) == 0 && len(p.User) == 0 {
		return nil
	}
	cp := &cluster.Properties{MessageExpiry: p.MessageExpiryInterval, ContentType: p.ContentType,
		ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData}
	if p.PayloadFormatFlag {
		f := p.PayloadFormat
		cp.PayloadFormat = &f
	}
	for _, u := range p.User {
		cp.User = append(cp.User, [2]string{u.Key, u.Val})
	}
	return cp
}

// mqttProperties turns what clusterProperties kept back into PUBLISH
// properties.
func mqttProperties(cp *cluster.Properties) packets.Properties {
	var p packets.Properties
	if cp == nil {
		return p
	}
	p.MessageExpiryInterval, p.ContentType, p.ResponseTopic, p.CorrelationData = cp.MessageExpiry, cp.ContentType, cp.ResponseTopic, cp.CorrelationData
	if cp.PayloadFormat != nil {
		p.PayloadFormat, p.PayloadFormatFlag = *cp.PayloadFormat, true
	}
	for _, u := range cp.User {
		p.User = append(p.User, packets.UserProperty{Key: u[0], Val: u[1]})
	}
	return p
}
