package authorizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// RabbitMQManagement is RabbitMQ's management HTTP API (the
// rabbitmq_management plugin), through which the adapters close the
// connections of credentials that were revoked, disabled or expired: the
// HTTP auth backend has no way to end a connection it allowed.
type RabbitMQManagement struct {
	// URL is the API's base, e.g. http://127.0.0.1:15672; empty: no
	// connection is closed.
	URL string
	// Username and Password log in to the API as a user with the
	// administrator tag (only administrators may close other users'
	// connections). Never logged.
	Username, Password string
	// Client makes the calls (default: 5 s timeout).
	Client *http.Client
}

// rabbitManagement calls RabbitMQ's management API.
type rabbitManagement struct {
	base               string
	username, password string
	client             *http.Client
}

func newRabbitManagement(c RabbitMQManagement) *rabbitManagement {
	if c.URL == "" {
		return nil
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 5 * time.Second}
	}
	return &rabbitManagement{base: strings.TrimRight(c.URL, "/"), username: c.Username, password: c.Password, client: c.Client}
}

// call makes one API request and decodes a JSON answer into out (if not
// nil). A 404 is store.ErrNotFound.
func (m *rabbitManagement) call(ctx context.Context, method, path, reason string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq management: %w", err)
	}
	req.SetBasicAuth(m.username, m.password)
	if reason != "" {
		req.Header.Set("X-Reason", reason)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("rabbitmq management: %s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return store.ErrNotFound
	case resp.StatusCode >= 300:
		return fmt.Errorf("rabbitmq management: %s %s: status %d", method, strings.SplitN(path, "?", 2)[0], resp.StatusCode)
	case out != nil:
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("rabbitmq management: %s %s: %w", method, path, err)
		}
	}
	return nil
}

// close closes the connections of username whose MQTT client id is
// clientID (all of the user's when clientID is ""), and returns how many.
// The user's connections come from RabbitMQ's connection tracking, which
// knows them at once; their client ids from its statistics, which learn of
// a connection only some seconds after it opened, and RabbitMQ closes by
// name only the connections they know. So when one of the user's
// connections is that young, all of the user's connections are closed
// (the others reconnect and authenticate again).
func (m *rabbitManagement) close(ctx context.Context, username, clientID, reason string) (int, error) {
	userPath := "/api/connections/username/" + url.PathEscape(username)
	var conns []struct {
		Name string `json:"name"`
	}
	if err := m.call(ctx, http.MethodGet, userPath, "", &conns); err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	var names []string
	young := clientID == ""
	for _, c := range conns {
		if young {
			break
		}
		var info struct {
			ClientProperties struct {
				ClientID *string `json:"client_id"`
			} `json:"client_properties"`
		}
		switch err := m.call(ctx, http.MethodGet, "/api/connections/"+url.PathEscape(c.Name), "", &info); {
		case errors.Is(err, store.ErrNotFound):
			young = true
		case err != nil:
			return 0, err
		case info.ClientProperties.ClientID == nil || *info.ClientProperties.ClientID == clientID:
			names = append(names, c.Name)
		}
	}
	if young {
		if len(conns) == 0 {
			return 0, nil
		}
		if err := m.call(ctx, http.MethodDelete, userPath, reason, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		return len(conns), nil
	}
	n := 0
	for _, name := range names {
		err := m.call(ctx, http.MethodDelete, "/api/connections/"+url.PathEscape(name), reason, nil)
		if err != nil && !errors.Is(err, store.ErrNotFound) { // not found: closed meanwhile
			return n, err
		}
		n++
	}
	return n, nil
}

// sweepInterval is how often Run ends expired RabbitMQ sessions; with the
// API's latency, a connection closes within about a second of its
// credential's expiry.
const sweepInterval = 500 * time.Millisecond

// Run ends sessions until ctx ends: on every replica it follows the event
// log (a token revoked, a thing or person changed, by any replica) and
// sweeps expired sessions; the replica that deletes a RabbitMQ session
// from the store closes its connections through the management API. It
// also purges expired EMQX sessions (EMQX itself disconnects a client at
// the expire_at Gatehouse gave it).
func (a *Adapters) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if a.cfg.Events != nil {
		wg.Go(func() { a.follow(ctx) })
	}
	wg.Go(func() { a.sweep(ctx) })
	wg.Wait()
	return nil
}

// follow applies the events committed from now on, by any replica.
func (a *Adapters) follow(ctx context.Context) {
	after, err := a.cfg.Events.LatestID(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("authorizer: read event log position", "err", err)
		pause(ctx, time.Second)
		after, err = a.cfg.Events.LatestID(ctx)
	}
	for ctx.Err() == nil {
		after, err = a.cfg.Events.Follow(ctx, after, func(evs []store.Event) { a.apply(ctx, evs) })
		if err != nil && ctx.Err() == nil {
			a.log.Warn("authorizer: follow event log", "err", err)
			pause(ctx, time.Second)
		}
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (a *Adapters) sweep(ctx context.Context) {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := a.now()
		expired, err := a.cfg.Store.AdapterSessions(ctx, store.AdapterSessionFilter{Broker: brokerRabbitMQ, ExpiredBy: now})
		if err != nil {
			a.log.Warn("authorizer: list expired sessions", "err", err)
			continue
		}
		a.end(ctx, expired, "credential expired")
		if n%120 == 0 {
			if _, err := a.cfg.Store.PurgeAdapterSessions(ctx, brokerEMQX, now); err != nil {
				a.log.Warn("authorizer: purge expired sessions", "err", err)
			}
		}
	}
}

// apply ends the RabbitMQ sessions a batch of events concerns: those of
// revoked tokens at once, those of changed things and people when their
// recheck fails (disabled, deleted, type no longer allowing the method).
func (a *Adapters) apply(ctx context.Context, evs []store.Event) {
	var jtis, things, users []string
	for _, ev := range evs {
		switch {
		case ev.Type == "token.revoked":
			var d struct {
				JTI  string   `json:"jti"`
				JTIs []string `json:"access_jtis"`
			}
			if json.Unmarshal(ev.Details, &d) == nil {
				for _, j := range append(d.JTIs, d.JTI) {
					if j != "" {
						jtis = append(jtis, j)
					}
				}
			}
		case ev.Type == "thing.updated", ev.Type == "thing.deleted":
			things = append(things, strings.TrimPrefix(ev.Subject, "thing/"))
		case ev.Type == "user.updated", ev.Type == "user.deleted":
			users = append(users, strings.TrimPrefix(ev.Subject, "user/"))
		}
	}
	if len(jtis) > 0 {
		revoked, err := a.cfg.Store.AdapterSessions(ctx, store.AdapterSessionFilter{Broker: brokerRabbitMQ, CredentialIDs: jtis})
		if err != nil {
			a.log.Warn("authorizer: sessions of revoked tokens", "err", err)
		}
		a.end(ctx, revoked, "credential revoked")
	}
	if len(things)+len(users) == 0 {
		return
	}
	// Changes made through other replicas reach this one only here (the
	// broker's follower drops the same caches).
	a.cfg.Registry.InvalidatePolicies()
	changed, err := a.cfg.Store.AdapterSessions(ctx, store.AdapterSessionFilter{Broker: brokerRabbitMQ, ThingNames: things, UserNames: users})
	if err != nil {
		a.log.Warn("authorizer: sessions of changed things", "err", err)
	}
	for _, rec := range changed {
		s, err := decodeSession(&rec)
		if err == nil {
			err = a.check(ctx, s)
		}
		if errors.Is(err, authn.ErrNotAuthorized) {
			a.end(ctx, []store.AdapterSession{rec}, "credential no longer valid")
		} else if err != nil {
			a.log.Warn("authorizer: recheck session", "username", logName(rec.Username), "err", err)
		}
	}
}

// end deletes sessions from the store and, for those this replica deleted
// (another replica may have been first), closes their RabbitMQ connections.
// A close that fails puts the session back, expired, for the next sweep to
// retry.
func (a *Adapters) end(ctx context.Context, recs []store.AdapterSession, reason string) {
	type target struct{ username, clientID string }
	closeFor := map[target][]store.AdapterSession{}
	for _, rec := range recs {
		a.recent.drop(sessionKey{rec.Broker, rec.ClientID, rec.Username})
		err := a.cfg.Store.DeleteAdapterSession(ctx, rec.Broker, rec.ClientID, rec.Username)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			a.log.Warn("authorizer: end session", "username", logName(rec.Username), "err", err)
			continue
		}
		if a.rabbit == nil {
			continue
		}
		clientID := rec.ClientID
		if s, err := decodeSession(&rec); err == nil && s.clientID != "" {
			clientID = s.clientID
		}
		t := target{rec.Username, clientID}
		closeFor[t] = append(closeFor[t], rec)
	}
	for t, recs := range closeFor {
		n, err := a.rabbit.close(ctx, t.username, t.clientID, "Gatehouse: "+reason)
		if err != nil {
			a.log.Warn("authorizer: close rabbitmq connection, will retry", "username", logName(t.username), "client", truncate(t.clientID), "err", err)
			for _, rec := range recs {
				rec.ExpiresAt = a.now()
				if err := a.cfg.Store.PutAdapterSession(ctx, &rec); err != nil {
					a.log.Warn("authorizer: keep session for retry", "username", logName(rec.Username), "err", err)
				}
			}
			continue
		}
		a.log.Info("rabbitmq connection closed", "username", logName(t.username), "client", truncate(t.clientID), "connections", n, "why", reason)
	}
}
