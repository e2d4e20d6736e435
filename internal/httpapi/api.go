package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Config holds the API's dependencies.
type Config struct {
	Registry *registry.Service
	Events   *events.Log
	// Lobby is the device lobby; nil leaves its routes out.
	Lobby *lobby.Service
	// OAuth manages things' client credentials; nil leaves those routes out.
	OAuth  Credentials
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxImportBytes bounds a registry import body, which may be a whole
	// export (default 64 MiB, never less than MaxBodyBytes).
	MaxImportBytes int64
	// Certs is the certificate service; nil leaves its routes out.
	Certs *certs.Service
	// FleetProv keeps provisioning templates; nil leaves their routes out.
	FleetProv *fleetprov.Service
	// Sessions authenticates the web console's session cookie as an
	// alternative to a bearer token; nil accepts bearer tokens only.
	Sessions Sessions
	// Connections lists this replica's live MQTT connections of a thing;
	// nil leaves GET /api/v1/things/{name}/connections out.
	Connections Connections
	// Series holds the sampled metrics of GET /api/v1/metrics/series; nil
	// leaves the route out.
	Series *Sampler
	// StreamHeartbeat is how often an idle event stream sends a comment
	// (default 15s).
	StreamHeartbeat time.Duration
	// AuthFailures limits failed authentications (unknown or missing API
	// token, stale session) per client address; over it every request from
	// the address is answered 429 until the bucket refills. Nil: no limit.
	AuthFailures AuthFailureLimiter
	// AWSKeys manages the access keys of the AWS-IoT-compatible API
	// (/api/v1/aws-keys, administrators only); nil leaves those routes out.
	AWSKeys AWSKeys
}

// AuthFailureLimiter counts failed authentications per key
// (*ratelimit.Limiter): Check before authenticating, Charge on failure.
type AuthFailureLimiter interface {
	Check(key string) (bool, time.Duration)
	Charge(key string)
}

// API serves /api/v1.
type API struct {
	reg     *registry.Service
	events  *events.Log
	log     *slog.Logger
	maxBody int64
	// maxImport bounds registry import bodies.
	maxImport int64
	creds     Credentials
	lobby     *lobby.Service
	mux       *http.ServeMux
	certs     *certs.Service
	fleetprov *fleetprov.Service

	sessions     Sessions
	connections  Connections
	series       *Sampler
	authFailures AuthFailureLimiter
	heartbeat    time.Duration
	// streams ends event streams when the server shuts down.
	streams context.Context
	stop    context.CancelFunc
}

// New returns the API with its routes registered.
func New(c Config) *API {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxImportBytes == 0 {
		c.MaxImportBytes = 64 << 20
	}
	c.MaxImportBytes = max(c.MaxImportBytes, c.MaxBodyBytes)
	a := &API{reg: c.Registry, events: c.Events, log: c.Logger, maxBody: c.MaxBodyBytes, maxImport: c.MaxImportBytes, creds: c.OAuth, lobby: c.Lobby, mux: http.NewServeMux()}
	a.certs, a.fleetprov = c.Certs, c.FleetProv
	a.sessions, a.connections, a.series, a.heartbeat = c.Sessions, c.Connections, c.Series, c.StreamHeartbeat
	a.authFailures = c.AuthFailures
	if a.heartbeat <= 0 {
		a.heartbeat = 15 * time.Second
	}
	a.streams, a.stop = context.WithCancel(context.Background())
	a.routes()
	if c.AWSKeys != nil {
		a.awsKeyRoutes(c.AWSKeys)
	}
	return a
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Role requirements of a route.
const (
	read  = registry.RoleOperator // operators and admins may read
	write = registry.RoleAdmin
)

// handle registers pattern, authenticating the caller and checking role.
func (a *API) handle(pattern, role string, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		err := retryRead(w, r, func(w http.ResponseWriter) error {
			ctx, err := a.authenticate(r, role)
			if err == nil {
				err = h(w, r.WithContext(ctx))
			}
			return err
		})
		if err != nil {
			writeError(w, r, a.log, err)
		}
	})
}

// retryRead runs serve and, when a GET or HEAD failed on a lost database
// connection before writing anything, runs it once more: reads are safe
// to repeat, and the store's pool replaces the connections a failover
// broke. Writes are retried (once) by the store only where that is safe,
// inside transactions that did not reach their commit.
func retryRead(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter) error) error {
	if !safeMethod(r.Method) {
		return serve(w)
	}
	tw := &writeTracker{ResponseWriter: w}
	err := serve(tw)
	if err != nil && !tw.wrote && r.Context().Err() == nil && store.IsUnavailable(err) {
		err = serve(w)
	}
	return err
}

// writeTracker notes whether a handler wrote anything.
type writeTracker struct {
	http.ResponseWriter
	wrote bool
}

func (w *writeTracker) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *writeTracker) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *writeTracker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (a *API) routes() {
	a.handle("GET /api/v1/things", ownerRead, a.listThings)
	a.handle("POST /api/v1/things", write, a.createThing)
	a.handle("GET /api/v1/things/{name}", ownerRead, a.getThing)
	a.handle("PATCH /api/v1/things/{name}", write, a.updateThing)
	a.handle("DELETE /api/v1/things/{name}", write, a.deleteThing)

	a.handle("GET /api/v1/thing-types", read, a.listThingTypes)
	a.handle("POST /api/v1/thing-types", write, a.createThingType)
	a.handle("GET /api/v1/thing-types/{name}", read, a.getThingType)
	a.handle("PATCH /api/v1/thing-types/{name}", write, a.updateThingType)
	a.handle("DELETE /api/v1/thing-types/{name}", write, a.deleteThingType)

	a.handle("GET /api/v1/users", read, a.listUsers)
	a.handle("POST /api/v1/users", write, a.createUser)
	a.handle("GET /api/v1/users/{name}", read, a.getUser)
	a.handle("PATCH /api/v1/users/{name}", write, a.updateUser)
	a.handle("DELETE /api/v1/users/{name}", write, a.deleteUser)

	a.handle("GET /api/v1/groups", read, a.listGroups)
	a.handle("POST /api/v1/groups", write, a.createGroup)
	a.handle("GET /api/v1/groups/{name}", read, a.getGroup)
	a.handle("PATCH /api/v1/groups/{name}", write, a.updateGroup)
	a.handle("DELETE /api/v1/groups/{name}", write, a.deleteGroup)
	a.handle("GET /api/v1/groups/{name}/members", read, a.listMembers)
	a.handle("POST /api/v1/groups/{name}/members", write, a.addMember)
	a.handle("DELETE /api/v1/groups/{name}/members/{kind}/{member}", write, a.removeMember)

	a.handle("GET /api/v1/relationships", ownerRead, a.listRelationships)
	a.handle("POST /api/v1/relationships", write, a.addRelationship)
	a.handle("DELETE /api/v1/relationships", write, a.removeRelationship)

	a.handle("GET /api/v1/events", read, a.listEvents)
	a.handle("GET /api/v1/events/stream", read, a.streamEvents)
	a.handle("DELETE /api/v1/events", write, a.pruneEvents)
	if a.connections != nil {
		a.handle("GET /api/v1/things/{name}/connections", read, a.thingConnections)
		a.handle("GET /api/v1/connections", read, a.listConnections)
	}
	if a.series != nil {
		a.handle("GET /api/v1/metrics/series", read, a.metricsSeries)
	}
	a.handle("GET /api/v1/overview", read, a.overview)

	a.handle("GET /api/v1/api-tokens", write, a.listAPITokens)
	a.handle("POST /api/v1/api-tokens", write, a.createAPIToken)
	a.handle("DELETE /api/v1/api-tokens/{id}", write, a.revokeAPIToken)
	a.accessRoutes()
	a.sessionRoutes()
	a.transferRoutes()

	a.policyRoutes()
	a.authorizerRoutes()
	a.certRoutes()
	a.credentialRoutes()
	a.lobbyRoutes()
	a.provisioningRoutes()
	a.appRoutes()

	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, a.log, errorf(http.StatusNotFound, "no API route %s %s", r.Method, r.URL.Path))
	})
}

// ---- things ----

func (a *API) listThings(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.ThingFilter{Page: store.Page{After: after, Limit: limit}, ThingType: q.Get("thingType"), Prefix: q.Get("prefix")}
	if attr := q.Get("attribute"); attr != "" {
		name, value, ok := strings.Cut(attr, "=")
		if !ok {
			return errorf(http.StatusBadRequest, "attribute filter %q: want name=value", attr)
		}
		f.AttributeName, f.AttributeValue = name, value
	}
	if p := principalFrom(r.Context()); p.scoped {
		return a.listOwnedThings(w, r, p.username, f)
	}
	things, err := a.reg.Things(r.Context(), f)
	if err != nil {
		return err
	}
	return list(w, things, limit, func(t store.Thing) string { return t.Name })
}

func (a *API) createThing(w http.ResponseWriter, r *http.Request) error {
	var in registry.NewThing
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	th, err := a.reg.CreateThing(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/things/"+th.Name)
	return writeVersioned(w, http.StatusCreated, th.Version, th)
}

func (a *API) getThing(w http.ResponseWriter, r *http.Request) error {
	if p := principalFrom(r.Context()); p.scoped {
		owned, err := a.ownedThings(r.Context(), p.username)
		if err != nil {
			return err
		}
		if !owned[r.PathValue("name")] {
			return errNotYours(r.PathValue("name"))
		}
	}
	th, err := a.reg.Thing(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, th.Version, th)
}

func (a *API) updateThing(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var p registry.ThingPatch
	if err := decode(w, r, a.maxBody, &p); err != nil {
		return err
	}
	th, err := a.reg.UpdateThing(r.Context(), r.PathValue("name"), v, p)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, th.Version, th)
}

func (a *API) deleteThing(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteThing(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- thing types ----

func (a *API) listThingTypes(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	tts, err := a.reg.ThingTypes(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	return list(w, tts, limit, func(t store.ThingType) string { return t.Name })
}

func (a *API) createThingType(w http.ResponseWriter, r *http.Request) error {
	var in registry.ThingTypeSpec
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	tt, err := a.reg.CreateThingType(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/thing-types/"+tt.Name)
	return writeVersioned(w, http.StatusCreated, tt.Version, tt)
}

func (a *API) getThingType(w http.ResponseWriter, r *http.Request) error {
	tt, err := a.reg.ThingType(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, tt.Version, tt)
}

func (a *API) updateThingType(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var p registry.ThingTypePatch
	if err := decode(w, r, a.maxBody, &p); err != nil {
		return err
	}
	tt, err := a.reg.UpdateThingType(r.Context(), r.PathValue("name"), v, p)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, tt.Version, tt)
}

func (a *API) deleteThingType(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteThingType(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- users ----

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	users, err := a.reg.Users(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	return list(w, viewAll(users, viewUser), limit, func(u userView) string { return u.Username })
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	var in registry.NewUser
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	u, err := a.reg.CreateUser(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+u.Username)
	return writeVersioned(w, http.StatusCreated, u.Version, viewUser(u))
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.reg.User(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, u.Version, viewUser(u))
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var p registry.UserPatch
	if err := decode(w, r, a.maxBody, &p); err != nil {
		return err
	}
	u, err := a.reg.UpdateUser(r.Context(), r.PathValue("name"), v, p)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, u.Version, viewUser(u))
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteUser(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- groups ----

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	gs, err := a.reg.Groups(r.Context(), store.Page{After: after, Limit: limit})
	if err != nil {
		return err
	}
	return list(w, gs, limit, func(g store.Group) string { return g.Name })
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	var in registry.NewGroup
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	g, err := a.reg.CreateGroup(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/groups/"+g.Name)
	return writeVersioned(w, http.StatusCreated, g.Version, g)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.reg.Group(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, g.Version, g)
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var p struct {
		Description string `json:"description"`
	}
	if err := decode(w, r, a.maxBody, &p); err != nil {
		return err
	}
	g, err := a.reg.UpdateGroup(r.Context(), r.PathValue("name"), v, p.Description)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, g.Version, g)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteGroup(r.Context(), r.PathValue("name"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listMembers(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.reg.GroupMembers(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return listPage(w, r, ms, func(m store.GroupMember) string { return m.Kind + " " + m.Member })
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Kind   string `json:"kind"`
		Member string `json:"member"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	m, err := a.reg.AddGroupMember(r.Context(), r.PathValue("name"), in.Kind, in.Member)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, m)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := a.reg.RemoveGroupMember(r.Context(), r.PathValue("name"), r.PathValue("kind"), r.PathValue("member")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- relationships ----

func relationshipQuery(r *http.Request) store.RelationshipFilter {
	q := r.URL.Query()
	return store.RelationshipFilter{SubjectKind: q.Get("subjectKind"), Subject: q.Get("subject"), Relation: q.Get("relation"), ObjectKind: q.Get("objectKind"), Object: q.Get("object")}
}

func (a *API) listRelationships(w http.ResponseWriter, r *http.Request) error {
	rels, err := a.reg.Relationships(r.Context(), relationshipQuery(r))
	if err != nil {
		return err
	}
	if p := principalFrom(r.Context()); p.scoped {
		owned, err := a.ownedThings(r.Context(), p.username)
		if err != nil {
			return err
		}
		rels = slices.DeleteFunc(rels, func(rel store.Relationship) bool {
			return rel.ObjectKind != store.KindThing || !owned[rel.Object]
		})
	}
	return listPage(w, r, rels, func(rel store.Relationship) string {
		return strings.Join([]string{rel.SubjectKind, rel.Subject, rel.Relation, rel.ObjectKind, rel.Object}, " ")
	})
}

type relationshipIn struct {
	SubjectKind string `json:"subjectKind"`
	Subject     string `json:"subject"`
	Relation    string `json:"relation"`
	ObjectKind  string `json:"objectKind"`
	Object      string `json:"object"`
	// ExpiresAt, when set, ends the relationship at that time.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

func (in relationshipIn) record() store.Relationship {
	return store.Relationship{SubjectKind: in.SubjectKind, Subject: in.Subject, Relation: in.Relation, ObjectKind: in.ObjectKind, Object: in.Object, ExpiresAt: in.ExpiresAt}
}

func (a *API) addRelationship(w http.ResponseWriter, r *http.Request) error {
	var in relationshipIn
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	rel, err := a.reg.AddRelationship(r.Context(), in.record())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, rel)
}

func (a *API) removeRelationship(w http.ResponseWriter, r *http.Request) error {
	f := relationshipQuery(r)
	rel := store.Relationship{SubjectKind: f.SubjectKind, Subject: f.Subject, Relation: f.Relation, ObjectKind: f.ObjectKind, Object: f.Object}
	if rel.SubjectKind == "" || rel.Subject == "" || rel.Relation == "" || rel.ObjectKind == "" || rel.Object == "" {
		return errorf(http.StatusBadRequest, "name the relationship with subjectKind, subject, relation, objectKind and object query parameters")
	}
	if err := a.reg.RemoveRelationship(r.Context(), rel); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- events ----

// maxWait bounds a long poll on /api/v1/events?wait=.
const maxWait = 60 * time.Second

// listEvents is GET /api/v1/events: oldest first after ?after=ID (the
// cursor a follower keeps, with ?wait= to long-poll), or with ?order=newest
// the latest first, paging backwards with ?before= set to the answer's
// next; ?type= (exact, or a prefix ending in "."), ?subject=, ?actor= and
// ?since= / ?until= (RFC 3339) narrow it.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.EventFilter{Type: q.Get("type"), Subject: q.Get("subject"), Actor: q.Get("actor")}
	for _, p := range []struct {
		name string
		id   *int64
	}{{"after", &f.AfterID}, {"before", &f.BeforeID}} {
		if s := q.Get(p.name); s != "" {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id < 0 {
				return errorf(http.StatusBadRequest, "%s %q: want an event id", p.name, s)
			}
			*p.id = id
		}
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return errorf(http.StatusBadRequest, "%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name, s)
			}
			*p.t = t
		}
	}
	switch o := q.Get("order"); o {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		return errorf(http.StatusBadRequest, "order %q: want oldest or newest", o)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "limit %q: want 1 to 1000", s)
		}
		f.Limit = n
	}
	var (
		evs []store.Event
		err error
	)
	if s := q.Get("wait"); s != "" {
		if f.Newest || f.BeforeID > 0 {
			return errorf(http.StatusBadRequest, "wait waits for new events: it goes with neither order=newest nor before")
		}
		d, perr := time.ParseDuration(s)
		if perr != nil || d < 0 || d > maxWait {
			return errorf(http.StatusBadRequest, "wait %q: want a duration up to %s", s, maxWait)
		}
		evs, err = a.events.Wait(r.Context(), f, d)
	} else {
		evs, err = a.events.List(r.Context(), f)
	}
	if err != nil {
		return err
	}
	resp := listResponse[store.Event]{Items: evs}
	if len(evs) > 0 {
		resp.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// pruneEvents is DELETE /api/v1/events?before=RFC3339: it deletes the
// events stamped before then (recording one events.pruned event).
func (a *API) pruneEvents(w http.ResponseWriter, r *http.Request) error {
	s := r.URL.Query().Get("before")
	before, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return errorf(http.StatusBadRequest, "before %q: want an RFC 3339 time", s)
	}
	n, err := a.events.Prune(r.Context(), before)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": n, "before": before.UTC()})
}

// ---- API tokens ----

func (a *API) listAPITokens(w http.ResponseWriter, r *http.Request) error {
	toks, err := a.reg.APITokens(r.Context())
	if err != nil {
		return err
	}
	return listPage(w, r, viewAll(toks, viewAPIToken), func(t apiTokenView) string { return t.ID })
}

func (a *API) createAPIToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name     string   `json:"name"`
		Username string   `json:"username,omitempty"`
		Roles    []string `json:"roles"`
		TTL      string   `json:"ttl,omitempty"`
	}
	if err := decode(w, r, a.maxBody, &in); err != nil {
		return err
	}
	var ttl time.Duration
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil {
			return errorf(http.StatusBadRequest, "ttl %q: %v", in.TTL, err)
		}
		ttl = d
	}
	secret, tok, err := a.reg.CreateAPIToken(r.Context(), in.Name, in.Username, in.Roles, ttl)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, struct {
		apiTokenView
		Token string `json:"token"`
	}{viewAPIToken(tok), secret})
}

func (a *API) revokeAPIToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.reg.RevokeAPIToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
