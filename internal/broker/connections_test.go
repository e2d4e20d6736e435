package broker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func TestConnectionsListsLiveClientsOfAThing(t *testing.T) {
	f := newFixture(t, time.Hour)
	if got := f.broker.Connections("s-1"); got == nil || len(got) != 0 {
		t.Fatalf("Connections before any client = %#v, want an empty list", got)
	}
	plain := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	persistent := f.connectPersistent(t, "s-2", []byte(f.token("s-2", "mqtt")))

	clients := func(thing string) []string {
		var ids []string
		for _, c := range f.broker.Connections(thing) {
			ids = append(ids, c.ClientID+"@"+c.Listener+"/"+c.Username)
			if c.ConnectedAt.IsZero() || c.RemoteAddr == "" || c.ProtocolVersion != 5 {
				t.Errorf("connection %+v lacks its details", c)
			}
		}
		return ids
	}
	tests := []struct {
		thing string
		want  []string
	}{
		{"s-1", []string{"s-1@mqtt/s-1"}},
		{"s-2", []string{"s-2@mqtt/s-2"}},
		{"s-3", nil},
		{"", nil},
	}
	for _, tc := range tests {
		if got := clients(tc.thing); !slices.Equal(got, tc.want) {
			t.Errorf("Connections(%q) = %v, want %v", tc.thing, got, tc.want)
		}
	}

	var all []string
	for _, c := range f.broker.AllConnections() {
		all = append(all, c.Thing+":"+c.ClientID)
	}
	if !slices.Equal(all, []string{"s-1:s-1", "s-2:s-2"}) && !slices.Equal(all, []string{"s-2:s-2", "s-1:s-1"}) {
		t.Errorf("AllConnections = %v, want s-1 and s-2 with their things", all)
	}

	// A persistent session whose client left is not a live connection.
	_ = persistent.Disconnect(&paho.Disconnect{})
	_ = plain.Disconnect(&paho.Disconnect{})
	testenv.Eventually(t, 10*time.Second, "no live connection of s-1 or s-2 after disconnecting", func() bool {
		return len(f.broker.Connections("s-1"))+len(f.broker.Connections("s-2")) == 0
	})
}
