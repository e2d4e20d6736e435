package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// follow reads the event log (written by any replica) and applies what
// concerns live connections: policy and registry changes rebind sessions,
// revoked tokens and disabled things disconnect them. It also mirrors every
// event to EventTopicPrefix/<type>/<subject>.
func (b *Broker) follow(ctx context.Context) {
	after, known := b.followFrom, b.followKnown
	for !known {
		id, err := b.cfg.Events.LatestID(ctx)
		if err == nil {
			after, known = id, true
			break
		}
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("broker: read event log position", "err", err)
		time.Sleep(time.Second)
	}
	for ctx.Err() == nil {
		evs, err := b.cfg.Events.Wait(ctx, store.EventFilter{AfterID: after, Limit: 1000}, 30*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Warn("broker: follow event log", "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		var c changes
		for _, ev := range evs {
			after = ev.ID
			c.add(ev)
			b.mirror(ev)
		}
		b.apply(ctx, &c)
	}
}

// changes is what a batch of events asks of live sessions.
type changes struct {
	all    bool
	things map[string]bool
	jtis   map[string]bool
	// revoked are the token jtis among jtis: unlike a deactivated
	// certificate, a revoked token never comes back.
	revoked map[string]bool
	// certificates are the fingerprints of certificates revoked or
	// deactivated: sessions that logged in with one, or with a token
	// bound to one, end.
	certificates map[string]bool
	// users are people whose account or relationships changed.
	users map[string]bool
}

func (c *changes) add(ev store.Event) {
	kind, _, _ := strings.Cut(ev.Type, ".")
	switch {
	case kind == "policy", ev.Type == "thingtype.updated", ev.Type == "thingtype.deleted",
		ev.Type == "group.member_added", ev.Type == "group.member_removed", ev.Type == "group.deleted":
		c.all = true
	case ev.Type == "thing.deleted":
		// Its relationships went with it, without events of their own:
		// people and gateways that had one must be re-authorized too.
		c.all = true
	case ev.Type == "thing.updated":
		if name, ok := strings.CutPrefix(ev.Subject, "thing/"); ok {
			if c.things == nil {
				c.things = map[string]bool{}
			}
			c.things[name] = true
		}
	case ev.Type == "certificate.revoked", ev.Type == "certificate.deactivated",
		ev.Type == "lobby.rejected", ev.Type == "lobby.decommissioned":
		// Sessions on the certificate - logged in with it, or with a
		// token bound to it - end; a lobby device rejected or
		// decommissioned loses its lobby session (on its manufacturer
		// certificate) at once.
		if fp, ok := cutAny(ev.Subject, "certificate/", "lobby/"); ok {
			if c.certificates == nil {
				c.certificates = map[string]bool{}
			}
			c.certificates[fp] = true
		}
	case strings.HasPrefix(ev.Type, "relationship."), ev.Type == "user.updated", ev.Type == "user.deleted":
		c.people(ev)
	case ev.Type == "token.revoked":
		var d struct {
			JTI  string   `json:"jti"`
			JTIs []string `json:"access_jtis"`
		}
		if json.Unmarshal(ev.Details, &d) == nil {
			if c.jtis == nil {
				c.jtis, c.revoked = map[string]bool{}, map[string]bool{}
			} else if c.revoked == nil {
				c.revoked = map[string]bool{}
			}
			for _, j := range append(d.JTIs, d.JTI) {
				if j != "" {
					c.jtis[j], c.revoked[j] = true, true
				}
			}
		}
	}
}

func (b *Broker) apply(ctx context.Context, c *changes) {
	if !c.all && len(c.things) == 0 && len(c.jtis) == 0 && len(c.certificates) == 0 && len(c.users) == 0 {
		return
	}
	if len(c.revoked) > 0 {
		b.hook.markRevoked(c.revoked)
	}
	if c.all || len(c.things) > 0 || len(c.users) > 0 {
		// Changes made through other replicas reach this one only here.
		b.cfg.Registry.InvalidatePolicies()
	}
	b.hook.sessions.Range(func(_, v any) bool {
		s := v.(*session)
		switch {
		case c.jtis[s.id.CredentialID]:
			b.hook.kick(s, packets.ErrNotAuthorized, "credential revoked")
		case c.certificates[certificateOf(s.id)]:
			b.hook.kick(s, packets.ErrNotAuthorized, "certificate revoked or deactivated")
		case c.all || c.things[s.id.ThingName] || c.users[s.id.UserName]:
			b.hook.refresh(ctx, s)
		}
		return true
	})
}

// certificateOf is the fingerprint of the certificate an identity stands
// on: the one it logged in with, or the one its token is bound to; or "".
func certificateOf(id *authn.Identity) string {
	if id.Method == authn.MethodCertificate {
		return id.CredentialID
	}
	return id.BoundCertificate
}

// refresh re-authorizes a live session against the current registry and
// policies.
func (h *hook) refresh(ctx context.Context, s *session) {
	if s.anonymous {
		return // bound to the fixed AnonymousPolicy, nothing in the registry
	}
	if err := h.b.cfg.Authn.Recheck(ctx, s.id); err != nil {
		if errors.Is(err, authn.ErrNotAuthorized) {
			h.kick(s, packets.ErrNotAuthorized, err.Error())
		} else {
			h.b.log.Warn("broker: recheck session", "client", s.cl.ID, "err", err)
		}
		return
	}
	if err := h.bind(ctx, s); err != nil {
		h.b.log.Warn("broker: rebind session", "client", s.cl.ID, "err", err)
		return
	}
	bound := s.bound.Load()
	if !bound.Allowed(policy.ActionConnect, s.clientID) {
		h.kick(s, packets.ErrNotAuthorized, "iot:Connect no longer allowed")
		return
	}
	// The will is checked against the new binding when it is sent (OnWill).
	h.recheckSubscriptions(s)
}

// mirror publishes an event to the event topics.
func (b *Broker) mirror(ev store.Event) {
	if b.cfg.EventTopicPrefix == "" {
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return
	}
	topic := b.cfg.EventTopicPrefix + "/" + topicSafe(ev.Type) + "/" + topicSafe(ev.Subject)
	if err := b.server.Publish(topic, payload, false, 0); err != nil {
		b.log.Debug("broker: mirror event", "topic", topic, "err", err)
	}
}

// topicSafe replaces MQTT wildcard characters, which may not appear in a
// topic name.
func topicSafe(s string) string {
	return strings.NewReplacer("+", "_", "#", "_", "\x00", "_").Replace(s)
}

// cutAny is strings.CutPrefix with the first of prefixes s has.
func cutAny(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest, true
		}
	}
	return s, false
}
