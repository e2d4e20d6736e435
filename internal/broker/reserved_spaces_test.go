package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// TestReservedSpaces: a space a feature reserves (Config.ReservedTopics)
// is the server's like $gatehouse/: a thing whose policy allows
// everything neither publishes there nor subscribes or receives there,
// except where a ReservedGrant opens it - here its own box/<client id>.
func TestReservedSpaces(t *testing.T) {
	space := func(topic string) bool { return topic == "box" || strings.HasPrefix(topic, "box/") }
	grant := func(id *authn.Identity, clientID string, action policy.Action, topic string) bool {
		return id != nil && action != policy.ActionPublish && topic == "box/"+clientID
	}
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.ReservedTopics = []broker.ReservedSpace{space}
		c.Reserved = []broker.ReservedGrant{grant}
	})
	evil := f.mustConnect("evil", "evil", []byte(f.intruder("evil")))

	for _, s := range []struct {
		filter string
		want   byte
	}{
		{"box/evil", 1},     // its own, granted
		{"box/other", 0x87}, // another's
		{"box/+", 0x87},
		{"box/#", 0x87},
		{"$share/g/box/other", 0x87},
		{"#", 1}, // allowed, but delivers nothing from box/ (below)
	} {
		if got := subscribe(t, evil, s.filter); got != s.want {
			t.Errorf("SUBSCRIBE %s = %#x, want %#x", s.filter, got, s.want)
		}
	}
	for _, topic := range []string{"box/evil", "box/other", "box"} {
		if got := publish(t, evil, topic, 1, false); got != 0x87 {
			t.Errorf("PUBLISH %s = %#x, want 0x87", topic, got)
		}
	}
	// The server publishes to another's box and then to the sentinel: the
	// # subscription receives the sentinel only.
	if err := f.broker.Publish("box/other", []byte("secret"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.broker.Publish("things/sentinel", []byte("sentinel"), false, 1); err != nil {
		t.Fatal(err)
	}
	evil.waitFor(t, "things/sentinel")
	if got := evil.messages(); len(got) != 1 || got[0].Topic != "things/sentinel" {
		t.Errorf("received %d messages, want only the sentinel", len(got))
	}
}
