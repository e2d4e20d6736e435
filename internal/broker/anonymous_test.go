package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// anonymousDoc lets anonymous clients named anon-* connect, use open/*
// (retained only on open/retained) and publish under their own client id.
const anonymousDoc = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/anon-*"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/open/*","topic/clients/${iot:ClientId}/*"]},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/open/*"},
 {"Effect":"Allow","Action":"iot:RetainPublish","Resource":"topic/open/retained"},
 {"Effect":"Deny","Action":"iot:Publish","Resource":"topic/open/forbidden"}]}`

func mustCompile(t testing.TB, name, doc string) *policy.Set {
	t.Helper()
	d, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(policy.NamedDocument{Name: name, Document: d})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestAnonymousListener(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) {
		c.AnonymousAddr = "127.0.0.1:0"
		c.AnonymousPolicy = mustCompile(t, "anonymous", anonymousDoc)
	})
	anon := func(clientID string, will *paho.WillMessage) (*client, byte) {
		c, code, _ := f.connectOn("anonymous", clientID, "", nil, will)
		return c, code
	}

	// The normal listener still wants credentials.
	if _, code, _ := f.connect("anon-1", "", nil, nil); code != 0x86 {
		t.Errorf("anonymous CONNECT on the normal listener = %#x, want 0x86", code)
	}
	// iot:Connect and wills are still checked.
	if _, code := anon("stranger", nil); code != 0x87 {
		t.Errorf("CONNECT as a client id the policy refuses = %#x, want 0x87", code)
	}
	if _, code := anon("anon-w", &paho.WillMessage{Topic: "closed/will", Payload: []byte("x")}); code != 0x87 {
		t.Errorf("CONNECT with a denied will = %#x, want 0x87", code)
	}

	a1, code := anon("anon-1", &paho.WillMessage{Topic: "open/will", Payload: []byte("gone")})
	if code != 0 {
		t.Fatalf("anonymous CONNECT = %#x, want 0", code)
	}
	a2, code := anon("anon-2", nil)
	if code != 0 {
		t.Fatalf("anonymous CONNECT = %#x, want 0", code)
	}
	for filter, want := range map[string]byte{"open/#": 1, "clients/#": 0x87, "#": 0x87} {
		if got := subscribe(t, a2, filter); got != want {
			t.Errorf("SUBACK for %s = %#x, want %#x", filter, got, want)
		}
	}

	// A registry policy change makes the follower refresh sessions; the
	// anonymous ones keep their policy.
	admin := events.WithActor(context.Background(), "test")
	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "unrelated", Document: []byte(httpPublish)}); err != nil {
		t.Fatal(err)
	}
	f.caughtUp(t)

	pubs := []struct {
		topic  string
		retain bool
		want   byte
	}{
		{"open/temp", false, 0},
		{"open/forbidden", false, 0x87},
		{"closed/temp", false, 0x87},
		{"clients/anon-1/temp", false, 0},
		{"clients/anon-2/temp", false, 0x87},
		{"open/retained", true, 0},
		{"open/temp", true, 0x87},
	}
	for _, tc := range pubs {
		if got := publish(t, a1, tc.topic, 1, tc.retain); got != tc.want {
			t.Errorf("PUBACK for %s (retain %v) = %#x, want %#x", tc.topic, tc.retain, got, tc.want)
		}
	}
	a2.waitFor(t, "open/temp")
	a2.waitFor(t, "open/retained")
	for _, m := range a2.messages() {
		if m.Topic != "open/temp" && m.Topic != "open/retained" {
			t.Errorf("anon-2 received %s", m.Topic)
		}
	}
}
