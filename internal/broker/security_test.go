package broker_test

import (
	"context"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// These tests pin the defects of mochi-mqtt's stock authorization (see
// docs/security.md, "The embedded broker") that Gatehouse's hook closes and
// no other test covers.

// observerPolicy lets a thing connect and subscribe to and receive
// everything: a witness for what the broker lets out.
const observerPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["iot:Connect","iot:Subscribe","iot:Receive"],"Resource":"*"}]}`

// observer registers thing "obs" bound to observerPolicy and connects it.
func (f *fixture) observer(t *testing.T) *client {
	t.Helper()
	ctx := events.WithActor(context.Background(), "test")
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: "observer", Document: []byte(observerPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(ctx, registry.ThingTypeSpec{Name: "observer", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"observer"}}); err != nil {
		t.Fatal(err)
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "observer", "obs"))
	return f.mustConnect("obs", "obs", []byte(f.token("obs", "mqtt")))
}

// connectSession opens an MQTT 5 session that outlives the connection
// (CleanStart false, session expiry 10 minutes) and reports whether the
// server resumed an earlier one.
func (f *fixture) connectSession(t *testing.T, thing string) (c *client, resumed bool) {
	t.Helper()
	c = newClient(f.dial("tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	expiry := uint32(600)
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: thing, Username: thing, UsernameFlag: true,
		Password: []byte(f.token(thing, "mqtt")), PasswordFlag: true, KeepAlive: 30, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil || ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", thing, ca, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ca.SessionPresent
}

// thingsObserver is an observer subscribed to things/#.
func (f *fixture) thingsObserver(t *testing.T) *client {
	t.Helper()
	obs := f.observer(t)
	if got := subscribe(t, obs, "things/#"); got != 1 {
		t.Fatalf("observer SUBACK = %#x", got)
	}
	return obs
}

// waitGone waits until the broker has no live connection for id.
func (f *fixture) waitGone(t *testing.T, id string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "client "+id+" gone", func() bool {
		cl, ok := f.broker.Server().Clients.Get(id)
		return !ok || cl.Closed()
	})
}

// TestResumedSessionSubscriptionRechecked: mochi re-adds a resumed
// session's subscriptions without asking any hook. A subscription the
// policy allowed when it was made, and forbids by the time the client comes
// back, must be dropped on reconnect (hook.OnSessionEstablished ->
// recheckSubscriptions), not kept until delivery happens to be checked.
func TestResumedSessionSubscriptionRechecked(t *testing.T) {
	f := newFixture(t, time.Hour)
	const filter = "things/s-1/#"
	c, _ := f.connectSession(t, "s-1")
	if got := subscribe(t, c, filter); got != 1 {
		t.Fatalf("SUBACK = %#x", got)
	}
	if got := subscribe(t, c, "commands/#"); got != 1 {
		t.Fatalf("SUBACK = %#x", got)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, "s-1")

	// The new version still lets s-1 receive its own topics, but no
	// longer subscribe to them.
	ctx := events.WithActor(context.Background(), "test")
	noSub := strings.Replace(telemetry, `"topicfilter/things/${iot:Connection.Thing.ThingName}/*",`, "", 1)
	if noSub == telemetry {
		t.Fatal("policy edit did not apply")
	}
	if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(noSub), true); err != nil {
		t.Fatal(err)
	}
	f.caughtUp(t)
	c2, resumed := f.connectSession(t, "s-1")
	if !resumed {
		t.Fatal("the session was not resumed; the test needs CleanStart false to keep it")
	}
	cl, ok := f.broker.Server().Clients.Get("s-1")
	if !ok {
		t.Fatal("no client s-1 on the server")
	}
	_, kept := cl.State.Subscriptions.Get(filter)
	_, other := cl.State.Subscriptions.Get("commands/#")
	if !other {
		t.Fatal("an allowed subscription of the resumed session was dropped")
	}
	if kept {
		t.Fatal("a resumed session kept a subscription its policy forbids")
	}
	// Nor is anything delivered under it: the server publishes in order,
	// so commands/ping arriving proves things/s-1/cmd was not sent.
	if err := f.broker.Server().Publish("things/s-1/cmd", []byte("x"), false, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.broker.Server().Publish("commands/ping", []byte("x"), false, 0); err != nil {
		t.Fatal(err)
	}
	c2.waitFor(t, "commands/ping")
	for _, m := range c2.messages() {
		if m.Topic == "things/s-1/cmd" {
			t.Error("delivered under a subscription the policy no longer allows")
		}
	}
}

// TestRetainedNeedsReceive: retained messages are delivered at SUBSCRIBE
// time, outside any PUBLISH; each still passes iot:Receive
// (hook.OnACLCheck), so a wildcard subscription does not fetch a retained
// message on a topic the subscriber may not receive.
func TestRetainedNeedsReceive(t *testing.T) {
	f := newFixture(t, time.Hour)
	for _, topic := range []string{"commands/firmware", "commands/config"} {
		if err := f.broker.Server().Publish(topic, []byte("retained "+topic), true, 0); err != nil {
			t.Fatal(err)
		}
	}
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	if got := subscribe(t, s1, "commands/#"); got != 1 {
		t.Fatalf("SUBACK = %#x", got)
	}
	s1.waitFor(t, "commands/config")
	// mochi queues the retained messages after it writes the SUBACK, in
	// the connection's read loop; a second SUBSCRIBE is handled by that
	// loop after the first is done, so a sentinel published once its
	// SUBACK is back is queued after every retained message, and its
	// arrival proves the denied one was not sent.
	if got := subscribe(t, s1, "things/s-1/temp"); got != 1 {
		t.Fatalf("SUBACK for the sentinel = %#x", got)
	}
	if err := f.broker.Server().Publish("things/s-1/temp", []byte("sentinel"), false, 0); err != nil {
		t.Fatal(err)
	}
	s1.waitFor(t, "things/s-1/temp")
	for _, m := range s1.messages() {
		if m.Topic == "commands/firmware" {
			t.Error("retained message on a topic denied for iot:Receive was delivered")
		}
	}
}

// TestLiteralSubscribeNeedsReceive: mochi asks one callback, with the same
// arguments, for SUBSCRIBE and for delivery. A literal filter is decided by
// iot:Subscribe and iot:Receive together (hook.subscribeAllowed), so the
// two can never be mistaken for each other to the client's advantage; a
// wildcard filter is decided by iot:Subscribe and each delivery by
// iot:Receive.
func TestLiteralSubscribeNeedsReceive(t *testing.T) {
	f := newFixture(t, time.Hour)
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	// topicfilter/things/s-1/* allows both filters; topic/*/firmware is
	// denied for iot:Receive.
	if got := subscribe(t, s1, "things/s-1/firmware"); got != 0x87 {
		t.Errorf("SUBACK for a literal filter without iot:Receive = %#x, want 0x87", got)
	}
	if got := subscribe(t, s1, "things/s-1/+"); got != 1 {
		t.Errorf("SUBACK for things/s-1/+ = %#x, want 1", got)
	}
	for _, topic := range []string{"things/s-1/firmware", "things/s-1/temp"} {
		if err := f.broker.Server().Publish(topic, []byte("x"), false, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The server publishes in order on one connection: things/s-1/temp,
	// published after things/s-1/firmware, is the sentinel whose arrival
	// proves the firmware message was not sent.
	s1.waitFor(t, "things/s-1/temp")
	for _, m := range s1.messages() {
		if m.Topic == "things/s-1/firmware" {
			t.Error("delivered a topic denied for iot:Receive")
		}
	}
}

// TestWillRevokedByPolicyChange: a will allowed at CONNECT is withheld when
// a policy change forbids its topic while the client is connected (the
// session is re-bound by follow.go and OnWill checks the will as it is
// sent), so an abrupt disconnect does not publish it, not even to a
// subscriber of the topic it is re-addressed to.
func TestWillRevokedByPolicyChange(t *testing.T) {
	f := newFixture(t, time.Hour)
	obs := f.thingsObserver(t)
	subscribe(t, obs, "$gatehouse/withheld-will")
	// Control: an allowed will goes out when s-2 drops.
	c2, code, err := f.connect("s-2", "s-2", []byte(f.token("s-2", "mqtt")), &paho.WillMessage{Topic: "things/s-2/status", Payload: []byte("gone")})
	if err != nil || code != 0 {
		t.Fatalf("connect s-2: %#x %v", code, err)
	}
	c1, code, err := f.connect("s-1", "s-1", []byte(f.token("s-1", "mqtt")), &paho.WillMessage{Topic: "things/s-1/status", Payload: []byte("gone")})
	if err != nil || code != 0 {
		t.Fatalf("connect s-1: %#x %v", code, err)
	}
	ctx := events.WithActor(context.Background(), "test")
	noStatus := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}`, `"Resource":["topic/*/firmware","topic/things/s-1/status"]}`, 1)
	if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(noStatus), true); err != nil {
		t.Fatal(err)
	}
	// Wait for the live session to pick the version up (the probe's
	// payload is not the will's).
	testenv.Eventually(t, 10*time.Second, "the policy change reaching the live session", func() bool { return publish(t, c1, "things/s-1/status", 1, false) != 0 })
	// Abrupt disconnects: wills fire for both, if allowed.
	cl1, _ := f.broker.Server().Clients.Get("s-1")
	cl2, _ := f.broker.Server().Clients.Get("s-2")
	cl1.Net.Conn.Close()
	cl2.Net.Conn.Close()
	obs.waitFor(t, "things/s-2/status")
	// mochi sends a will before it marks the client closed; once both are
	// gone, a sentinel published now is queued to the observer after any
	// will, and its arrival proves what was not sent.
	f.waitGone(t, "s-1")
	f.waitGone(t, "s-2")
	if err := f.broker.Server().Publish("things/sentinel", []byte("x"), false, 0); err != nil {
		t.Fatal(err)
	}
	obs.waitFor(t, "things/sentinel")
	for _, m := range obs.messages() {
		if m.Topic == "things/s-1/status" && string(m.Payload) == "gone" {
			t.Error("a will the policy no longer allows was published")
		}
		if m.Topic == "$gatehouse/withheld-will" {
			t.Errorf("a withheld will was delivered to a subscriber: %q", m.Payload)
		}
	}
	_ = c2
	var sawWill bool
	for _, m := range obs.messages() {
		sawWill = sawWill || (m.Topic == "things/s-2/status" && string(m.Payload) == "gone")
	}
	if !sawWill {
		t.Error("the control will of s-2 was not published")
	}
}

// TestOneAuthorizationHook: mochi ORs OnConnectAuthenticate and OnACLCheck
// across hooks, so any allow-all hook (auth.AllowHook, the ledger with no
// matching rule) next to Gatehouse's would open the broker. The broker
// package registers exactly one hook and never imports mochi's auth hooks.
func TestOneAuthorizationHook(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	hooks := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if strings.Contains(imp.Path.Value, "mochi-mqtt/server/v2/hooks") {
				t.Errorf("%s imports %s: no mochi hook may share the broker with Gatehouse's", name, imp.Path.Value)
			}
		}
		hooks += strings.Count(string(src), ".AddHook(")
	}
	// Gatehouse's hook, and the cluster hook, which decides nothing
	// (TestClusterHookDecidesNothing).
	if hooks != 2 {
		t.Errorf("the broker package calls AddHook %d times, want exactly 2 (Gatehouse's hook and the cluster hook)", hooks)
	}
}
