package broker

import (
	"context"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// An Answerer serves a topic space in which the server answers clients'
// requests, as AWS IoT answers fleet provisioning on $aws/certificates/...:
// a client publishes a request; the server handles it and answers that
// connection alone, on a reply topic the client subscribed to (its policy
// must allow iot:Subscribe and iot:Receive there). Nothing published in the
// space reaches other clients: requests are answered, not forwarded (nor
// retained), and no client publishes anything else there (no will, no
// HTTPS publish either). Everything else is the policy's to decide.
type Answerer struct {
	// Owns reports whether a topic name or filter lies in the space.
	Owns func(topic string) bool
	// IsRequest reports whether a topic name is a request a client may
	// publish (iot:Publish permitting).
	IsRequest func(topic string) bool
	// Answer handles a request published by the session authenticated as
	// id with client id clientID; it returns the reply topic and payload,
	// or ok false for none. It runs on the client's own goroutine, so a
	// client's requests are answered one at a time and in order.
	Answer func(ctx context.Context, id *authn.Identity, clientID, topic string, payload []byte) (replyTopic string, reply []byte, ok bool)
}

// answerTimeout bounds one request's handling.
const answerTimeout = 30 * time.Second

// answerer returns the answerer whose space holds topic, or nil.
func (h *hook) answerer(topic string) *Answerer {
	topic = live.Unshared(topic)
	for i := range h.b.cfg.Answerers {
		if a := &h.b.cfg.Answerers[i]; a.Owns(topic) {
			return a
		}
	}
	return nil
}

// answeredGrant decides an answerer's space as reservedAllowed asks (see
// ReservedGrant): a client publishes requests only; subscribing and
// receiving are left to its policy.
func (a *Answerer) grant(action policy.Action, topic string) bool {
	switch action {
	case policy.ActionPublish:
		return a.IsRequest(topic)
	case policy.ActionSubscribe, policy.ActionReceive:
		return true
	}
	return false
}

// answer handles a PUBLISH in an answerer's space (OnACLCheck allowed it):
// it reports whether pk was one, and the error for OnPublish to return
// (the PUBLISH is acknowledged and goes no further).
func (h *hook) answer(cl *mqtt.Client, pk packets.Packet) (bool, error) {
	if cl.Net.Inline {
		return false, nil
	}
	a := h.answerer(pk.TopicName)
	if a == nil {
		return false, nil
	}
	s := h.session(cl)
	if s == nil || s.anonymous || !a.IsRequest(pk.TopicName) {
		return true, packets.ErrRejectPacket
	}
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	topic, reply, ok := a.Answer(ctx, s.id, s.clientID, pk.TopicName, pk.Payload)
	if ok {
		h.sendAnswer(s, topic, reply)
	}
	return true, packets.CodeSuccessIgnore
}

// sendAnswer writes an answer to the session's connection only, if it
// holds a subscription that matches topic and may receive it.
func (h *hook) sendAnswer(s *session, topic string, payload []byte) {
	cl := s.cl
	sub, ok := h.b.server.Topics.Subscribers(topic).Subscriptions[cl.ID]
	if !ok || !h.OnACLCheck(cl, topic, false) {
		h.b.log.Debug("mqtt answer not delivered: no subscription allows it", "client", cl.ID, "topic", topic)
		return
	}
	out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload, Created: h.b.now().Unix()}
	if len(sub.Identifiers) > 0 {
		for _, id := range sub.Identifiers {
			out.Properties.SubscriptionIdentifier = append(out.Properties.SubscriptionIdentifier, id)
		}
	}
	if err := cl.WritePacket(out); err != nil {
		h.b.log.Debug("mqtt answer not delivered", "client", cl.ID, "topic", topic, "err", err)
	}
}
