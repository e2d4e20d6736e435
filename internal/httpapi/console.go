package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// listOwnedThings is GET /api/v1/things for a user: the things they have a
// relationship with, filtered and paged as for everyone else.
func (a *API) listOwnedThings(w http.ResponseWriter, r *http.Request, username string, f store.ThingFilter) error {
	owned, err := a.ownedThings(r.Context(), username)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(owned))
	for name := range owned {
		if name > f.After && strings.HasPrefix(name, f.Prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	things := []store.Thing{}
	for _, name := range names {
		if len(things) == f.Limit {
			break
		}
		th, err := a.reg.Thing(r.Context(), name)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the relationship was read
		}
		if err != nil {
			return err
		}
		if f.ThingType != "" && th.ThingType != f.ThingType {
			continue
		}
		if f.AttributeName != "" && th.Attributes[f.AttributeName] != f.AttributeValue {
			continue
		}
		things = append(things, *th)
	}
	return list(w, things, f.Limit, func(t store.Thing) string { return t.Name })
}

// Connection is one live MQTT connection, as GET
// /api/v1/things/{name}/connections lists it.
type Connection struct {
	ClientID        string    `json:"clientId"`
	Username        string    `json:"username"`
	RemoteAddr      string    `json:"remoteAddr"`
	Listener        string    `json:"listener"`
	ProtocolVersion int       `json:"protocolVersion"`
	ConnectedAt     time.Time `json:"connectedAt"`
	// Replica names the replica the connection is on (cluster.nats only).
	Replica string `json:"replica,omitempty"`
}

// Connections lists the live MQTT connections acting for a thing: this
// replica's, and with cluster.nats every replica's.
type Connections interface {
	Connections(thing string) []Connection
}

// ConnectionsFunc adapts a function to Connections.
type ConnectionsFunc func(thing string) []Connection

// Connections calls f.
func (f ConnectionsFunc) Connections(thing string) []Connection { return f(thing) }

func (a *API) thingConnections(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.reg.Thing(r.Context(), name); err != nil {
		return err
	}
	items := a.connections.Connections(name)
	if items == nil {
		items = []Connection{}
	}
	return writeJSON(w, http.StatusOK, listResponse[Connection]{Items: items})
}
