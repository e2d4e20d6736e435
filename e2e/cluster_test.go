package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// startClusterReplicas starts n replicas on one fresh PostgreSQL schema
// (as startReplicas) that also form one embedded NATS cluster: each gets
// its own route listener and every replica's routes. The last noMQTT of
// them have no MQTT listeners (HTTP only). It also returns each one's
// arguments, to restart it.
func startClusterReplicas(t *testing.T, n, noMQTT int) ([]*server, [][]string) {
	t.Helper()
	dsn := storetest.PostgresDSN(t) // skips without GATEHOUSE_TEST_POSTGRES
	shared := t.TempDir()
	routes := routePorts(t, n)
	var out []*server
	var argv [][]string
	for i := range n {
		cfg := filepath.Join(shared, fmt.Sprintf("gatehouse-%d.yaml", i))
		yaml := fmt.Sprintf("secrets:\n  masterKeyFile: %s\ncluster:\n  nats:\n    replicas: %d\n    embedded:\n      name: replica-%d\n      listen: %s\n      routePassword: route-secret\n      routes: [%s]\n",
			filepath.Join(shared, "master.key"), min(n, 3), i, routes[i], strings.Join(routes, ", "))
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--config", cfg, "--data-dir", t.TempDir(), "--dsn", dsn, "--external-url", replicaIssuer}
		httpOnly := i >= n-noMQTT
		if httpOnly {
			args = append(args, "--mqtt-addr=", "--ws-addr=", "--mqtts-addr=")
		}
		s := startServer(t, args...)
		if s.URL == "" || (s.MQTT == "") != httpOnly {
			t.Fatalf("replica %d banner lacks http or has the wrong mqtt listeners:\n%s", i, s.Stdout())
		}
		if i == 0 {
			if s.Token == "" {
				t.Fatalf("first replica did not bootstrap:\n%s", s.Stdout())
			}
		} else {
			s.Token = out[0].Token
		}
		out, argv = append(out, s), append(argv, args)
	}
	// Until JetStream is up QoS 1 crosses over core NATS: wait, so that
	// the tests go through the stream and the retained bucket.
	for _, s := range out {
		waitJoined(t, s)
	}
	return out, argv
}

// waitJoined waits until a replica logs that it joined the cluster with
// JetStream (the stream and the retained bucket).
func waitJoined(t *testing.T, s *server) {
	t.Helper()
	took := testenv.Eventually(t, 60*time.Second, "replica joins the cluster", func() bool {
		return strings.Contains(s.Stderr(), "cluster: joined")
	})
	t.Logf("%s joined the cluster after a further %v", s.URL, took)
}

// routePorts picks n free loopback addresses below the ephemeral port
// range, so that no listener of the replicas started meanwhile on port 0
// is given one of them before its NATS server binds it.
func routePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for port := 20000 + os.Getpid()%8000; len(out) < n && port < 32000; port++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		out = append(out, ln.Addr().String())
		ln.Close()
	}
	if len(out) < n {
		t.Fatal("no free route ports")
	}
	return out
}

// received is one message a cluster test client got.
type received struct {
	topic, payload string
	qos            byte
	props          *paho.PublishProperties
}

// clusterClient is an MQTT 5 connection that records what it receives.
type clusterClient struct {
	*mqtt5Client
	msgs chan received
}

// clusterConnect connects clientID to s with a token as password, clean
// start.
func clusterConnect(t *testing.T, s *server, clientID, token string) *clusterClient {
	t.Helper()
	m, _ := clusterConnectSession(t, s, clientID, token, false, nil)
	return m
}

// clusterConnectSession connects clientID to s, with clean start false and
// a session expiry of 5 minutes if persistent, and a will if not nil, and
// reports whether the CONNACK said a session was present.
func clusterConnectSession(t *testing.T, s *server, clientID, token string, persistent bool, will *paho.WillMessage) (*clusterClient, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	m := &clusterClient{mqtt5Client: &mqtt5Client{gone: make(chan *paho.Disconnect, 1)}, msgs: make(chan received, 100)}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		// A PUBACK can wait up to 15s for the stream while NATS elects a
		// new leader after a replica was killed (paho's default is 10s).
		PacketTimeout: 30 * time.Second,
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case m.gone <- d:
			default:
			}
		},
		OnClientError: func(error) {},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m.msgs <- received{pr.Packet.Topic, string(pr.Packet.Payload), pr.Packet.QoS, pr.Packet.Properties}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, Username: clientID, UsernameFlag: true, Password: []byte(token), PasswordFlag: true, KeepAlive: 30, CleanStart: !persistent,
		WillMessage: will}
	if persistent {
		expiry := uint32(300)
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	ca, err := m.c.Connect(ctx, cp)
	if ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s to %s: %v %v", clientID, s.MQTT, ca, err)
	}
	t.Cleanup(func() { _ = m.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return m, ca.SessionPresent
}

func (m *clusterClient) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] > 1 {
		t.Fatalf("subscribe %s: %v %v", filter, sa, err)
	}
}

func (m *clusterClient) send(t *testing.T, topic, payload string, qos byte, retain bool) {
	t.Helper()
	// The PUBACK waits for the stream, up to 15s while NATS elects a new
	// leader after a replica was killed.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pr, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if err != nil || (pr != nil && pr.ReasonCode != 0) {
		t.Fatalf("publish %s: %v %v", topic, pr, err)
	}
}

// takenOver waits for the server to close the client's connection with
// 0x8E (session taken over); what is the failure if it does not.
func (m *clusterClient) takenOver(t *testing.T, what string) {
	t.Helper()
	select {
	case d := <-m.gone:
		if d.ReasonCode != 0x8E {
			t.Errorf("%s: disconnected with %#x, want 0x8E", what, d.ReasonCode)
		}
	case <-time.After(15 * time.Second):
		t.Fatal(what)
	}
}

// next returns the next message the client received.
func (m *clusterClient) next(t *testing.T, what string) received {
	t.Helper()
	select {
	case r := <-m.msgs:
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing received within 30s", what)
		return received{}
	}
}

// expect checks that the next message is topic/payload.
func (m *clusterClient) expect(t *testing.T, what, topic, payload string) received {
	t.Helper()
	got := m.next(t, what)
	if got.topic != topic || got.payload != payload {
		t.Fatalf("%s: got %s %q, want %s %q", what, got.topic, got.payload, topic, payload)
	}
	return got
}

// httpsPublishBody publishes payload over HTTPS with QoS and retain.
func httpsPublishBody(t *testing.T, s *server, topic, token, payload, query string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/topics/"+topic+"?"+query, strings.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClusterReplicas runs four replicas on one PostgreSQL with the
// embedded NATS cluster (D without MQTT listeners) and checks that they are
// one MQTT system: QoS 0 and 1 over MQTT and HTTPS publish (D's too) cross
// replicas, iot:Receive is
// checked on the subscriber's replica, retained messages are cluster-wide,
// a client id is taken over across replicas, and delivery goes on when a
// replica is killed with SIGKILL.
func TestClusterReplicas(t *testing.T) {
	rs, argv := startClusterReplicas(t, 4, 1)
	a, b, c, d := rs[0], rs[1], rs[2], rs[3]
	a.admin(t, "POST", "/api/v1/policies", `{"name":"cl-pub","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":["iot:Publish","iot:RetainPublish"],"Resource":"topic/cl/*"}]}}`, 201)
	// Subscribers may subscribe to everything under cl/ but receive only
	// cl/ok and cl/ret: cl/secret is for someone else.
	a.admin(t, "POST", "/api/v1/policies", `{"name":"cl-sub","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/cl/*"},
	  {"Effect":"Allow","Action":"iot:Receive","Resource":["topic/cl/ok","topic/cl/ret"]}]}}`, 201)
	a.admin(t, "POST", "/api/v1/thing-types", `{"name":"clpub","scopes":["publish"],"defaultPolicies":["cl-pub"]}`, 201)
	a.admin(t, "POST", "/api/v1/thing-types", `{"name":"clsub","scopes":["read"],"defaultPolicies":["cl-sub"]}`, 201)
	secrets := map[string]string{}
	for thing, typ := range map[string]string{"pub": "clpub", "pub2": "clpub", "sub1": "clsub", "sub2": "clsub", "sub3": "clsub", "sub4": "clsub"} {
		a.admin(t, "POST", "/api/v1/things", `{"name":"`+thing+`","thingType":"`+typ+`"}`, 201)
		secrets[thing] = a.admin(t, "POST", "/api/v1/things/"+thing+"/secret", "", 201)["clientSecret"].(string)
	}
	token := func(s *server, thing, scope string) string {
		return clientCredentials(t, s, thing, secrets[thing], scope)
	}
	pubTok := token(b, "pub", "publish")

	subA := clusterConnect(t, a, "sub1", token(a, "sub1", "read"))
	subA.subscribe(t, "cl/+")
	pubB := clusterConnect(t, b, "pub", pubTok)

	// The cluster forms asynchronously: publish QoS 1 from B until A's
	// subscriber has one, then drain the repeats with a sentinel.
	deadline := time.Now().Add(60 * time.Second)
	for got := false; !got; {
		pubB.send(t, "cl/ok", "hello", 1, false)
		select {
		case <-subA.msgs:
			got = true
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no message from B reached A's subscriber within 60s")
			}
		}
	}
	pubB.send(t, "cl/ok", "drained", 1, false)
	for subA.next(t, "draining").payload != "drained" {
	}

	// For the record (no assertion): QoS 1 from B's publisher to A's
	// subscriber, PUBACK included (the stream acknowledges first).
	var total, worst time.Duration
	const rounds = 20
	for i := range rounds {
		start := time.Now()
		pubB.send(t, "cl/ok", fmt.Sprintf("timed %d", i), 1, false)
		subA.expect(t, "timed QoS 1 from B", "cl/ok", fmt.Sprintf("timed %d", i))
		d := time.Since(start)
		total, worst = total+d, max(worst, d)
	}
	t.Logf("QoS 1 B->A publish to delivery: mean %v, max %v over %d", total/rounds, worst, rounds)

	// QoS 1 and QoS 0 over MQTT from B reach A's subscriber.
	pubB.send(t, "cl/ok", "qos1", 1, false)
	if got := subA.expect(t, "QoS 1 from B", "cl/ok", "qos1"); got.qos != 1 {
		t.Errorf("QoS 1 from B delivered with QoS %d", got.qos)
	}
	pubB.send(t, "cl/ok", "qos0", 0, false)
	subA.expect(t, "QoS 0 from B", "cl/ok", "qos0")
	// MQTT 5 properties travel with the message.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := pubB.c.Publish(ctx, &paho.Publish{Topic: "cl/ok", QoS: 1, Payload: []byte("props"), Properties: &paho.PublishProperties{
		ContentType: "text/plain", ResponseTopic: "cl/reply", CorrelationData: []byte{7}, User: paho.UserProperties{{Key: "trace", Value: "abc"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := subA.expect(t, "QoS 1 with properties from B", "cl/ok", "props"); got.props == nil || got.props.ContentType != "text/plain" ||
		got.props.ResponseTopic != "cl/reply" || string(got.props.CorrelationData) != "\x07" || got.props.User.Get("trace") != "abc" {
		t.Errorf("properties across replicas: got %+v", got.props)
	}

	// iot:Receive is checked on A for A's subscriber: cl/secret, published
	// on B (which allows the publish), never arrives; the sentinel after it
	// does, first.
	pubB.send(t, "cl/secret", "not for sub1", 1, false)
	pubB.send(t, "cl/ok", "sentinel", 1, false)
	subA.expect(t, "after a message A's subscriber may not receive", "cl/ok", "sentinel")

	// HTTPS publish on C reaches A's subscriber, QoS 1 and QoS 0.
	if code := httpsPublishBody(t, c, "cl/ok", pubTok, "https1", "qos=1"); code != 200 {
		t.Fatalf("HTTPS publish on C = %d", code)
	}
	subA.expect(t, "HTTPS QoS 1 on C", "cl/ok", "https1")
	if code := httpsPublishBody(t, c, "cl/ok", pubTok, "https0", "qos=0"); code != 200 {
		t.Fatalf("HTTPS publish on C = %d", code)
	}
	subA.expect(t, "HTTPS QoS 0 on C", "cl/ok", "https0")
	// D has no MQTT listener: its HTTPS publishes go to the cluster.
	if code := httpsPublishBody(t, d, "cl/ok", pubTok, "from D", "qos=1"); code != 200 {
		t.Fatalf("HTTPS publish on D = %d", code)
	}
	subA.expect(t, "HTTPS on D, a replica without MQTT listeners", "cl/ok", "from D")

	// A retained message set on B is what a new subscriber on C gets.
	pubB.send(t, "cl/ret", "lamp on", 1, true)
	subA.expect(t, "retained publish on B, live", "cl/ret", "lamp on")
	sub2Tok := token(c, "sub2", "read")
	subC, _ := clusterConnectSession(t, c, "sub2", sub2Tok, true, nil)
	subC.subscribe(t, "cl/ret")
	subC.expect(t, "retained message set on B, subscribing on C", "cl/ret", "lamp on")
	// Cleared on B, cleared everywhere: a new subscription on A gets the
	// sentinel first, not the old retained message.
	pubB.send(t, "cl/ret", "", 1, true)
	subA.expect(t, "retained clear on B, live", "cl/ret", "")
	subC.expect(t, "retained clear on B, live on C", "cl/ret", "")
	// sub2 (a persistent session on C) connects on A: C's connection
	// under the same client id is taken over (0x8E), and C ends its
	// session there, so that it does not queue messages nobody collects:
	// coming back to C, sub2 finds no session present.
	subA2 := clusterConnect(t, a, "sub2", sub2Tok)
	subC.takenOver(t, "sub2 connected on A stayed connected on C")
	// (C ends it once the connection is closed, just after the 0x8E.)
	testenv.Eventually(t, 10*time.Second, "C ends sub2's session", func() bool {
		return strings.Contains(c.Stderr(), "session ended: client id taken over on another replica")
	})
	back, present := clusterConnectSession(t, c, "sub2", sub2Tok, true, nil)
	if present {
		t.Error("sub2's session taken over on A was still present on C")
	}
	subA2.takenOver(t, "sub2 back on C stayed connected on A")
	_ = back.c.Disconnect(&paho.Disconnect{})
	subA2 = clusterConnect(t, a, "sub2", sub2Tok)
	subA2.subscribe(t, "cl/ret")
	pubB.send(t, "cl/ret", "sentinel", 1, false)
	subA2.expect(t, "subscribing on A after the clear on B", "cl/ret", "sentinel")
	subA.expect(t, "sentinel on the first subscriber", "cl/ret", "sentinel")

	// A persistent session moves with its client: sub4, subscribed on A,
	// connects on B with clean start false. A's connection is taken over
	// (0x8E); B resumes the session from the cluster (session present),
	// so sub4 receives there without subscribing again.
	sub4Tok := token(a, "sub4", "read")
	sub4A, _ := clusterConnectSession(t, a, "sub4", sub4Tok, true, nil)
	sub4A.subscribe(t, "cl/ok")
	sub4B, present := clusterConnectSession(t, b, "sub4", sub4Tok, true, nil)
	if !present {
		t.Error("sub4's session from A not present on B")
	}
	sub4A.takenOver(t, "sub4 connected on B stayed connected on A")
	pubB.send(t, "cl/ok", "to sub4 on B", 1, false)
	sub4B.expect(t, "sub4's subscription resumed on B", "cl/ok", "to sub4 on B")
	subA.expect(t, "the first subscriber too", "cl/ok", "to sub4 on B")
	// sub4 leaves B (its session stays there, offline), then connects on
	// A with clean start: the session is discarded everywhere, so coming
	// back persistent on C, it has none.
	_ = sub4B.c.Disconnect(&paho.Disconnect{})
	sub4Clean := clusterConnect(t, a, "sub4", sub4Tok)
	testenv.Eventually(t, 10*time.Second, "B ends sub4's offline session", func() bool {
		return strings.Contains(b.Stderr(), "offline session ended: client id connected on another replica")
	})
	_ = sub4Clean.c.Disconnect(&paho.Disconnect{})
	if _, present := clusterConnectSession(t, c, "sub4", sub4Tok, true, nil); present {
		t.Error("sub4's session present on C after a clean start on A")
	}

	// A client id taken over across replicas: its will is published by the
	// replica that loses it, and reaches subscribers everywhere.
	pub2Tok := token(c, "pub2", "publish")
	willOnC, _ := clusterConnectSession(t, c, "pub2", pub2Tok, false, &paho.WillMessage{Topic: "cl/ok", Payload: []byte("pub2's will"), QoS: 1})
	clusterConnect(t, a, "pub2", pub2Tok)
	willOnC.takenOver(t, "pub2 connected on A stayed connected on C")
	subA.expect(t, "the will of pub2 taken over from C", "cl/ok", "pub2's will")

	// A's connections view shows pub's connection on B, labelled.
	items, _ := a.admin(t, "GET", "/api/v1/things/pub/connections", "", 200)["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["replica"] != "replica-1" || items[0].(map[string]any)["clientId"] != "pub" {
		t.Errorf("A's connections of pub = %v, want its one connection on replica-1", items)
	}

	// Each replica's metrics carry its name.
	if code, body := curl(t, "GET", b.URL+"/metrics", "", ""); code != 200 || !strings.Contains(body, `gatehouse_things{replica="replica-1"}`) {
		t.Errorf("B's /metrics = %d, lacks replica=\"replica-1\" on gatehouse_things", code)
	}

	// kill -9 of C: B's messages keep reaching A, QoS 1 through the
	// stream that C was keeping a copy of.
	sub3Tok := token(c, "sub3", "read")
	onC, _ := clusterConnectSession(t, c, "sub3", sub3Tok, true, nil)
	onC.subscribe(t, "cl/ok")
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	for i := range 5 {
		pubB.send(t, "cl/ok", fmt.Sprintf("after kill %d", i), 1, false)
		subA.expect(t, "QoS 1 from B after C was killed", "cl/ok", fmt.Sprintf("after kill %d", i))
	}
	if code := httpsPublishBody(t, b, "cl/ok", pubTok, "https after kill", url.Values{"qos": {"1"}}.Encode()); code != 200 {
		t.Fatalf("HTTPS publish on B after the kill = %d", code)
	}
	subA.expect(t, "HTTPS on B after C was killed", "cl/ok", "https after kill")

	// C's client reconnects to B with clean start false: B resumes its
	// session from the cluster (session present, its subscription kept;
	// what was queued on C is not carried, docs/deploy.md), so it
	// receives what is published on D without subscribing again.
	onB, present := clusterConnectSession(t, b, "sub3", sub3Tok, true, nil)
	if !present {
		t.Error("sub3's session from the killed C not present on B")
	}
	if code := httpsPublishBody(t, d, "cl/ok", pubTok, "to sub3 on B", "qos=1"); code != 200 {
		t.Fatalf("HTTPS publish on D after the kill = %d", code)
	}
	onB.expect(t, "C's client reconnected to B", "cl/ok", "to sub3 on B")
	subA.expect(t, "A's subscriber too", "cl/ok", "to sub3 on B")

	// A retained message set while C is down is there when C comes back
	// (the bucket), once C has rejoined.
	pubB.send(t, "cl/ret", "set while C was down", 1, true)
	subA.expect(t, "retained set while C was down", "cl/ret", "set while C was down")
	c2 := startServer(t, argv[2]...)
	waitJoined(t, c2)
	late := clusterConnect(t, c2, "sub2", sub2Tok)
	late.subscribe(t, "cl/ret")
	late.expect(t, "retained message on the restarted C", "cl/ret", "set while C was down")
}
