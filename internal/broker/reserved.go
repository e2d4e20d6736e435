package broker

import (
	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// Reserved topics. As AWS IoT reserves $aws/, the broker keeps $gatehouse/
// (the lobby, the event mirror, withheld wills) and $SYS/ (mochi's
// statistics) to the server, whatever a client's policy says: no client
// publishes there (PUBLISH, retained or not, will, HTTPS publish); a client
// subscribes and receives there only where a feature opened the topic to
// it (a ReservedGrant, or the event mirror), and its policy must allow that
// too. The event mirror's prefix (Config.EventTopicPrefix) is reserved as
// well, wherever it is configured.
const (
	// GatehouseTopics is Gatehouse's own topic space.
	GatehouseTopics = live.GatehouseTopics
	// SysTopics is mochi's statistics topic space.
	SysTopics = live.SysTopics
)

// A ReservedGrant opens part of the reserved topics to the sessions a
// feature defines it for: it reports whether the client authenticated as
// id with MQTT client id clientID may take action (policy.ActionPublish,
// ActionSubscribe with a topic filter, ActionReceive) on topic. Its policy
// must allow the action too. The device lobby lets a lobby session knock on
// its own knock topic and read its own assignment topic.
type ReservedGrant func(id *authn.Identity, clientID string, action policy.Action, topic string) bool

// reservedTopic reports whether topic (a name or a filter) lies in the
// reserved topic space (live.ReservedTopic); a delivery from an event
// prefix not under $ is checked as it is made.
func (h *hook) reservedTopic(topic string) bool {
	u := live.Unshared(topic)
	return live.ReservedTopic(h.b.cfg.EventTopicPrefix, topic) || h.answerer(u) != nil || h.featureTopic(u)
}

// reservedAllowed decides the reserved topics for a session, before its
// policy is asked: it reports whether s may take action on topic at all.
// Topics outside the reserved space are always allowed here.
func (h *hook) reservedAllowed(s *session, action policy.Action, topic string) bool {
	if !h.reservedTopic(topic) {
		return true
	}
	if action == policy.ActionPublish || action == policy.ActionRetainPublish {
		// Features may let a session publish to its own topic (a lobby
		// knock); nothing else is ever published there by a client.
		return h.granted(s, action, topic)
	}
	if h.eventTopic(topic) {
		return true // the event mirror: readable by whom the policy allows
	}
	return h.granted(s, action, topic)
}

// eventTopic reports whether a topic or filter lies under the event mirror.
func (h *hook) eventTopic(topic string) bool {
	return live.EventTopic(h.b.cfg.EventTopicPrefix, topic)
}

func (h *hook) granted(s *session, action policy.Action, topic string) bool {
	if s == nil || s.anonymous {
		return false
	}
	if a := h.answerer(topic); a != nil {
		return a.grant(action, live.Unshared(topic))
	}
	for _, g := range h.b.cfg.Reserved {
		if g(s.id, s.clientID, action, topic) {
			return true
		}
	}
	return false
}
