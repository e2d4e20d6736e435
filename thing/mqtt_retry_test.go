package thing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestConnectRetriesRefusalsForNow: against the real broker, a CONNECT
// refused for now (0x97 quota exceeded: the thing already holds its
// connections; 0x9F connection rate exceeded: the address used its
// CONNECTs) is retried with the backoff, and Connect returns once the
// broker accepts it. With retries disabled the refusal is Connect's error.
func TestConnectRetriesRefusalsForNow(t *testing.T) {
	tests := []struct {
		name string
		code byte
		// limit configures the broker; free makes room for the second
		// connection once it has been refused (first is the connection
		// already up).
		limit func(*broker.Config, *testenv.Clock)
		free  func(first *Conn, clk *testenv.Clock)
	}{
		{
			name:  "quota exceeded",
			code:  0x97,
			limit: func(c *broker.Config, _ *testenv.Clock) { c.ConnectionsPerThing = 1 },
			free: func(first *Conn, _ *testenv.Clock) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				first.Close(ctx)
			},
		},
		{
			name: "connection rate exceeded",
			code: 0x9F,
			limit: func(c *broker.Config, clk *testenv.Clock) {
				c.ConnectPerIP = ratelimit.New("connectPerIP", ratelimit.Rate{Burst: 1, Per: time.Hour}, ratelimit.Options{Now: clk.Now})
			},
			free: func(_ *Conn, clk *testenv.Clock) { clk.Advance(time.Hour) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testenv.NewClock(time.Now())
			env := testenv.New(t)
			cfg := broker.Config{Authn: env.Authn, Registry: env.Registry, Events: env.Events, TCPAddr: "127.0.0.1:0", EventTopicPrefix: "$gatehouse/events"}
			tc.limit(&cfg, clk)
			b, err := broker.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			env.Go(b.Run)
			admin := env.As("test")
			const doc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/s-1*"}]}`
			if _, err := env.Registry.CreatePolicy(admin, registry.NewPolicy{Name: "multi", Document: []byte(doc)}); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Registry.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}}); err != nil {
				t.Fatal(err)
			}
			secret := env.Things(admin, "sensor", "s-1")["s-1"]
			if _, err := env.Registry.AttachPolicy(admin, "multi", store.TargetThing, "s-1"); err != nil {
				t.Fatal(err)
			}
			brokerURL := "mqtt://" + b.Addr("mqtt")
			newThing := func(r Retry) *Thing {
				th, err := New(Config{ServerURL: env.HTTP.URL, Name: "s-1", StateDir: t.TempDir(), Retry: r})
				if err != nil {
					t.Fatal(err)
				}
				if err := th.SetClientSecret(secret); err != nil {
					t.Fatal(err)
				}
				return th
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			first, err := newThing(Retry{}).Connect(ctx, MQTTOptions{URL: brokerURL, ClientID: "s-1-a"})
			if err != nil {
				t.Fatalf("first connection: %v", err)
			}
			defer first.Close(context.Background())

			// Without retries the refusal is the answer.
			_, err = newThing(Retry{Disable: true}).Connect(ctx, MQTTOptions{URL: brokerURL, ClientID: "s-1-b"})
			var ce *autopaho.ConnackError
			if !errors.As(err, &ce) || ce.ReasonCode != tc.code {
				t.Fatalf("Connect with retries disabled = %v, want CONNACK %#x", err, tc.code)
			}

			retried := make(chan RetryEvent, 100)
			second := newThing(Retry{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond, OnRetry: func(e RetryEvent) {
				select {
				case retried <- e:
				default:
				}
			}})
			done := make(chan error, 1)
			var conn *Conn
			go func() {
				var err error
				conn, err = second.Connect(ctx, MQTTOptions{URL: brokerURL, ClientID: "s-1-b"})
				done <- err
			}()
			var e RetryEvent
			select {
			case e = <-retried:
			case err := <-done:
				t.Fatalf("Connect returned %v before any retry", err)
			case <-ctx.Done():
				t.Fatal("no retry event")
			}
			if !errors.As(e.Err, &ce) || ce.ReasonCode != tc.code || e.Op != "mqtt connect" || e.Attempt != 1 || e.Wait > 20*time.Millisecond {
				t.Fatalf("first retry event = %+v, want op mqtt connect, attempt 1, CONNACK %#x, a wait up to Base", e, tc.code)
			}
			tc.free(first, clk)
			if err := <-done; err != nil {
				t.Fatalf("Connect after the broker made room: %v", err)
			}
			defer conn.Close(context.Background())
		})
	}
}

// TestReconnectBackoff: the first connection's first try goes at once;
// after a connection has been up, even the first reconnection try waits
// a random share of Base (a fleet dropped by a broker restart comes back
// spread out), and failed tries back off with full jitter up to Cap.
func TestReconnectBackoff(t *testing.T) {
	tests := []struct {
		name    string
		up      bool
		attempt int
		want    time.Duration
	}{
		{"first connection, first try", false, 0, 0},
		{"first connection, second try", false, 1, 500 * time.Millisecond},
		{"first connection, third try", false, 2, time.Second},
		{"reconnection, first try", true, 0, 500 * time.Millisecond},
		{"reconnection, second try", true, 1, time.Second},
		{"reconnection, many tries", true, 9, 5 * time.Second},
	}
	for _, tc := range tests {
		th, err := New(Config{ServerURL: "http://127.0.0.1:1", Name: "dev-1", StateDir: t.TempDir(), Retry: Retry{Rand: func() float64 { return 0.5 }}})
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{t: th}
		c.everUp.Store(tc.up)
		if got := c.backoff(tc.attempt); got != tc.want {
			t.Errorf("%s: backoff(%d) = %s, want %s", tc.name, tc.attempt, got, tc.want)
		}
	}
}
