// Package live decides which topics are the server's own, for the embedded
// broker and the Mosquitto plugin (internal/mosqauth) alike, and what a
// batch of audit-log events asks of live MQTT sessions: which end at once
// (a revoked token or certificate, a disabled thing or person) and which
// must be re-authorized (a policy, attachment, thing type, group,
// relationship or thing changed). It holds no sessions itself: the embedded
// broker matches Changes against an index of its sessions and re-binds
// only those a change concerns; the plugin applies the coarser Ends and
// Concerns to each of its sessions.
package live

import (
	"encoding/json"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Key names something live sessions depend on: a policy attachment target
// (Kind a store.Target*, so that an attachment event names its key), a
// thing type (KeyType) or a thing a person or gateway has a relationship
// with (KeyRelated).
type Key struct{ Kind, Name string }

// Kinds of Key besides the store's attachment targets.
const (
	KeyType    = "thing-type"
	KeyRelated = "related"
)

// Attachment is a policy attached to or detached from a target.
type Attachment struct {
	Policy string
	Target Key
}

// Changes is what a batch of events asks of live sessions. The zero value
// is empty; Add fills it.
type Changes struct {
	// What ends sessions at once.
	// JTIs are credentials (token jtis) whose sessions end; Revoked are
	// those among them that never come back (a deactivated certificate
	// may).
	JTIs, Revoked map[string]bool
	// Certificates are the fingerprints of certificates revoked or
	// deactivated: sessions that logged in with one, or with a token bound
	// to one, end.
	Certificates map[string]bool
	// Gone are things and people disabled or deleted:
	// Key{store.TargetThing, name} or Key{store.TargetUser, name}.
	Gone map[Key]bool

	// What re-binds sessions.
	// All re-authorizes every session (an event that cannot be narrowed
	// down).
	All bool
	// Refresh re-authorizes the sessions that depend on one of its keys.
	Refresh map[Key]bool
	// Recompile re-binds the sessions whose policies name one of these (a
	// new default version, a policy created that a thing type named before
	// it existed): their subject is unchanged, only documents are read
	// again.
	Recompile map[string]bool
	// Attached are policies newly attached to a target: that target's
	// sessions recompile with the policy added. Detached are the reverse:
	// the target's sessions naming the policy are re-authorized (it may
	// still apply through another target).
	Attached, Detached []Attachment
}

// Rebinding reports whether c asks for any session to be re-bound.
func (c *Changes) Rebinding() bool {
	return c.All || len(c.Refresh) > 0 || len(c.Recompile) > 0 || len(c.Attached) > 0 || len(c.Detached) > 0
}

// Rebinds reports whether policies must be resolved again (a policy cache
// invalidated: changes made through other processes reach this one only
// through the log).
func (c *Changes) Rebinds() bool { return c.Rebinding() || len(c.Gone) > 0 }

// Empty reports whether the batch concerns no live session.
func (c *Changes) Empty() bool {
	return !c.Rebinds() && len(c.JTIs) == 0 && len(c.Certificates) == 0
}

// Merge adds what o asks for to c.
func (c *Changes) Merge(o *Changes) {
	c.All = c.All || o.All
	for _, m := range []struct{ to, from *map[string]bool }{{&c.JTIs, &o.JTIs}, {&c.Revoked, &o.Revoked}, {&c.Certificates, &o.Certificates}, {&c.Recompile, &o.Recompile}} {
		for k := range *m.from {
			mark(m.to, k)
		}
	}
	for k := range o.Gone {
		mark(&c.Gone, k)
	}
	for k := range o.Refresh {
		mark(&c.Refresh, k)
	}
	c.Attached = append(c.Attached, o.Attached...)
	c.Detached = append(c.Detached, o.Detached...)
}

// Add notes what ev asks of live sessions.
func (c *Changes) Add(ev store.Event) {
	kind, _, _ := strings.Cut(ev.Type, ".")
	name := ev.Subject[strings.IndexByte(ev.Subject, '/')+1:]
	switch {
	case kind == "policy":
		c.policy(ev, name)
	case ev.Type == "thingtype.updated", ev.Type == "thingtype.deleted":
		mark(&c.Refresh, Key{KeyType, name})
	case ev.Type == "group.member_added", ev.Type == "group.member_removed":
		var d struct{ Kind, Member string }
		if json.Unmarshal(ev.Details, &d) != nil || d.Member == "" {
			c.All = true
			return
		}
		mark(&c.Refresh, Key{d.Kind, d.Member}) // store.KindThing/KindUser are TargetThing/TargetUser
	case ev.Type == "group.deleted":
		mark(&c.Refresh, Key{store.TargetGroup, name})
	case ev.Type == "thing.deleted":
		// Its relationships went with it, without events of their own:
		// people and gateways that had one are re-authorized too.
		mark(&c.Gone, Key{store.TargetThing, name})
		mark(&c.Refresh, Key{KeyRelated, name})
	case ev.Type == "thing.updated":
		var d struct {
			State string `json:"state"`
		}
		_ = json.Unmarshal(ev.Details, &d)
		c.state(Key{store.TargetThing, name}, d.State == store.StateDisabled, d.State == store.StateEnabled)
		mark(&c.Refresh, Key{store.TargetThing, name})
	case ev.Type == "user.updated", ev.Type == "user.deleted":
		var d struct {
			Disabled *bool `json:"disabled"`
		}
		_ = json.Unmarshal(ev.Details, &d)
		c.state(Key{store.TargetUser, name}, ev.Type == "user.deleted" || d.Disabled != nil && *d.Disabled, d.Disabled != nil && !*d.Disabled)
		mark(&c.Refresh, Key{store.TargetUser, name})
	case kind == "relationship":
		c.people(ev)
	case ev.Type == "certificate.revoked", ev.Type == "certificate.deactivated",
		ev.Type == "lobby.rejected", ev.Type == "lobby.decommissioned":
		// Sessions on the certificate - logged in with it, or with a
		// token bound to it - end; a lobby device rejected or
		// decommissioned loses its lobby session (on its manufacturer
		// certificate) at once.
		if fp, ok := cutAny(ev.Subject, "certificate/", "lobby/"); ok {
			mark(&c.Certificates, fp)
		}
	case ev.Type == "token.revoked":
		var d struct {
			JTI  string   `json:"jti"`
			JTIs []string `json:"access_jtis"`
		}
		if json.Unmarshal(ev.Details, &d) == nil {
			for _, j := range append(d.JTIs, d.JTI) {
				mark(&c.JTIs, j)
				mark(&c.Revoked, j)
			}
		}
	}
}

// state notes a thing or person disabled (or deleted), or enabled again
// later in the same batch.
func (c *Changes) state(k Key, disabled, enabled bool) {
	switch {
	case disabled:
		mark(&c.Gone, k)
	case enabled:
		delete(c.Gone, k)
	}
}

// policy notes what a policy event changes: only the sessions whose
// policies name the policy, or (attachments) the target's sessions. A
// policy created affects only sessions of a thing type that named it
// before it existed; a version that is not the default, nobody.
func (c *Changes) policy(ev store.Event, name string) {
	var d struct {
		Default    *bool  `json:"default"`
		TargetKind string `json:"targetKind"`
		Target     string `json:"target"`
	}
	if json.Unmarshal(ev.Details, &d) != nil && len(ev.Details) > 0 {
		c.All = true
		return
	}
	switch ev.Type {
	case "policy.version_created":
		if d.Default != nil && *d.Default {
			mark(&c.Recompile, name)
		}
	case "policy.version_deleted":
		// Only a version that is not the default can be deleted.
	case "policy.attached":
		c.Attached = append(c.Attached, Attachment{name, Key{d.TargetKind, d.Target}})
	case "policy.detached":
		c.Detached = append(c.Detached, Attachment{name, Key{d.TargetKind, d.Target}})
	default: // created, default_set, deleted, and anything newer
		mark(&c.Recompile, name)
	}
}

// people notes whom a relationship event concerns: the person of a
// user->thing relationship (their ${gatehouse:User.Things.*} change) and
// the gateway of a thing->thing relationship (its
// ${gatehouse:Thing.Children}). Their sessions are re-authorized, so a
// person whose ownership is removed stops receiving with the next message.
func (c *Changes) people(ev store.Event) {
	var r store.Relationship
	if json.Unmarshal(ev.Details, &r) != nil || r.Subject == "" {
		// A relationship event without readable details: re-check everyone
		// rather than miss a removal.
		c.All = true
		return
	}
	switch r.SubjectKind {
	case store.KindUser:
		mark(&c.Refresh, Key{store.TargetUser, r.Subject})
	case store.KindThing:
		mark(&c.Refresh, Key{store.TargetThing, r.Subject})
	}
}

// mark adds k to the set *m, made on first use; empty names are none.
func mark[K comparable](m *map[K]bool, k K) {
	var zero K
	if k == zero {
		return
	}
	if *m == nil {
		*m = map[K]bool{}
	}
	(*m)[k] = true
}

// Ends reports why a session of id must end under c, or "" if it need not
// (it may still need re-authorizing: Concerns).
func (c *Changes) Ends(id *authn.Identity) string {
	switch {
	case c.JTIs[id.CredentialID]:
		return "credential revoked"
	case c.Certificates[CertificateOf(id)]:
		return "certificate revoked or deactivated"
	case id.ThingName != "" && c.Gone[Key{store.TargetThing, id.ThingName}]:
		return "thing " + id.ThingName + " disabled or deleted"
	case id.UserName != "" && c.Gone[Key{store.TargetUser, id.UserName}]:
		return "person " + id.UserName + " disabled or deleted"
	}
	return ""
}

// Concerns reports whether a session of id may need re-authorizing, from
// its identity alone: a change to its own thing or person, or anything
// only a session's resolved policies could narrow down (a policy, an
// attachment, a thing type, a group, a relationship). The embedded broker
// narrows further with each session's resolution.
func (c *Changes) Concerns(id *authn.Identity) bool {
	if c.All || len(c.Recompile) > 0 || len(c.Attached) > 0 || len(c.Detached) > 0 {
		return true
	}
	for k := range c.Refresh {
		switch k.Kind {
		case store.TargetThing:
			if k.Name == id.ThingName {
				return true
			}
		case store.TargetUser:
			if k.Name == id.UserName {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// CertificateOf is the fingerprint of the certificate an identity stands
// on: the one it logged in with, or the one its token is bound to; or "".
func CertificateOf(id *authn.Identity) string {
	if id.Method == authn.MethodCertificate {
		return id.CredentialID
	}
	return id.BoundCertificate
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
