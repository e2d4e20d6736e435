package live_test

import (
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func TestReservedTopic(t *testing.T) {
	for _, c := range []struct {
		prefix, topic string
		want          bool
	}{
		{"$gatehouse/events", "$gatehouse/x", true},
		{"$gatehouse/events", "$SYS/broker/uptime", true},
		{"$gatehouse/events", "$sys/x", true},
		{"", "$share/g/$gatehouse/x", true},
		{"events", "events/thing.created/thing/a", true},
		{"events", "eventsx/a", false},
		{"events", "events", true},
		{"events", "event", false},
		{"", "things/a", false},
		{"", "+/x", false},
	} {
		if got := live.ReservedTopic(c.prefix, c.topic); got != c.want {
			t.Errorf("ReservedTopic(%q, %q) = %v, want %v", c.prefix, c.topic, got, c.want)
		}
	}
}

// TestChanges: each event ends or re-authorizes the sessions it concerns.
func TestChanges(t *testing.T) {
	tok := &authn.Identity{Method: authn.MethodAccessToken, ThingName: "a", CredentialID: "jti-1", BoundCertificate: "fp-2"}
	cert := &authn.Identity{Method: authn.MethodCertificate, ThingName: "b", CredentialID: "fp-1"}
	for _, c := range []struct {
		ev       store.Event
		id       *authn.Identity
		ends     bool
		concerns bool
	}{
		{store.Event{Type: "token.revoked", Details: []byte(`{"jti":"jti-1"}`)}, tok, true, false},
		{store.Event{Type: "token.revoked", Details: []byte(`{"access_jtis":["jti-1"]}`)}, tok, true, false},
		{store.Event{Type: "token.revoked", Details: []byte(`{"jti":"other"}`)}, tok, false, false},
		{store.Event{Type: "certificate.revoked", Subject: "certificate/fp-1"}, cert, true, false},
		{store.Event{Type: "certificate.deactivated", Subject: "certificate/fp-2"}, tok, true, false},
		{store.Event{Type: "thing.updated", Subject: "thing/a"}, tok, false, true},
		{store.Event{Type: "thing.updated", Subject: "thing/a"}, cert, false, false},
		{store.Event{Type: "thing.updated", Subject: "thing/a", Details: []byte(`{"state":"disabled"}`)}, tok, true, true},
		{store.Event{Type: "thing.deleted", Subject: "thing/b"}, cert, true, true},
		{store.Event{Type: "user.deleted", Subject: "user/alice"}, &authn.Identity{Method: authn.MethodAccessToken, UserName: "alice", CredentialID: "jti-9"}, true, true},
		{store.Event{Type: "policy.version_created", Subject: "policy/p", Details: []byte(`{"default":true}`)}, cert, false, true},
		{store.Event{Type: "policy.version_created", Subject: "policy/p", Details: []byte(`{"default":false}`)}, cert, false, false},
		{store.Event{Type: "policy.attached", Subject: "policy/p", Details: []byte(`{"targetKind":"thing","target":"z"}`)}, cert, false, true},
		{store.Event{Type: "thingtype.updated", Subject: "thingtype/t"}, cert, false, true},
		{store.Event{Type: "group.member_added", Subject: "group/g", Details: []byte(`{"kind":"thing","member":"a"}`)}, tok, false, true},
		{store.Event{Type: "group.member_added", Subject: "group/g", Details: []byte(`{"kind":"thing","member":"a"}`)}, cert, false, false},
		{store.Event{Type: "relationship.created", Details: []byte(`{"subjectKind":"thing","subject":"b"}`)}, cert, false, true},
		{store.Event{Type: "thing.created", Subject: "thing/c"}, tok, false, false},
	} {
		var ch live.Changes
		ch.Add(c.ev)
		if got := ch.Ends(c.id) != ""; got != c.ends {
			t.Errorf("%s %s: Ends = %v, want %v", c.ev.Type, c.ev.Subject, got, c.ends)
		}
		if got := ch.Concerns(c.id); got != c.concerns {
			t.Errorf("%s %s: Concerns = %v, want %v", c.ev.Type, c.ev.Subject, got, c.concerns)
		}
	}
}

// TestChangesMerge: merged batches ask for everything either asked for.
func TestChangesMerge(t *testing.T) {
	var a, b live.Changes
	a.Add(store.Event{Type: "token.revoked", Details: []byte(`{"jti":"j1"}`)})
	b.Add(store.Event{Type: "thing.updated", Subject: "thing/x", Details: []byte(`{"state":"disabled"}`)})
	b.Add(store.Event{Type: "policy.attached", Subject: "policy/p", Details: []byte(`{"targetKind":"group","target":"g"}`)})
	a.Merge(&b)
	id := &authn.Identity{ThingName: "x", CredentialID: "j2"}
	tests := []struct {
		name      string
		got, want any
	}{
		{"revoked kept", a.Revoked["j1"], true},
		{"disabled thing ends", a.Ends(id) != "", true},
		{"attachment kept", len(a.Attached), 1},
		{"rebinds", a.Rebinds(), true},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
