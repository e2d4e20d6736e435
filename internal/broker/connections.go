package broker

import (
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Connection describes one live MQTT connection of this broker.
type Connection struct {
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
	out := []Connection{}
	if thing == "" {
		return out
	}
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
		if s.id.ThingName != thing && name != thing {
			return true
		}
		out = append(out, Connection{ClientID: cl.ID, Username: name, RemoteAddr: cl.Net.Remote, Listener: cl.Net.Listener,
			ProtocolVersion: version, ConnectedAt: s.connectedAt.UTC()})
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
