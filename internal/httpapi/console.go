package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
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
	// Thing is the thing the connection acts for, if any.
	Thing           string    `json:"thing,omitempty"`
	ClientID        string    `json:"clientId"`
	Username        string    `json:"username"`
	RemoteAddr      string    `json:"remoteAddr"`
	Listener        string    `json:"listener"`
	ProtocolVersion int       `json:"protocolVersion"`
	ConnectedAt     time.Time `json:"connectedAt"`
	// Replica names the replica the connection is on (cluster.nats only).
	Replica string `json:"replica,omitempty"`
}

// AllThings asks Connections for every live connection, of any thing or
// none ("*" is no thing's name).
const AllThings = "*"

// Connections lists the live MQTT connections acting for a thing (every
// one for AllThings): this replica's, and with cluster.nats every
// replica's.
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

// maxConnectionsListed bounds GET /api/v1/connections.
const maxConnectionsListed = 1000

// listConnections is GET /api/v1/connections: every live MQTT connection
// (of every replica with cluster.nats), newest first, those whose thing,
// client id, username or address contain ?search= (case-insensitive), at
// most ?limit= (default 100, up to 1000); total counts all that match.
func (a *API) listConnections(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxConnectionsListed {
			return errorf(http.StatusBadRequest, "limit %q: want 1 to %d", s, maxConnectionsListed)
		}
		limit = n
	}
	search := strings.ToLower(strings.TrimSpace(q.Get("search")))
	items := []Connection{}
	all := a.connections.Connections(AllThings)
	for i := len(all) - 1; i >= 0; i-- {
		c := all[i]
		if search != "" && !strings.Contains(strings.ToLower(c.Thing+"\x00"+c.ClientID+"\x00"+c.Username+"\x00"+c.RemoteAddr), search) {
			continue
		}
		items = append(items, c)
	}
	total := len(items)
	if len(items) > limit {
		items = items[:limit]
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items, "total": total})
}

// overviewView is GET /api/v1/overview: the counts the console's overview
// shows beside its charts. A part this server does not run is left out.
type overviewView struct {
	Things       int64 `json:"things"`
	Connected    *int  `json:"connected,omitempty"`
	LobbyWaiting *int  `json:"lobbyWaiting,omitempty"`
	// TokensIssuedLastHour and DenialsLastHour are what the metrics
	// sampler counted over the hour it holds.
	TokensIssuedLastHour *float64 `json:"tokensIssuedLastHour,omitempty"`
	DenialsLastHour      *float64 `json:"denialsLastHour,omitempty"`
}

// maxLobbyWaitingCounted bounds the lobby devices counted as waiting.
const maxLobbyWaitingCounted = 1000

func (a *API) overview(w http.ResponseWriter, r *http.Request) error {
	var out overviewView
	n, err := a.reg.Store().CountThings(r.Context())
	if err != nil {
		return err
	}
	out.Things = n
	if a.connections != nil {
		c := len(a.connections.Connections(AllThings))
		out.Connected = &c
	}
	if a.lobby != nil {
		waiting := 0
		for _, st := range []string{store.LobbyKnocking, store.LobbyInLobby} {
			ds, err := a.lobby.List(r.Context(), store.LobbyFilter{State: st, Page: store.Page{Limit: maxLobbyWaitingCounted}})
			if err != nil {
				return err
			}
			waiting += len(ds)
		}
		out.LobbyWaiting = &waiting
	}
	if a.series != nil {
		totals := a.series.Series().Totals
		tokens, denials := totals["tokensIssued"], totals["denials"]
		out.TokensIssuedLastHour, out.DenialsLastHour = &tokens, &denials
	}
	return writeJSON(w, http.StatusOK, out)
}
