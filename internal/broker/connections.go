package broker

import (
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Connection describes one live MQTT connection of this broker.
type Connection struct {
	// Thing is the thing the connection acts for (authenticated as, or
	// named as MQTT username); empty for a person or an anonymous client.
	Thing           string    `json:"thing,omitempty"`
	ClientID        string    `json:"clientId"`
	Username        string    `json:"username"`
	RemoteAddr      string    `json:"remoteAddr"`
	Listener        string    `json:"listener"`
	ProtocolVersion int       `json:"protocolVersion"`
	ConnectedAt     time.Time `json:"connectedAt"`
}

// Connections lists the live connections of this broker (not of other
// replicas) that act for thing: authenticated as that thing, or presenting
// it as MQTT username. Offline persistent sessions are left out. The list
// is ordered by connection time, then client id. It only reads.
func (b *Broker) Connections(thing string) []Connection {
	if thing == "" {
		return []Connection{}
	}
	return b.connections(func(c Connection) bool { return c.Thing == thing || c.Username == thing })
}

// AllConnections lists every live connection of this broker (not of other
// replicas), ordered as Connections orders them. It only reads.
func (b *Broker) AllConnections() []Connection {
	return b.connections(func(Connection) bool { return true })
}

func (b *Broker) connections(keep func(Connection) bool) []Connection {
	out := []Connection{}
	b.hook.sessions.Range(func(k, v any) bool {
		cl, s := k.(*mqtt.Client), v.(*session)
		if s.offline.Load() || cl.Closed() {
			return true
		}
		cl.RLock()
		username := string(cl.Properties.Username)
		version := int(cl.Properties.ProtocolVersion)
		cl.RUnlock()
		// A custom-authorizer username carries the token after '?'.
		name, _, _ := strings.Cut(username, "?")
		c := Connection{Thing: s.id.ThingName, ClientID: cl.ID, Username: name, RemoteAddr: cl.Net.Remote, Listener: cl.Net.Listener,
			ProtocolVersion: version, ConnectedAt: s.connectedAt.UTC()}
		if keep(c) {
			out = append(out, c)
		}
		return true
	})
	slices.SortFunc(out, func(a, b Connection) int {
		if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
	return out
}
