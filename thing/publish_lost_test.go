package thing

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// dropFirstPublish is a TCP proxy to the broker at target that, on the
// first connection through it, closes both sides when the client sends a
// PUBLISH, before the broker sees it: the publish is neither delivered nor
// acknowledged. Later connections pass unchanged.
type dropFirstPublish struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  int
}

func newDropFirstPublish(t *testing.T, target string) *dropFirstPublish {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropFirstPublish{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *dropFirstPublish) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		first := p.conns == 1
		p.mu.Unlock()
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { _, _ = io.Copy(c, s); c.Close() }()
		go func() {
			defer s.Close()
			defer c.Close()
			if !first {
				_, _ = io.Copy(s, c)
				return
			}
			for { // whole packets, until a PUBLISH
				var hdr [1]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				if hdr[0]>>4 == 3 {
					return
				}
				pkt := []byte{hdr[0]}
				n, mult := 0, 1
				for {
					var b [1]byte
					if _, err := io.ReadFull(c, b[:]); err != nil {
						return
					}
					pkt = append(pkt, b[0])
					n += int(b[0]&0x7f) * mult
					mult *= 128
					if b[0]&0x80 == 0 {
						break
					}
				}
				body := make([]byte, n)
				if _, err := io.ReadFull(c, body); err != nil {
					return
				}
				if _, err := s.Write(append(pkt, body...)); err != nil {
					return
				}
			}
		}()
	}
}

// TestPublishSurvivesLostConnection: a QoS 1 publish whose connection
// goes down before the broker acknowledged it is sent again on the next
// connection, and Publish returns once that one is acknowledged. paho
// alone forgets it with the session and leaves Publish waiting for its
// packet timeout (10 s): the context here ends before that.
func TestPublishSurvivesLostConnection(t *testing.T) {
	env := testenv.New(t)
	b, err := broker.New(broker.Config{Authn: env.Authn, Registry: env.Registry, Events: env.Events, TCPAddr: "127.0.0.1:0", EventTopicPrefix: "$gatehouse/events"})
	if err != nil {
		t.Fatal(err)
	}
	env.Go(b.Run)
	admin := env.As("test")
	const doc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/s-1"},
{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/things/s-1/*"},{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/things/s-1/*"}]}`
	if _, err := env.Registry.CreatePolicy(admin, registry.NewPolicy{Name: "own", Document: []byte(doc)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Registry.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}}); err != nil {
		t.Fatal(err)
	}
	secret := env.Things(admin, "sensor", "s-1")["s-1"]
	if _, err := env.Registry.AttachPolicy(admin, "own", store.TargetThing, "s-1"); err != nil {
		t.Fatal(err)
	}
	proxy := newDropFirstPublish(t, b.Addr("mqtt"))
	th, err := New(Config{ServerURL: env.HTTP.URL, Name: "s-1", StateDir: t.TempDir(), Retry: Retry{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := th.SetClientSecret(secret); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second) // under paho's 10 s packet timeout
	defer cancel()
	conn, err := th.Connect(ctx, MQTTOptions{URL: "mqtt://" + proxy.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.Publish(ctx, "things/s-1/state", []byte("on"), 1, false); err != nil {
		t.Fatalf("Publish over a connection lost before the PUBACK: %v", err)
	}
	proxy.mu.Lock()
	conns := proxy.conns
	proxy.mu.Unlock()
	if conns < 2 {
		t.Fatalf("connections through the proxy = %d, want a reconnection", conns)
	}
}
