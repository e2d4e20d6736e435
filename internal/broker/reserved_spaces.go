package broker

// A ReservedSpace reports whether a topic name or filter (a shared
// subscription's already unshared) lies in a topic space a feature
// reserves to the server beyond $gatehouse/ and $SYS/: nothing is
// published there by a client, and a client subscribes and receives there
// only where a ReservedGrant opens it. A filter it does not claim (such as
// #) still delivers nothing from the space: every delivery is checked by
// its topic name.
type ReservedSpace func(topic string) bool

// featureTopic reports whether topic lies in a space of
// Config.ReservedTopics.
func (h *hook) featureTopic(topic string) bool {
	for _, r := range h.b.cfg.ReservedTopics {
		if r(topic) {
			return true
		}
	}
	return false
}
