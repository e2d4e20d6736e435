package broker_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// userToken gets a person's access token the way the CLI does: the device
// flow with the public gatehouse-cli client, the person approving on the
// verification page with plain HTTP.
func (f *fixture) userToken(username, password string) string {
	t := f.t
	t.Helper()
	post := func(c *http.Client, path string, form url.Values) (int, []byte) {
		resp, err := c.PostForm(f.http.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, b := post(http.DefaultClient, "/oauth2/device/code", url.Values{"client_id": {"gatehouse-cli"}, "scope": {"openid"}})
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
	}
	if status != 200 || json.Unmarshal(b, &da) != nil {
		t.Fatalf("device code: %d %s", status, b)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(f.http.URL + "/device")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	find := func(re string, body []byte) string {
		m := regexp.MustCompile(re).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in page:\n%s", re, body)
		}
		return string(m[1])
	}
	csrf := find(`name="csrf" value="([^"]+)"`, page)
	status, page = post(browser, "/device", url.Values{"csrf": {csrf}, "step": {"login"}, "user_code": {da.UserCode}, "username": {username}, "password": {password}})
	if status != 200 {
		t.Fatalf("device login: %d %s", status, page)
	}
	consent := find(`name="consent" value="([^"]+)"`, page)
	if status, page = post(browser, "/device", url.Values{"csrf": {csrf}, "step": {"decide"}, "user_code": {da.UserCode}, "consent": {consent}, "action": {"approve"}}); status != 200 {
		t.Fatalf("device approve: %d %s", status, page)
	}
	status, b = post(http.DefaultClient, "/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("device token: %d %s", status, b)
	}
	return tok.AccessToken
}

// peopleFixture adds the people policy (attached to all users), users
// alice and bob, and things lamp-1..3 of type sensor: alice owns lamp-1 and
// lamp-2, bob views lamp-1.
func peopleFixture(t *testing.T) *fixture {
	f := newFixture(t, time.Hour)
	ctx := events.WithActor(context.Background(), "test")
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: registry.PeoplePolicyName, Document: []byte(registry.PeoplePolicyDocument)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AttachPolicy(ctx, registry.PeoplePolicyName, store.TargetAllUsers, registry.AllUsersTarget); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := f.reg.CreateUser(ctx, registry.NewUser{Username: u, Password: u + "-password"}); err != nil {
			t.Fatal(err)
		}
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "sensor", "lamp-1", "lamp-2", "lamp-3"))
	for _, r := range []store.Relationship{relate("alice", registry.RelOwner, "lamp-1"), relate("alice", registry.RelOwner, "lamp-2"), relate("bob", registry.RelViewer, "lamp-1")} {
		if _, err := f.reg.AddRelationship(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func relate(user, relation, thing string) store.Relationship {
	return store.Relationship{SubjectKind: store.KindUser, Subject: user, Relation: relation, ObjectKind: store.KindThing, Object: thing}
}

// sent reports whether a message on topic with payload arrived.
func (c *client) sent(topic, payload string) bool {
	for _, m := range c.messages() {
		if m.Topic == topic && string(m.Payload) == payload {
			return true
		}
	}
	return false
}

func publishPayload(t *testing.T, c *client, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if pr == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

func TestPeopleOverMQTT(t *testing.T) {
	f := peopleFixture(t)
	aliceTok := f.userToken("alice", "alice-password")
	bobTok := f.userToken("bob", "bob-password")

	// CONNECT: username is the person, password their token, client id
	// theirs (<user>~...).
	for _, c := range []struct {
		name, clientID, username, token string
		want                            byte
	}{
		{"client id without ~", "alice", "alice", aliceTok, 0x87},
		{"another person's client id", "bob~phone", "alice", aliceTok, 0x87},
		{"a thing's client id", "lamp-1", "alice", aliceTok, 0x87},
		{"username of someone else", "alice~phone", "bob", aliceTok, 0x86},
	} {
		if _, code, _ := f.connect(c.clientID, c.username, []byte(c.token), nil); code != c.want {
			t.Errorf("%s: CONNACK %#x, want %#x", c.name, code, c.want)
		}
	}
	alice := f.mustConnect("alice~phone", "alice", []byte(aliceTok))
	bob, code, err := f.connectOn("ws", "bob~browser", "bob", []byte(bobTok), nil)
	if err != nil || code != 0 {
		t.Fatalf("bob over WebSocket: %#x %v", code, err)
	}
	lamp1 := f.mustConnect("lamp-1", "lamp-1", []byte(f.token("lamp-1", "mqtt")))
	lamp2 := f.mustConnect("lamp-2", "lamp-2", []byte(f.token("lamp-2", "mqtt")))
	lamp3 := f.mustConnect("lamp-3", "lamp-3", []byte(f.token("lamp-3", "mqtt")))
	if got := subscribe(t, lamp1, "things/lamp-1/commands/#"); got != 1 {
		t.Fatalf("lamp-1 subscribe to its commands = %#x", got)
	}

	for _, s := range []struct {
		who    string
		c      *client
		filter string
		want   byte
	}{
		{"alice", alice, "things/lamp-1/telemetry/#", 1},
		{"alice", alice, "things/lamp-2/telemetry/#", 1},
		{"alice", alice, "things/lamp-3/telemetry/#", 0x87},
		{"alice", alice, "things/+/telemetry/#", 0x87},
		{"alice", alice, "#", 0x87},
		{"bob", bob, "things/lamp-1/telemetry/#", 1},
		{"bob", bob, "things/lamp-2/telemetry/#", 0x87},
	} {
		if got := subscribe(t, s.c, s.filter); got != s.want {
			t.Errorf("%s subscribe %s = %#x, want %#x", s.who, s.filter, got, s.want)
		}
	}

	// Telemetry reaches owner and viewer; the third thing's never arrives.
	if got := publishPayload(t, lamp3, "things/lamp-3/telemetry/temp", "t3"); got != 0 {
		t.Fatalf("lamp-3 publish = %#x", got)
	}
	if got := publishPayload(t, lamp1, "things/lamp-1/telemetry/temp", "t1"); got != 0 {
		t.Fatalf("lamp-1 publish = %#x", got)
	}
	alice.waitFor(t, "things/lamp-1/telemetry/temp")
	bob.waitFor(t, "things/lamp-1/telemetry/temp")
	if alice.sent("things/lamp-3/telemetry/temp", "t3") || bob.sent("things/lamp-3/telemetry/temp", "t3") {
		t.Error("lamp-3 telemetry reached a person with no relationship to it")
	}

	// The owner commands; the viewer may not.
	if got := publishPayload(t, alice, "things/lamp-1/commands/on", "from alice"); got != 0 {
		t.Errorf("alice command = %#x, want 0", got)
	}
	lamp1.waitFor(t, "things/lamp-1/commands/on")
	if got := publishPayload(t, bob, "things/lamp-1/commands/off", "from bob"); got != 0x87 {
		t.Errorf("bob command = %#x, want 0x87", got)
	}
	if got := publishPayload(t, alice, "things/lamp-3/commands/on", "x"); got != 0x87 {
		t.Errorf("alice command to lamp-3 = %#x, want 0x87", got)
	}

	// Removing the ownership applies to the live session: the next lamp-1
	// message does not reach alice, and subscribing again is refused.
	ctx := events.WithActor(context.Background(), "test")
	if err := f.reg.RemoveRelationship(ctx, relate("alice", registry.RelOwner, "lamp-1")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the removed relationship applying to alice's live session", func() bool { return subscribe(t, alice, "things/lamp-1/telemetry/temp") == 0x87 })
	if got := publishPayload(t, lamp1, "things/lamp-1/telemetry/temp", "after"); got != 0 {
		t.Fatalf("lamp-1 publish = %#x", got)
	}
	// lamp-2's message is queued for alice after lamp-1's would have been.
	if got := publishPayload(t, lamp2, "things/lamp-2/telemetry/temp", "marker"); got != 0 {
		t.Fatalf("lamp-2 publish = %#x", got)
	}
	alice.waitFor(t, "things/lamp-2/telemetry/temp")
	bob.waitFor(t, "things/lamp-1/telemetry/temp")
	if alice.sent("things/lamp-1/telemetry/temp", "after") {
		t.Error("alice received lamp-1 telemetry after her ownership was removed")
	}
	if got := subscribe(t, alice, "things/lamp-1/telemetry/#"); got != 0x87 {
		t.Errorf("alice subscribe after removal = %#x, want 0x87", got)
	}
	if got := publishPayload(t, alice, "things/lamp-1/commands/on", "x"); got != 0x87 {
		t.Errorf("alice command after removal = %#x, want 0x87", got)
	}

	// Disabling a person disconnects them.
	u, err := f.reg.User(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	disabled := true
	if _, err := f.reg.UpdateUser(ctx, "bob", u.Version, registry.UserPatch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, bob, 0x87, "disabled user was not disconnected")
}

// TestPeopleHTTPSPublish: a person's token publishes commands over HTTPS.
func TestPeopleHTTPSPublish(t *testing.T) {
	f := peopleFixture(t)
	aliceTok := f.userToken("alice", "alice-password")
	bobTok := f.userToken("bob", "bob-password")
	for _, c := range []struct {
		who, token, topic string
		want              int
	}{
		{"owner", aliceTok, "things/lamp-1/commands/on", 200},
		{"viewer", bobTok, "things/lamp-1/commands/on", 403},
		{"no relationship", aliceTok, "things/lamp-3/commands/on", 403},
	} {
		req, _ := http.NewRequest("POST", f.http.URL+"/topics/"+c.topic, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: POST /topics/%s = %d, want %d", c.who, c.topic, resp.StatusCode, c.want)
		}
	}
}

// TestGatewayForChildren: a gateway thing publishes and subscribes for its
// children over its own connection through ${gatehouse:Thing.Children}, not
// for other things; a new child applies live.
func TestGatewayForChildren(t *testing.T) {
	f := peopleFixture(t)
	ctx := events.WithActor(context.Background(), "test")
	gwPolicy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/things/${gatehouse:Thing.Children}/telemetry/*"},
 {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":"topicfilter/things/${gatehouse:Thing.Children}/commands/#"},
 {"Effect":"Allow","Action":["iot:Receive"],"Resource":"topic/things/${gatehouse:Thing.Children}/commands/*"}]}`
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: "gateway", Document: []byte(gwPolicy)}); err != nil {
		t.Fatal(err)
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "sensor", "gw-1"))
	if _, err := f.reg.AttachPolicy(ctx, "gateway", store.TargetThing, "gw-1"); err != nil {
		t.Fatal(err)
	}
	gatewayOf := func(child string) store.Relationship {
		return store.Relationship{SubjectKind: store.KindThing, Subject: "gw-1", Relation: registry.RelGateway, ObjectKind: store.KindThing, Object: child}
	}
	if _, err := f.reg.AddRelationship(ctx, gatewayOf("lamp-2")); err != nil {
		t.Fatal(err)
	}
	alice := f.mustConnect("alice~phone", "alice", []byte(f.userToken("alice", "alice-password")))
	if got := subscribe(t, alice, "things/lamp-2/telemetry/#"); got != 1 {
		t.Fatalf("alice subscribe = %#x", got)
	}
	gw := f.mustConnect("gw-1", "gw-1", []byte(f.token("gw-1", "mqtt")))
	if got := subscribe(t, gw, "things/lamp-2/commands/#"); got != 1 {
		t.Errorf("gateway subscribe for its child = %#x, want 1", got)
	}
	if got := subscribe(t, gw, "things/lamp-3/commands/#"); got != 0x87 {
		t.Errorf("gateway subscribe for a non-child = %#x, want 0x87", got)
	}
	if got := publishPayload(t, gw, "things/lamp-2/telemetry/temp", "via gateway"); got != 0 {
		t.Errorf("gateway publish for its child = %#x, want 0", got)
	}
	if m := alice.waitFor(t, "things/lamp-2/telemetry/temp"); string(m.Payload) != "via gateway" {
		t.Errorf("alice got %q", m.Payload)
	}
	if got := publishPayload(t, alice, "things/lamp-2/commands/dim", "50"); got != 0 {
		t.Errorf("alice command = %#x", got)
	}
	gw.waitFor(t, "things/lamp-2/commands/dim")
	if got := publishPayload(t, gw, "things/lamp-3/telemetry/temp", "x"); got != 0x87 {
		t.Errorf("gateway publish for a non-child = %#x, want 0x87", got)
	}
	// A new child applies to the live connection.
	if _, err := f.reg.AddRelationship(ctx, gatewayOf("lamp-3")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the new child applying to the gateway's live session", func() bool { return subscribe(t, gw, "things/lamp-3/commands/#") == 1 })
}

// TestPeopleThingDeleted: deleting a thing ends its owner's access at once,
// also to a new thing created under the same name.
func TestPeopleThingDeleted(t *testing.T) {
	f := peopleFixture(t)
	ctx := events.WithActor(context.Background(), "test")
	alice := f.mustConnect("alice~phone", "alice", []byte(f.userToken("alice", "alice-password")))
	if got := subscribe(t, alice, "things/lamp-1/telemetry/#"); got != 1 {
		t.Fatalf("subscribe = %#x", got)
	}
	if got := subscribe(t, alice, "things/lamp-2/telemetry/#"); got != 1 {
		t.Fatalf("subscribe = %#x", got)
	}
	if err := f.reg.DeleteThing(ctx, "lamp-1", 0); err != nil {
		t.Fatal(err)
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "sensor", "lamp-1"))
	testenv.Eventually(t, 10*time.Second, "the deleted thing's relationship ceasing to apply to alice's live session", func() bool { return subscribe(t, alice, "things/lamp-1/telemetry/x") == 0x87 })
	newLamp := f.mustConnect("lamp-1", "lamp-1", []byte(f.token("lamp-1", "mqtt")))
	lamp2 := f.mustConnect("lamp-2", "lamp-2", []byte(f.token("lamp-2", "mqtt")))
	if got := publishPayload(t, newLamp, "things/lamp-1/telemetry/temp", "new owner's"); got != 0 {
		t.Fatalf("publish = %#x", got)
	}
	if got := publishPayload(t, lamp2, "things/lamp-2/telemetry/temp", "marker"); got != 0 {
		t.Fatalf("publish = %#x", got)
	}
	alice.waitFor(t, "things/lamp-2/telemetry/temp")
	if alice.sent("things/lamp-1/telemetry/temp", "new owner's") {
		t.Error("alice received telemetry of a new thing that took her deleted thing's name")
	}
}
