package broker_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// plainMochi starts mochi with its allow-everything hook: the baseline the
// broker with full policy checks is compared against (never used outside
// benchmarks).
func plainMochi(b *testing.B) string {
	b.Helper()
	opts := &mqtt.Options{Logger: slog.New(slog.DiscardHandler)}
	opts.Capabilities = mqtt.NewDefaultServerCapabilities()
	opts.Capabilities.MaximumClientWritesPending = 8192
	s := mqtt.New(opts)
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.AddListener(listeners.NewNet("t", ln)); err != nil {
		b.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// benchClient connects an MQTT 5 client counting received messages.
func benchClient(b *testing.B, addr, id, user string, pass []byte, count *atomic.Int64) *paho.Client {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(paho.PublishReceived) (bool, error) { count.Add(1); return true, nil }}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, Username: user, UsernameFlag: user != "", Password: pass, PasswordFlag: pass != nil, KeepAlive: 60, CleanStart: true}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// runThroughput publishes b.N QoS 1 messages (100 bytes) from one client
// to one subscriber and waits until all are delivered.
func runThroughput(b *testing.B, pub, sub *paho.Client, topic, filter string, got *atomic.Int64) {
	ctx := context.Background()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 0}}}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	// A tight 1 ms poll inside the timed region, not testenv.Eventually:
	// its backoff (up to 50 ms) would be measured as throughput.
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if n := got.Load(); n < int64(b.N) {
		b.Fatalf("delivered %d of %d", n, b.N)
	}
}

// BenchmarkPublishDeliver compares one publish->deliver round of the
// broker with full policy checks (authenticated by token; Publish checked on
// the way in, Receive on the way out) against plain mochi, in one run:
//
//	go test -run '^$' -bench PublishDeliver -benchtime 20000x -cpu 1,2 ./internal/broker/
func BenchmarkPublishDeliver(b *testing.B) {
	b.Run("mochi-plain", func(b *testing.B) {
		addr := plainMochi(b)
		var got, none atomic.Int64
		sub := benchClient(b, addr, "sub", "", nil, &got)
		pub := benchClient(b, addr, "pub", "", nil, &none)
		runThroughput(b, pub, sub, "things/s-1/temp", "things/s-1/#", &got)
	})
	b.Run("gatehouse", func(b *testing.B) {
		f := newBenchFixture(b)
		var got, none atomic.Int64
		sub := benchClient(b, f.broker.Addr("mqtt"), "s-1", "s-1", []byte(f.token("s-1", "mqtt")), &got)
		pub := benchClient(b, f.broker.Addr("mqtt"), "s-2", "s-2", []byte(f.token("s-2", "mqtt")), &none)
		runThroughput(b, pub, sub, "commands/temp", "commands/#", &got)
	})
}

// BenchmarkConnectJWT measures MQTT CONNECTs authenticated by an access
// token: token verification, policy resolution and binding, CONNACK.
//
//	go test -run '^$' -bench ConnectJWT -cpu 1 ./internal/broker/
func BenchmarkConnectJWT(b *testing.B) {
	f := newBenchFixture(b)
	tok := []byte(f.token("s-1", "mqtt"))
	addr := f.broker.Addr("mqtt")
	b.ResetTimer()
	for i := range b.N {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "s-1", Username: "s-1", UsernameFlag: true, Password: tok, PasswordFlag: true, KeepAlive: 60, CleanStart: true})
		cancel()
		if err != nil || ca.ReasonCode != 0 {
			b.Fatalf("connect %d: %v", i, err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}

func newBenchFixture(b *testing.B) *fixture { return newFixture(b, time.Hour) }
