package broker

import (
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
)

// pendingLimit is the rejection counter's name for
// Config.PendingConnectionsPerIP.
const pendingLimit = "pendingConnectionsPerIP"

// pendingConns bounds connections that have not completed an
// authenticated CONNECT: each must do so by ConnectTimeout after it was
// accepted (TLS handshake, WebSocket upgrade and CONNECT included), and
// one address may hold at most PendingConnectionsPerIP of them at once.
// Without it a socket that sends nothing, half a CONNECT or no
// ClientHello stays open for ever.
type pendingConns struct {
	timeout  time.Duration
	perIP    int
	rejected func()

	mu sync.Mutex
	// byAddr counts by ratelimit.AddrKey: an IPv4 address or an IPv6 /64.
	byAddr map[string]int
}

func newPendingConns(timeout time.Duration, perIP int, rejected func()) *pendingConns {
	return &pendingConns{timeout: timeout, perIP: perIP, rejected: rejected, byAddr: map[string]int{}}
}

// listen wraps ln so every connection it accepts is pending.
func (p *pendingConns) listen(ln net.Listener) net.Listener {
	return &pendingListener{Listener: ln, p: p}
}

// take counts a new connection from addr (an IPv4 address or IPv6 /64),
// or reports false when addr has PendingConnectionsPerIP already.
func (p *pendingConns) take(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perIP > 0 && p.byAddr[addr] >= p.perIP {
		return false
	}
	p.byAddr[addr]++
	return true
}

func (p *pendingConns) give(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byAddr[addr]--; p.byAddr[addr] <= 0 {
		delete(p.byAddr, addr)
	}
}

type pendingListener struct {
	net.Listener
	p *pendingConns
}

// Accept returns the next connection within the per-address bound,
// closing those over it.
func (l *pendingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := ratelimit.AddrKey(c.RemoteAddr().String())
		if !l.p.take(addr) {
			// Counted before the close, so whoever sees the close sees
			// the count.
			if l.p.rejected != nil {
				l.p.rejected()
			}
			c.Close()
			continue
		}
		// Network deadlines are wall-clock times; no injected clock can
		// stand in for time.Now here.
		pc := &pendingConn{Conn: c, p: l.p, addr: addr, pending: true, deadline: time.Now().Add(l.p.timeout)}
		if err := c.SetDeadline(pc.deadline); err != nil {
			pc.Close()
			continue
		}
		return pc, nil
	}
}

// pendingConn is a connection that counts as pending until established
// (its CONNECT authenticated) or closed. While pending, deadlines set on
// it - by mochi after reading CONNECT, by net/http around the WebSocket
// upgrade - never reach past the connect deadline.
type pendingConn struct {
	net.Conn
	p    *pendingConns
	addr string

	mu                  sync.Mutex
	pending             bool
	deadline            time.Time
	wantRead, wantWrite time.Time
}

// clamp is t, or the connect deadline if t is later or none.
func (c *pendingConn) clamp(t time.Time) time.Time {
	if c.pending && (t.IsZero() || t.After(c.deadline)) {
		return c.deadline
	}
	return t
}

func (c *pendingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wantRead, c.wantWrite = t, t
	return c.Conn.SetDeadline(c.clamp(t))
}

func (c *pendingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wantRead = t
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *pendingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wantWrite = t
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// established ends the pending state: the deadlines become what was last
// asked for (mochi's keep-alive), and the address's count drops.
func (c *pendingConn) established() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pending {
		return
	}
	c.pending = false
	c.p.give(c.addr)
	_ = c.Conn.SetReadDeadline(c.wantRead)
	_ = c.Conn.SetWriteDeadline(c.wantWrite)
}

func (c *pendingConn) Close() error {
	c.mu.Lock()
	if c.pending {
		c.pending = false
		c.p.give(c.addr)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// pendingOf finds the pendingConn under a connection mochi serves: itself,
// or under TLS, or under WebSocket (and TLS).
func pendingOf(c net.Conn) *pendingConn {
	for c != nil {
		switch x := c.(type) {
		case *pendingConn:
			return x
		case *wsConn:
			c = x.Conn
		case *tls.Conn:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// The broker has one mochi hook (see TestOneAuthorizationHook); these are
// the parts of it that bound connections and topics, called first from
// the hook's callbacks of the same name.

// established ends a connection's pending state once its CONNECT is
// authenticated and admitted (OnSessionEstablish, before the CONNACK).
func (b *Broker) established(cl *mqtt.Client) {
	if pc := pendingOf(cl.Net.Conn); pc != nil {
		pc.established()
	}
}

// checkWill refuses, with CONNACK 0x90, a will whose topic is over the
// topic limits, before any authentication work.
func (b *Broker) checkWill(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	if limit := b.topicOverLimit(pk.Connect.WillTopic); limit != "" {
		b.cfg.Rejections.Inc(limit)
		_ = b.server.SendConnack(cl, packets.ErrTopicNameInvalid, false, nil)
		return packets.ErrTopicNameInvalid
	}
	return nil
}

// limitFilters turns a SUBSCRIBE filter over the topic limits into the
// empty filter, which mochi refuses as invalid (0x8F, MQTT 3: 0x80)
// without looking further.
func (b *Broker) limitFilters(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	for i, f := range pk.Filters {
		if limit := b.topicOverLimit(f.Filter); limit != "" {
			b.cfg.Rejections.Inc(limit)
			b.log.Debug("mqtt subscribe over topic limit", "client", cl.ID, "limit", limit, "bytes", len(f.Filter))
			pk.Filters[i].Filter = ""
		}
	}
	return pk
}

// limitTopic disconnects a client publishing to a topic over the limits
// (0x90 topic name invalid in the MQTT 5 DISCONNECT) and rejects the
// packet.
func (b *Broker) limitTopic(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	if limit := b.topicOverLimit(pk.TopicName); limit != "" {
		b.cfg.Rejections.Inc(limit)
		b.log.Debug("mqtt publish over topic limit", "client", cl.ID, "limit", limit, "bytes", len(pk.TopicName))
		_ = b.server.DisconnectClient(cl, packets.ErrTopicNameInvalid)
		return packets.ErrRejectPacket
	}
	return nil
}

// Rejection counter names of the topic limits.
const (
	topicBytesLimit  = "mqtt.maxTopicBytes"
	topicLevelsLimit = "mqtt.maxTopicLevels"
)

// topicOverLimit names the topic limit topic (a name or filter) breaks,
// or is "". As with AWS IoT, the $aws/rules/RULE/ prefix of Basic Ingest
// topics does not count against the levels.
func (b *Broker) topicOverLimit(topic string) string {
	if n := b.cfg.MaxTopicBytes; n > 0 && len(topic) > n {
		return topicBytesLimit
	}
	if n := b.cfg.MaxTopicLevels; n > 0 {
		levels := strings.Count(topic, "/") + 1
		if strings.HasPrefix(topic, "$aws/rules/") {
			levels -= 3
		}
		if levels > n {
			return topicLevelsLimit
		}
	}
	return ""
}
