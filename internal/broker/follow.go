package broker

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// follow reads the event log (written by any replica) and applies what
// concerns live connections. What ends sessions - revoked tokens and
// certificates, disabled or deleted things and people - it applies itself,
// from memory, at once; what changes their policies it hands to the
// rebinder (rebind.go), which it never waits for. It also mirrors every
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
	b.rebinds.done(after)
	for ctx.Err() == nil {
		var err error
		after, err = b.cfg.Events.Follow(ctx, after, func(evs []store.Event) {
			c := &live.Changes{}
			for _, ev := range evs {
				c.Add(ev)
				b.mirror(ev)
			}
			b.endSessions(c)
			b.rebinds.queue(c, evs[len(evs)-1].ID)
		})
		if err != nil && ctx.Err() == nil {
			b.log.Warn("broker: follow event log", "err", err)
			time.Sleep(time.Second)
		}
	}
}

// endSessions applies at once, from memory, what ends sessions: revoked
// tokens and certificates, things and people disabled or deleted. It never
// waits for the rebinder.
func (b *Broker) endSessions(c *live.Changes) {
	if len(c.Revoked) > 0 {
		b.hook.markRevoked(c.Revoked)
	}
	if c.Rebinds() {
		// Changes made through other replicas reach this one only here:
		// the next CONNECT reads them.
		b.cfg.Registry.InvalidatePolicies()
	}
	type ending struct {
		k   live.Key
		why string
	}
	var ends []ending
	for j := range c.JTIs {
		ends = append(ends, ending{live.Key{Kind: keyCredential, Name: j}, "credential revoked"})
	}
	for fp := range c.Certificates {
		ends = append(ends, ending{live.Key{Kind: keyCertificate, Name: fp}, "certificate revoked or deactivated"})
	}
	for k := range c.Gone {
		ends = append(ends, ending{k, k.Kind + " " + k.Name + " disabled or deleted"})
	}
	kicked := map[*session]bool{}
	for _, e := range ends {
		for _, s := range b.hook.index.find(e.k) {
			if !kicked[s] {
				kicked[s] = true
				b.hook.kick(s, packets.ErrNotAuthorized, e.why)
			}
		}
	}
}

// keys calls yield with every key the session depends on.
func (s *session) keys(yield func(live.Key) bool) {
	sub := s.id.Subject
	if sub.ThingName != "" && !yield(live.Key{Kind: store.TargetThing, Name: sub.ThingName}) {
		return
	}
	if sub.CertificateFingerprint != "" && !yield(live.Key{Kind: store.TargetCertificate, Name: sub.CertificateFingerprint}) {
		return
	}
	for _, sc := range sub.Scopes {
		if !yield(live.Key{Kind: store.TargetScope, Name: sc}) {
			return
		}
	}
	if sub.UserName != "" && (!yield(live.Key{Kind: store.TargetUser, Name: sub.UserName}) || !yield(live.Key{Kind: store.TargetAllUsers, Name: registry.AllUsersTarget})) {
		return
	}
	res := s.res.Load()
	if res == nil {
		return
	}
	if res.Thing != nil && res.Thing.ThingType != "" && !yield(live.Key{Kind: live.KeyType, Name: res.Thing.ThingType}) {
		return
	}
	for _, g := range res.Groups {
		if !yield(live.Key{Kind: store.TargetGroup, Name: g}) {
			return
		}
	}
	for _, c := range res.Children {
		if !yield(live.Key{Kind: live.KeyRelated, Name: c}) {
			return
		}
	}
	if res.User != nil {
		for _, things := range res.User.Things {
			for _, t := range things {
				if !yield(live.Key{Kind: live.KeyRelated, Name: t}) {
					return
				}
			}
		}
	}
}

// dependsOn reports whether the session depends on target.
func (s *session) dependsOn(target live.Key) bool {
	for k := range s.keys {
		if k == target {
			return true
		}
	}
	return false
}

// mirror publishes an event to the event topics.
func (b *Broker) mirror(ev store.Event) {
	if b.cfg.EventTopicPrefix == "" {
		return
	}
	topic := b.cfg.EventTopicPrefix + "/" + topicSafe(ev.Type) + "/" + topicSafe(ev.Subject)
	if subs := b.server.Topics.Subscribers(topic); len(subs.Subscriptions)+len(subs.Shared)+len(subs.InlineSubscriptions) == 0 {
		// Nobody to deliver to (the mirror is never retained): a CONNECT
		// storm's events cost no encoding and no publish.
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return
	}
	if err := b.server.Publish(topic, payload, false, 0); err != nil {
		b.log.Debug("broker: mirror event", "topic", topic, "err", err)
	}
}

// topicSafe replaces MQTT wildcard characters, which may not appear in a
// topic name.
func topicSafe(s string) string {
	if !strings.ContainsAny(s, "+#\x00") {
		return s // the usual case, without building a replacer
	}
	return strings.NewReplacer("+", "_", "#", "_", "\x00", "_").Replace(s)
}
