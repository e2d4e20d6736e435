package broker_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkDeliverQoS0 measures what the broker spends per delivered QoS 0
// message, plain mochi against the broker with full policy checks, with
// clients that cost next to nothing: they write pre-encoded packets and
// count what arrives by its fixed header, so -benchmem's allocs/op are the
// broker's own, per message published and delivered to one subscriber:
//
//	go test -run '^$' -bench DeliverQoS0 -benchmem -benchtime 200000x ./internal/broker/
func BenchmarkDeliverQoS0(b *testing.B) {
	b.Run("mochi-plain", func(b *testing.B) {
		addr := plainMochi(b)
		runDeliver(b, rawConnect(b, addr, "sub", "", ""), rawConnect(b, addr, "pub", "", ""), "things/s-1/temp", "things/s-1/#")
	})
	b.Run("gatehouse", func(b *testing.B) {
		f := newBenchFixture(b)
		addr := f.broker.Addr("mqtt")
		sub := rawConnect(b, addr, "s-1", "s-1", f.token("s-1", "mqtt"))
		pub := rawConnect(b, addr, "s-2", "s-2", f.token("s-2", "mqtt"))
		runDeliver(b, sub, pub, "commands/temp", "commands/#")
	})
}

// rawConn is an MQTT 5 connection driven by hand.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// rawConnect sends CONNECT and waits for a successful CONNACK.
func rawConnect(b *testing.B, addr, id, user, pass string) *rawConn {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := &rawConn{Conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: true, Keepalive: 60}}
	if user != "" {
		pk.Connect.Username, pk.Connect.UsernameFlag = []byte(user), true
		pk.Connect.Password, pk.Connect.PasswordFlag = []byte(pass), true
	}
	c.send(b, pk.ConnectEncode)
	if typ, body := c.next(b); typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		b.Fatalf("CONNACK of %s: type %d, %x", id, typ, body)
	}
	return c
}

func (c *rawConn) send(b *testing.B, encode func(*bytes.Buffer) error) {
	b.Helper()
	var buf bytes.Buffer
	if err := encode(&buf); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		b.Fatal(err)
	}
}

// next reads one packet: its type and body.
func (c *rawConn) next(b *testing.B) (byte, []byte) {
	b.Helper()
	typ, n, err := c.header()
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		b.Fatal(err)
	}
	return typ, body
}

// header reads a fixed header: the packet type and remaining length.
func (c *rawConn) header() (byte, int, error) {
	first, err := c.r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n, shift := 0, 0
	for {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		n |= int(d&0x7f) << shift
		if d&0x80 == 0 {
			return first >> 4, n, nil
		}
		shift += 7
	}
}

// runDeliver subscribes sub to filter and publishes b.N QoS 0 messages
// (100 bytes) from pub to topic, in bursts, until sub has all of them. At
// most window messages are on their way at once, so that no subscriber
// queue overflows (mochi drops QoS 0 messages then).
func runDeliver(b *testing.B, sub, pub *rawConn, topic, filter string) {
	sk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter}}}
	sub.send(b, sk.SubscribeEncode)
	if typ, body := sub.next(b); typ != packets.Suback || body[len(body)-1] != 0 {
		b.Fatalf("SUBACK: type %d, %x", typ, body)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: topic, Payload: make([]byte, 100)}
	var one bytes.Buffer
	if err := pk.PublishEncode(&one); err != nil {
		b.Fatal(err)
	}
	const burst, window = 64, 512
	bursts := bytes.Repeat(one.Bytes(), burst)
	room := make(chan struct{}, window/burst) // a token per burst on its way
	done := make(chan error, 1)
	go func() {
		for n := 0; n < b.N; {
			typ, size, err := sub.header()
			if err == nil {
				_, err = sub.r.Discard(size)
			}
			if err != nil {
				done <- err
				return
			}
			if typ == packets.Publish {
				if n++; n%burst == 0 {
					<-room
				}
			}
		}
		done <- nil
	}()
	b.SetBytes(int64(len(pk.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += burst {
		p := bursts
		if rest := b.N - sent; rest < burst {
			p = p[:rest*one.Len()]
		} else {
			room <- struct{}{}
		}
		if _, err := pub.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
