package authorizer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// rabbitMQTTAddr is RabbitMQ's MQTT listener as scripts/rabbitmq-test-setup.sh
// configures it (Mosquitto holds 1883 here).
func rabbitMQTTAddr() string {
	if a := os.Getenv("GATEHOUSE_TEST_RABBITMQ_MQTT"); a != "" {
		return a
	}
	return "127.0.0.1:11883"
}

// rabbitManagementURL is RabbitMQ's management API as
// scripts/rabbitmq-test-setup.sh enables it (guest/guest).
func rabbitManagementURL() string {
	if u := os.Getenv("GATEHOUSE_TEST_RABBITMQ_MANAGEMENT"); u != "" {
		return u
	}
	return "http://127.0.0.1:15672"
}

// rabbitKnows tells whether the management API's statistics show a
// connection of username with the MQTT client id.
func rabbitKnows(t *testing.T, username, clientID string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rabbitManagementURL()+"/api/connections?columns=user,client_properties", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var conns []struct {
		User             string `json:"user"`
		ClientProperties struct {
			ClientID string `json:"client_id"`
		} `json:"client_properties"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if c.User == username && c.ClientProperties.ClientID == clientID {
			return true
		}
	}
	return false
}

// rabbitctl runs rabbitmqctl eval and returns its output.
func rabbitctl(t *testing.T, expr string) (string, error) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "eval", expr).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl eval: %w: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestRabbitMQEndToEnd points a real RabbitMQ (rabbitmq_mqtt +
// rabbitmq_auth_backend_http, see scripts/rabbitmq-test-setup.sh) at the
// adapters and drives it with a real MQTT 3.1.1 client, the access token
// as password. RabbitMQ's settings are changed at runtime and restored.
func TestRabbitMQEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	addr := rabbitMQTTAddr()
	// `make test` prepares RabbitMQ (scripts/test-deps.sh) and sets
	// GATEHOUSE_TEST_RABBITMQ_REQUIRED=1, so there a missing broker fails
	// the test instead of skipping it.
	skip := t.Skipf
	if os.Getenv("GATEHOUSE_TEST_RABBITMQ_REQUIRED") == "1" {
		skip = t.Fatalf
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		skip("rabbitmqctl not installed")
	}
	if !reachable(addr) {
		skip("RabbitMQ MQTT listener %s unreachable (run scripts/rabbitmq-test-setup.sh)", addr)
	}
	savedBackends, err := rabbitctl(t, `application:get_env(rabbit, auth_backends, [rabbit_auth_backend_internal]).`)
	if err != nil {
		t.Skipf("cannot configure RabbitMQ: %v", err)
	}
	savedHTTP, err := rabbitctl(t, `application:get_all_env(rabbitmq_auth_backend_http).`)
	if err != nil {
		t.Skipf("cannot configure RabbitMQ: %v", err)
	}
	if strings.Contains(savedBackends, "rabbit_auth_backend_http") {
		t.Skip("RabbitMQ already uses the HTTP backend (another run in progress?)")
	}
	t.Cleanup(func() {
		if _, err := rabbitctl(t, fmt.Sprintf(`lists:foreach(fun({K, V}) -> application:set_env(rabbitmq_auth_backend_http, K, V) end, %s), application:set_env(rabbit, auth_backends, %s).`, savedHTTP, savedBackends)); err != nil {
			t.Errorf("restore RabbitMQ configuration: %v", err)
		}
	})

	// The adapters close connections through the management API when a
	// token is revoked, a thing disabled or a credential expires; the
	// adapters' clock is the test's, to let credentials expire.
	var offset atomic.Int64
	f := newFixture(t, func(c *authorizer.Config) {
		c.RabbitMQManagement = authorizer.RabbitMQManagement{URL: rabbitManagementURL(), Username: "guest", Password: "guest"}
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = f.adapters.Run(ctx); close(ran) }()
	t.Cleanup(func() { stop(); <-ran })
	if !reachable(strings.TrimPrefix(rabbitManagementURL(), "http://")) {
		skip("RabbitMQ management API %s unreachable (run scripts/rabbitmq-test-setup.sh)", rabbitManagementURL())
	}
	base := f.http.URL + "/authorizer/rabbitmq/"
	q := "?" + authorizer.KeyParam + "=" + testKey
	set := fmt.Sprintf(`application:set_env(rabbitmq_auth_backend_http, http_method, post),
		application:set_env(rabbitmq_auth_backend_http, user_path, %q),
		application:set_env(rabbitmq_auth_backend_http, vhost_path, %q),
		application:set_env(rabbitmq_auth_backend_http, resource_path, %q),
		application:set_env(rabbitmq_auth_backend_http, topic_path, %q),
		application:set_env(rabbit, auth_backends, [rabbit_auth_backend_http, rabbit_auth_backend_internal]).`,
		base+"user"+q, base+"vhost"+q, base+"resource"+q, base+"topic"+q)
	if _, err := rabbitctl(t, set); err != nil {
		t.Fatal(err)
	}

	tok1, tok2 := f.token("s-1"), f.token("s-2")
	connect := func(clientID, username, password string) (mqtt.Client, error) {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
			SetUsername(username).SetPassword(password).SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetCleanSession(true)
		c := mqtt.NewClient(opts)
		tk := c.Connect()
		if !tk.WaitTimeout(15 * time.Second) {
			return nil, fmt.Errorf("connect timed out")
		}
		if err := tk.Error(); err != nil {
			return nil, err
		}
		return c, nil
	}

	if _, err := connect("s-1", "s-1", "not-a-token"); err == nil {
		t.Fatal("connect with a bad token succeeded")
	}
	if _, err := connect("s-2", "s-2", tok1); err == nil {
		t.Fatal("connect as s-2 with s-1's token succeeded")
	}

	// RabbitMQ sends the client id: iot:Connect allows only client/s-1.
	if _, err := connect("not-s-1", "s-1", tok1); err == nil {
		t.Fatal("connect with a client id the policy refuses succeeded")
	}

	sub, err := connect("s-2", "s-2", tok2)
	if err != nil {
		t.Fatalf("s-2 connect: %v", err)
	}
	defer sub.Disconnect(100)
	var (
		mu  sync.Mutex
		got []string
	)
	record := func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got = append(got, m.Topic()+"="+string(m.Payload()))
		mu.Unlock()
	}
	// s-2 may read commands/#; subscribing to s-1's topics is refused
	// (RabbitMQ 3.10 answers SUBACK 0x80 for a refused filter).
	if tk := sub.Subscribe("commands/#", 1, record); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe commands/#: %v", tk.Error())
	}
	st := sub.Subscribe("things/s-1/#", 1, record)
	st.WaitTimeout(10 * time.Second)
	if r := st.(*mqtt.SubscribeToken).Result()["things/s-1/#"]; r != 0x80 && st.Error() == nil && sub.IsConnectionOpen() {
		t.Errorf("subscribe to another thing's topics: granted qos %d", r)
	}
	if !sub.IsConnectionOpen() {
		// Some versions close the connection instead; reconnect.
		if sub, err = connect("s-2", "s-2", tok2); err != nil {
			t.Fatal(err)
		}
		defer sub.Disconnect(100)
		if tk := sub.Subscribe("commands/#", 1, record); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("subscribe commands/#: %v", tk.Error())
		}
	}

	// '+' travels as '*' and '/' as '.': s-2 subscribes to its own
	// things/s-2/+ and receives its own publish.
	if tk := sub.Subscribe("things/s-2/+", 1, record); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe things/s-2/+: %v", tk.Error())
	}
	if tk := sub.Publish("things/s-2/temp", 1, false, "21.5"); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("publish things/s-2/temp: %v", tk.Error())
	}

	pub, err := connect("s-1", "s-1", tok1)
	if err != nil {
		t.Fatalf("s-1 connect: %v", err)
	}
	defer pub.Disconnect(100)
	if tk := pub.Publish("commands/reboot", 1, false, "allowed"); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("allowed publish: %v", tk.Error())
	}
	received := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == want {
				return true
			}
		}
		return false
	}
	waitFor := func(what, want string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, what+" ("+want+")", func() bool { return received(want) })
	}
	waitFor("own publish delivered through things/s-2/+", "things/s-2/temp=21.5")
	waitFor("allowed publish delivered", "commands/reboot=allowed")

	// A publish the policy denies (explicit Deny on */firmware): RabbitMQ
	// closes the MQTT 3.1.1 connection and delivers nothing.
	pub.Publish("commands/firmware", 1, false, "denied").WaitTimeout(5 * time.Second)
	testenv.Eventually(t, 10*time.Second, "the connection closed after a denied publish", func() bool { return !pub.IsConnectionOpen() })
	// RabbitMQ routed the denied message, if at all, before it closed the
	// connection; a sentinel published now reaches s-2's queue after it,
	// and its arrival proves the denied one was not delivered.
	again, err := connect("s-1", "s-1", tok1)
	if err != nil {
		t.Fatalf("s-1 reconnect: %v", err)
	}
	defer again.Disconnect(100)
	if tk := again.Publish("commands/reboot", 1, false, "sentinel"); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("sentinel publish: %v", tk.Error())
	}
	waitFor("sentinel delivered", "commands/reboot=sentinel")
	mu.Lock()
	for _, g := range got {
		if strings.HasPrefix(g, "commands/firmware") {
			t.Errorf("denied publish delivered: %s", g)
		}
	}
	mu.Unlock()

	// Revoked, disabled, expired: RabbitMQ keeps an open connection
	// whatever its HTTP backend would now answer; the adapters close it
	// through the management API (within about a second: the time is
	// logged, not asserted).
	closed := func(what string, c mqtt.Client) {
		t.Helper()
		took := testenv.Eventually(t, 15*time.Second, "connection closed after "+what, func() bool { return !c.IsConnectionOpen() })
		t.Logf("%s: connection closed in %s", what, took.Round(time.Millisecond))
	}
	tokRevoked := f.token("s-1")
	victim, err := connect("s-1", "s-1", tokRevoked)
	if err != nil {
		t.Fatalf("s-1 connect before revocation: %v", err)
	}
	if err := f.oauth.RevokeAccessToken(t.Context(), tokRevoked); err != nil {
		t.Fatal(err)
	}
	closed("token revoked", victim)
	if _, err := connect("s-1", "s-1", tokRevoked); err == nil {
		t.Error("connect with the revoked token succeeded")
	}

	disabled := "disabled"
	tokDisabled := f.token("s-2")
	victim, err = connect("s-2", "s-2", tokDisabled)
	if err != nil {
		t.Fatalf("s-2 connect before it is disabled: %v", err)
	}
	if _, err := f.reg.UpdateThing(events.WithActor(t.Context(), "test"), "s-2", 0, registry.ThingPatch{State: &disabled}); err != nil {
		t.Fatal(err)
	}
	closed("thing disabled", victim)

	victim, err = connect("s-1", "s-1", f.token("s-1"))
	if err != nil {
		t.Fatalf("s-1 connect before expiry: %v", err)
	}
	// This time RabbitMQ's statistics know the connection first, so it is
	// closed by name after its client id is checked (a younger one closes
	// with all of its user's connections).
	testenv.Eventually(t, 30*time.Second, "RabbitMQ's statistics know s-1's connection", func() bool { return rabbitKnows(t, "s-1", "s-1") })
	offset.Store(int64(2 * time.Hour)) // past the token's expiry (1 h)
	closed("token expired", victim)
}
