package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// delayedWill is a will with a Will Delay Interval, waiting to be sent.
type delayedWill struct {
	s     *session
	will  mqtt.Will
	timer *time.Timer
}

// delayWill schedules s's will to be sent after delay (replacing an
// earlier one of the same client id).
func (h *hook) delayWill(s *session, will mqtt.Will, delay time.Duration) {
	d := &delayedWill{s: s, will: will}
	h.willsMu.Lock()
	defer h.willsMu.Unlock()
	if old := h.wills[s.clientID]; old != nil {
		old.timer.Stop()
	}
	h.wills[s.clientID] = d
	d.timer = time.AfterFunc(delay, func() { h.sendWill(d) })
	h.b.log.Debug("mqtt will delayed", "client", s.clientID, "delay", delay)
}

// cancelWill drops the delayed will of clientID, if any: a new connection
// to the session came before the delay was over.
func (h *hook) cancelWill(clientID string) {
	h.willsMu.Lock()
	defer h.willsMu.Unlock()
	if d := h.wills[clientID]; d != nil {
		d.timer.Stop()
		delete(h.wills, clientID)
	}
}

// stopWills drops every delayed will (the broker is stopping).
func (h *hook) stopWills() {
	h.willsMu.Lock()
	defer h.willsMu.Unlock()
	for id, d := range h.wills {
		d.timer.Stop()
		delete(h.wills, id)
	}
}

// sendWill publishes a delayed will whose delay is over, if the session's
// principal may still publish it now: its credential is rechecked and its
// policies resolved afresh, since the session may be gone from the
// broker's view (and so from the follower's re-binding) by now.
func (h *hook) sendWill(d *delayedWill) {
	h.willsMu.Lock()
	if h.wills[d.s.clientID] != d {
		h.willsMu.Unlock()
		return // cancelled or replaced meanwhile
	}
	delete(h.wills, d.s.clientID)
	h.willsMu.Unlock()
	if cur, ok := h.b.server.Clients.Get(d.s.clientID); ok && cur != d.s.cl && !cur.Closed() {
		return // a new connection to the session took it over
	}
	s, will := d.s, d.will
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bound, err := h.authorizeNow(ctx, s)
	if err != nil || !h.willAllowed(bound, will.TopicName, will.Retain) {
		h.denied(s, "iot:Publish", will.TopicName)
		h.b.log.Info("mqtt delayed will withheld", "client", s.clientID, "topic", will.TopicName, "err", err)
		return
	}
	h.publishWill(s, will, "mqtt delayed will")
}

// publishWill publishes s's will, authorized already, through the will
// client (so that it also reaches the cluster as the server's publish).
func (h *hook) publishWill(s *session, will mqtt.Will, what string) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: will.Qos, Retain: will.Retain},
		TopicName:   will.TopicName,
		Payload:     will.Payload,
		Properties:  packets.Properties{User: will.User},
		// mochi refuses a QoS 1/2 PUBLISH without a packet id, also an
		// injected one (whose id it never uses), as its Server.Publish does.
		PacketID: uint16(will.Qos),
	}
	if err := h.b.server.InjectPacket(h.willClient, pk); err != nil {
		h.b.log.Warn("broker: send will", "client", s.clientID, "err", err)
		return
	}
	h.b.log.Debug(what, "client", s.clientID, "topic", will.TopicName)
}

// missedWill publishes the will mochi (v2.7.9) dropped. Its read loop
// ends without an error, and clears the will as after a normal
// DISCONNECT, when it finds the client stopped before reading the next
// packet: a takeover, a kick or another server-side disconnect that came
// while the connection was not yet reading or was handling a packet
// (TestWillOnTakeoverWhileBusy). Only the client's normal DISCONNECT
// discards a will [MQTT-3.1.2-10]; one closed by the server is sent
// [MQTT-3.1.2-8], authorized, delayed or withheld by OnWill as mochi's
// own would be. A broker shutting down sends none, as it cannot deliver
// them. Runs in OnDisconnect, on the client's goroutine.
func (h *hook) missedWill(cl *mqtt.Client, s *session) {
	if s.will == nil || s.willHandled.Load() {
		return
	}
	if cause := cl.StopCause(); errors.Is(cause, packets.CodeDisconnect) || errors.Is(cause, packets.ErrServerShuttingDown) {
		return
	}
	will, _ := h.OnWill(cl, *s.will)
	if will.TopicName == withheldWillTopic {
		return // withheld by policy, or delayed (sendWill)
	}
	h.publishWill(s, will, "mqtt will")
}

// authorizeNow is what s may do at this moment: its credential rechecked
// and its policies resolved and bound afresh.
func (h *hook) authorizeNow(ctx context.Context, s *session) (*policy.Bound, error) {
	if s.anonymous {
		return s.bound.Load(), nil
	}
	if h.isRevoked(s.id.CredentialID) {
		return nil, fmt.Errorf("broker: credential of %s revoked", s.clientID)
	}
	if err := h.b.cfg.Authn.Recheck(ctx, s.id); err != nil {
		return nil, fmt.Errorf("broker: recheck %s: %w", s.clientID, err)
	}
	fresh := &session{id: s.id, clientID: s.clientID, sourceIP: s.sourceIP}
	if err := h.bind(ctx, fresh); err != nil {
		return nil, fmt.Errorf("broker: bind %s: %w", s.clientID, err)
	}
	return fresh.bound.Load(), nil
}

// endSession ends mochi's (offline) session of cl: its subscriptions and
// queued messages go, so the next connection with its client id starts
// without a session present.
func (h *hook) endSession(cl *mqtt.Client) {
	cur, ok := h.b.server.Clients.Get(cl.ID)
	if !ok || cur != cl || !cl.Closed() {
		return // taken over or back meanwhile
	}
	h.b.server.UnsubscribeClient(cl)
	cl.ClearInflights()
	h.b.server.Clients.Delete(cl.ID)
	if h.b.cluster != nil {
		h.b.cluster.forget(cl) // nor does another replica resume it
	}
}
