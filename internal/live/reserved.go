package live

import "strings"

// Reserved topics. As AWS IoT reserves $aws/, Gatehouse keeps $gatehouse/
// (the lobby, the event mirror, withheld wills) and $SYS/ (the broker's
// statistics) to the server, whatever a client's policy says.
const (
	// GatehouseTopics is Gatehouse's own topic space.
	GatehouseTopics = "$gatehouse"
	// SysTopics is the broker's statistics topic space.
	SysTopics = "$SYS"
)

// ReservedTopic reports whether topic (a name or a filter) lies in the
// reserved topic space: $gatehouse/, $SYS/, or under eventPrefix (the
// event mirror's prefix; "" for none). A shared subscription's filter is
// judged by the filter it shares. A filter whose first level is a wildcard
// is not reserved: it never matches a topic starting with $ [MQTT-4.7.1-1].
func ReservedTopic(eventPrefix, topic string) bool {
	topic = Unshared(topic)
	first, _, _ := strings.Cut(topic, "/")
	if first == GatehouseTopics || strings.EqualFold(first, SysTopics) {
		return true
	}
	return EventTopic(eventPrefix, topic)
}

// EventTopic reports whether a topic or filter lies under the event
// mirror's prefix.
func EventTopic(eventPrefix, topic string) bool {
	if eventPrefix == "" {
		return false
	}
	topic = Unshared(topic)
	// (Not HasPrefix(topic, eventPrefix+"/"): every delivery the Mosquitto
	// plugin checks would build that string.)
	return strings.HasPrefix(topic, eventPrefix) && (len(topic) == len(eventPrefix) || topic[len(eventPrefix)] == '/')
}

// Unshared is the filter a shared subscription ($share/<group>/<filter>)
// shares, or topic itself.
func Unshared(topic string) string {
	if len(topic) < 7 || !strings.EqualFold(topic[:7], "$share/") {
		return topic
	}
	if _, sub, ok := strings.Cut(topic[7:], "/"); ok {
		return sub
	}
	return topic
}
