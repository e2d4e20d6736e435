// Package cluster joins Gatehouse replicas into one MQTT system over NATS:
// each replica's broker hands the messages it accepted (after the
// iot:Publish check) to a Node, which carries them to every other replica,
// where they are injected into the local broker and delivered through its
// normal per-delivery iot:Receive check. It also carries retained messages
// (a JetStream key-value bucket, so a replica started later has them),
// client-id announcements (so a client id is connected on one replica at a
// time) and persistent sessions' subscriptions (another bucket, so a client
// resumes its session on whichever replica it reconnects to: sessions.go).
//
// A Node either embeds a NATS server (in-process, no client listener, one
// route listener that forms a cluster with the other replicas' routes) or
// connects to an external NATS cluster by URL. QoS 0 messages go over core
// NATS (at most once, as QoS 0 is); QoS 1 and 2 messages and every retained
// message go through a JetStream stream that each replica reads with an
// ordered consumer, so they survive a NATS node failing between publish
// and delivery (at least once between replicas). Nothing here knows MQTT
// beyond the Message it carries, nor anything of Gatehouse's policies: the
// broker decides what enters and what is delivered.
//
// Every replica receives every message (one subject per kind, the MQTT
// topic in a header: MQTT topics hold characters NATS subjects cannot), and
// drops its own by the origin header. That suits the few replicas of one
// Gatehouse deployment; it is not a fan-out for thousands of nodes.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects, stream and bucket names shared by every replica.
const (
	subjectQoS0     = "gatehouse.mqtt.qos0"
	subjectStream   = "gatehouse.mqtt.stream"
	subjectConnects = "gatehouse.mqtt.connected"
	subjectListConn = "gatehouse.connections"
	streamName      = "GATEHOUSE_MQTT"
	retainedBucket  = "gatehouse_retained"

	routeUser = "gatehouse"

	hdrOrigin = "Gatehouse-Origin"
	// hdrMessage carries everything of the message but its payload (see
	// envelope), base64: MQTT topics and properties may hold bytes a NATS
	// header value cannot (CR, LF), which would otherwise let a client
	// forge headers.
	hdrMessage  = "Gatehouse-Message"
	hdrClientID = "Gatehouse-Client-Id"
	hdrAt       = "Gatehouse-At"
)

// Embedded configures the NATS server a Node runs in-process.
type Embedded struct {
	// Name names this server in the NATS cluster; unique per replica.
	Name string
	// Listen is the route listener (host:port) other replicas connect to.
	Listen string
	// Routes are the other replicas' route listeners (host:port or
	// nats-route://host:port); this replica's own may be among them.
	Routes []string
	// StoreDir holds JetStream's state; "" is a directory under the
	// system's temporary directory named after Name.
	StoreDir string
	// RoutePassword, shared by every replica, is required of every route
	// connection; "" accepts any (loopback or a closed network only).
	RoutePassword string
}

// Config configures a Node: exactly one of URL and Embedded.
type Config struct {
	// URL is an external NATS cluster (comma-separated URLs).
	URL string
	// Embedded runs a NATS server in this process.
	Embedded *Embedded
	// Replica identifies this replica in the origin of its messages; ""
	// draws a random one.
	Replica string
	// StreamReplicas is how many NATS servers keep each JetStream message
	// and retained message (1 to 5; 3 survives losing one of three).
	StreamReplicas int
	// Logger receives the Node's and the embedded server's logs.
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Message is one MQTT publish travelling between replicas.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Properties are the MQTT 5 properties that travel with it; nil for
	// none.
	Properties *Properties
}

// Properties are the MQTT 5 PUBLISH properties a message keeps across
// replicas (topic aliases and subscription identifiers are per
// connection and do not travel).
type Properties struct {
	PayloadFormat   *byte       `json:"pf,omitempty"`
	MessageExpiry   uint32      `json:"me,omitempty"`
	ContentType     string      `json:"ct,omitempty"`
	ResponseTopic   string      `json:"rt,omitempty"`
	CorrelationData []byte      `json:"cd,omitempty"`
	User            [][2]string `json:"u,omitempty"`
}

// envelope is a message without its payload, as it travels in hdrMessage
// and in the retained bucket.
type envelope struct {
	Topic  string      `json:"t"`
	QoS    byte        `json:"q,omitempty"`
	Retain bool        `json:"r,omitempty"`
	Props  *Properties `json:"p,omitempty"`
}

func (m Message) envelope() []byte {
	b, _ := json.Marshal(envelope{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, Props: m.Properties})
	return b
}

// fromEnvelope rebuilds a message; false for a malformed one.
func fromEnvelope(raw, payload []byte) (Message, bool) {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil || e.Topic == "" || e.QoS > 2 {
		return Message{}, false
	}
	return Message{Topic: e.Topic, QoS: e.QoS, Retain: e.Retain, Properties: e.Props, Payload: payload}, true
}

// Handler is what a Node delivers to its replica's broker.
type Handler struct {
	// Message is a message another replica accepted.
	Message func(Message)
	// Retained sets a retained message without delivering it (the
	// retained messages of the cluster as this replica starts). An empty
	// payload clears the topic's retained message.
	Retained func(Message)
	// Connected is a client id that connected on another replica, with
	// the stamp of that connection's announcement.
	Connected func(clientID string, at Stamp)
}

// ErrConfig is a Config that cannot work.
var ErrConfig = errors.New("cluster: bad configuration")

// Node is one replica's connection to the others.
type Node struct {
	cfg     Config
	log     *slog.Logger
	replica string
	srv     *server.Server
	nc      *nats.Conn

	// js is set once the stream and bucket exist (see Run); until then
	// messages that would go through JetStream go over core NATS.
	js atomic.Pointer[jsState]
	// ready is closed when js is set.
	ready chan struct{}
	// seq numbers this replica's stream messages (their Nats-Msg-Id).
	seq atomic.Uint64
	// lamport is the latest client announcement stamp sent or received
	// (Stamp).
	lamport atomic.Int64
}

type jsState struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
	// sessions holds persistent sessions' subscriptions (sessions.go).
	sessions jetstream.KeyValue
}

// Start starts the embedded NATS server, if configured, and connects.
func Start(cfg Config) (*Node, error) {
	if (cfg.URL == "") == (cfg.Embedded == nil) {
		return nil, fmt.Errorf("%w: want exactly one of a URL and an embedded server", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StreamReplicas <= 0 {
		cfg.StreamReplicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Node{cfg: cfg, log: cfg.Logger, replica: cfg.Replica, ready: make(chan struct{})}
	if n.replica == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		n.replica = hex.EncodeToString(b[:])
	}
	opts := []nats.Option{nats.Name("gatehouse " + n.replica), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond), nats.NoEcho()}
	url := cfg.URL
	if e := cfg.Embedded; e != nil {
		var b [24]byte
		_, _ = rand.Read(b[:])
		token := hex.EncodeToString(b[:])
		srv, err := startServer(e, token, cfg.Logger)
		if err != nil {
			return nil, err
		}
		n.srv = srv
		opts = append(opts, nats.InProcessServer(srv), nats.Token(token))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	n.nc = nc
	return n, nil
}

// startServer runs the embedded NATS server: a route listener, JetStream,
// and a client listener on loopback (NATS starts routing only once it has
// one) that only the replica itself can use (a random token, and the
// replica connects in-process).
func startServer(e *Embedded, token string, log *slog.Logger) (*server.Server, error) {
	host, port, err := splitHostPort(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %w", ErrConfig, e.Listen, err)
	}
	dir := e.StoreDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "gatehouse-nats-"+e.Name)
	}
	opts := &server.Options{
		ServerName: e.Name, Host: "127.0.0.1", Port: -1, Authorization: token, NoSigs: true,
		JetStream: true, StoreDir: dir,
		Cluster: server.ClusterOpts{Name: "gatehouse", Host: host, Port: port},
	}
	if e.RoutePassword != "" {
		opts.Cluster.Username, opts.Cluster.Password = routeUser, e.RoutePassword
	}
	for _, r := range e.Routes {
		if !strings.Contains(r, "://") {
			r = "nats-route://" + r
		}
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("%w: route %q: %w", ErrConfig, r, err)
		}
		if e.RoutePassword != "" {
			u.User = url.UserPassword(routeUser, e.RoutePassword)
		}
		opts.Routes = append(opts.Routes, u)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats server: %w", err)
	}
	lg := &natsLogger{log: log.With("component", "nats"), fatal: make(chan string, 1)}
	srv.SetLoggerV2(lg, false, false, false)
	go srv.Start()
	// Up to 30s; a fatal error (the route port is taken) ends it at once.
	for i := 0; !srv.ReadyForConnections(100 * time.Millisecond); i++ {
		select {
		case msg := <-lg.fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("cluster: nats server: %s", msg)
		default:
		}
		if i == 300 {
			srv.Shutdown()
			return nil, errors.New("cluster: nats server did not start")
		}
	}
	return srv, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1 // NATS: any free port
	}
	return host, port, nil
}

// Replica is this replica's origin tag.
func (n *Node) Replica() string { return n.replica }

// RouteAddr is the embedded server's route listener, or "".
func (n *Node) RouteAddr() string {
	if n.srv == nil {
		return ""
	}
	if a := n.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Close disconnects and stops the embedded server.
func (n *Node) Close() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// staleMargin is how much older than this replica's joining a stream
// message may be and still be delivered (clock differences between
// servers).
const staleMargin = 2 * time.Second

// publishTimeout bounds a JetStream publish (and a retained message's
// bucket update), retries included: the publisher's connection waits for
// it. NATS elects a new stream leader 4 to 10 seconds after the server
// holding it died.
const publishTimeout = 15 * time.Second

// Publish sends a message accepted on this replica to the others. QoS 0
// messages go over core NATS; QoS 1 and 2 and retained messages through
// the stream, acknowledged by it (over core NATS, at most once, while the
// stream is not available yet or the publish fails).
func (n *Node) Publish(ctx context.Context, m Message) error {
	msg := nats.NewMsg(subjectQoS0)
	msg.Header.Set(hdrOrigin, n.replica)
	msg.Header.Set(hdrMessage, base64.RawStdEncoding.EncodeToString(m.envelope()))
	msg.Data = m.Payload
	if m.QoS == 0 && !m.Retain {
		return n.corePublish(msg)
	}
	st := n.js.Load()
	if st == nil {
		return n.corePublish(msg)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if m.Retain {
		// The bucket first, then the stream: a replica starting reads the
		// bucket after its consumer is positioned, so the stream message
		// (last) wins over whatever it read.
		err := n.retry(ctx, func(ctx context.Context) error {
			if len(m.Payload) == 0 {
				return st.kv.Delete(ctx, bucketKey(m.Topic))
			}
			_, err := st.kv.Put(ctx, bucketKey(m.Topic), encodeRetained(m))
			return err
		})
		if err != nil {
			n.log.Warn("cluster: store retained message", "err", err)
		}
	}
	msg.Subject = subjectStream
	// A retry after a publish whose acknowledgement was lost is dropped by
	// the stream's duplicate window.
	msg.Header.Set(jetstream.MsgIDHeader, n.replica+"-"+strconv.FormatUint(n.seq.Add(1), 36))
	err := n.retry(ctx, func(ctx context.Context) error {
		_, err := st.js.PublishMsg(ctx, msg)
		return err
	})
	if err != nil {
		n.log.Warn("cluster: stream publish failed, sent at most once", "err", err)
		msg.Subject = subjectQoS0
		return n.corePublish(msg)
	}
	return nil
}

// retry runs op until it succeeds or ctx ends: when a NATS server holding
// a stream's leader dies, the others elect a new one within seconds, and
// meanwhile the stream does not answer.
func (n *Node) retry(ctx context.Context, op func(context.Context) error) error {
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Node) corePublish(msg *nats.Msg) error {
	if err := n.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("cluster: publish: %w", err)
	}
	return nil
}

// Stamp orders the announcements of one client id's connections: a
// Lamport clock (a replica's clock, but always past every announcement it
// has received), then the replica. A connection established after its
// replica received another's announcement is stamped later, whatever the
// clocks; of two announced at once on two replicas (neither having seen
// the other's), every replica picks the same one, so exactly one - the
// later stamp - survives.
type Stamp struct {
	UnixNano int64
	Replica  string
}

// After reports whether s is later than o.
func (s Stamp) After(o Stamp) bool {
	if s.UnixNano != o.UnixNano {
		return s.UnixNano > o.UnixNano
	}
	return s.Replica > o.Replica
}

// tick returns the next stamp: now, or past the latest stamp seen.
func (n *Node) tick(now int64) int64 {
	for {
		last := n.lamport.Load()
		next := max(now, last+1)
		if n.lamport.CompareAndSwap(last, next) {
			return next
		}
	}
}

// saw moves the clock past a stamp received.
func (n *Node) saw(ns int64) {
	for {
		last := n.lamport.Load()
		if ns <= last || n.lamport.CompareAndSwap(last, ns) {
			return
		}
	}
}

// AnnounceClient tells the other replicas that clientID connected here:
// each disconnects its connection under that id (session taken over)
// unless that connection's own announcement is later. It returns this
// announcement's stamp.
func (n *Node) AnnounceClient(clientID string) (Stamp, error) {
	at := Stamp{UnixNano: n.tick(n.cfg.Now().UnixNano()), Replica: n.replica}
	msg := nats.NewMsg(subjectConnects)
	msg.Header.Set(hdrOrigin, n.replica)
	msg.Header.Set(hdrClientID, clientID)
	msg.Header.Set(hdrAt, strconv.FormatInt(at.UnixNano, 10))
	if err := n.nc.PublishMsg(msg); err != nil {
		return at, fmt.Errorf("cluster: announce client: %w", err)
	}
	return at, nil
}

// ServeConnections answers other replicas' Connections requests with
// list(thing), until stop is called.
func (n *Node) ServeConnections(list func(thing string) []byte) (stop func(), err error) {
	sub, err := n.nc.Subscribe(subjectListConn, func(msg *nats.Msg) {
		if msg.Reply != "" {
			_ = msg.Respond(list(string(msg.Data)))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: serve connections: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Connections asks every other replica for its connections of thing and
// returns the answers that arrive within window (NATS does not say how
// many replicas will answer, so the window bounds the wait).
func (n *Node) Connections(ctx context.Context, thing string, window time.Duration) ([][]byte, error) {
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("cluster: connections: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(subjectListConn, inbox, []byte(thing)); err != nil {
		return nil, fmt.Errorf("cluster: connections: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	var out [][]byte
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil
		}
		out = append(out, msg.Data)
	}
}

// Ready is closed once the stream and the buckets are available.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run delivers the other replicas' messages to h until ctx ends. Core
// subjects are served at once; the stream and bucket are set up as soon as
// JetStream has a leader (an embedded cluster elects one once a majority of
// its servers are up), retrying until then.
func (n *Node) Run(ctx context.Context, h Handler) error {
	sub, err := n.nc.Subscribe(subjectQoS0, func(msg *nats.Msg) {
		if m, ok := n.decode(msg.Header, msg.Data); ok {
			h.Message(m)
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	csub, err := n.nc.Subscribe(subjectConnects, func(msg *nats.Msg) {
		if msg.Header.Get(hdrOrigin) != n.replica {
			if id := msg.Header.Get(hdrClientID); id != "" {
				ns, _ := strconv.ParseInt(msg.Header.Get(hdrAt), 10, 64)
				n.saw(ns)
				h.Connected(id, Stamp{UnixNano: ns, Replica: msg.Header.Get(hdrOrigin)})
			}
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	defer func() { _ = csub.Unsubscribe() }()
	var cc jetstream.ConsumeContext
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		cc, err = n.setUp(ctx, h)
		if err == nil {
			break
		}
		n.log.Info("cluster: jetstream not ready yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	defer cc.Stop()
	n.log.Info("cluster: joined", "replica", n.replica)
	<-ctx.Done()
	return nil
}

// setUp creates (or finds) the stream and bucket, positions an ordered
// consumer at the stream's end, loads the retained messages and then
// starts consuming.
func (n *Node) setUp(ctx context.Context, h Handler) (jetstream.ConsumeContext, error) {
	// Short: until JetStream has a meta leader its API does not answer,
	// and the next attempt should come soon after it does.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	js, err := jetstream.New(n.nc)
	if err != nil {
		return nil, err
	}
	r := n.cfg.StreamReplicas
	// Created by the first replica; the others use it as it is (never
	// updated: a replica configured differently must not shrink it).
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{subjectStream}, Storage: jetstream.MemoryStorage, Replicas: r,
		MaxAge: 5 * time.Minute, MaxBytes: 256 << 20, Discard: jetstream.DiscardOld,
	}); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("stream: %w", err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: retainedBucket, Storage: jetstream.MemoryStorage, Replicas: r})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, retainedBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("retained bucket: %w", err)
	}
	sessions, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: sessionsBucket, Storage: jetstream.MemoryStorage, Replicas: r, TTL: sessionsMaxAge})
	if errors.Is(err, jetstream.ErrBucketExists) {
		sessions, err = js.KeyValue(ctx, sessionsBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("sessions bucket: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	if err := n.loadRetained(ctx, js, h); err != nil {
		return nil, err
	}
	// The consumer may be served by this server's copy of the stream,
	// which after a crash catches up with what was published while it
	// was away: those messages are not for clients connected now.
	notBefore := n.cfg.Now().Add(-staleMargin)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if md, err := msg.Metadata(); err == nil && md.Timestamp.Before(notBefore) {
			return
		}
		if m, ok := n.decode(msg.Headers(), msg.Data()); ok {
			h.Message(m)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	n.js.Store(&jsState{js: js, kv: kv, sessions: sessions})
	close(n.ready)
	return cc, nil
}

// loadRetained hands every retained message of the bucket to h.Retained.
// It asks the bucket's leader (its subjects, then the last message of
// each), never this server's own copy: a replica restarted after a crash
// rejoins with an empty or old copy that catches up only later, and a
// watcher or direct get may be served from it.
func (n *Node) loadRetained(ctx context.Context, js jetstream.JetStream, h Handler) error {
	const stream = "KV_" + retainedBucket
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("retained: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("$KV."+retainedBucket+".>"))
	if err != nil {
		return fmt.Errorf("retained: %w", err)
	}
	if !fromLeader(info.Cluster) {
		return errNotFromLeader
	}
	for subject := range info.State.Subjects {
		req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
		resp, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
		if err != nil {
			return fmt.Errorf("retained %s: %w", subject, err)
		}
		var r struct {
			Message *struct {
				Hdrs []byte `json:"hdrs"`
				Data []byte `json:"data"`
			} `json:"message"`
			Error *struct {
				Code        int    `json:"code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			return fmt.Errorf("retained %s: %w", subject, err)
		}
		if r.Error != nil && r.Error.Code == 404 {
			continue // purged meanwhile
		}
		if r.Error != nil || r.Message == nil {
			return fmt.Errorf("retained %s: %v", subject, r.Error)
		}
		if bytes.Contains(r.Message.Hdrs, []byte("KV-Operation")) {
			continue // deleted: the retained message was cleared
		}
		key, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(subject, "$KV."+retainedBucket+"."))
		if m, ok := decodeRetained(r.Message.Data); ok && err == nil && string(key) == m.Topic {
			h.Retained(m)
		}
	}
	return nil
}

// errNotFromLeader: a stream's information came from a replica other than
// its leader, whose copy may be behind.
var errNotFromLeader = errors.New("retained: stream information not from the leader yet")

// fromLeader reports whether stream information was given by the stream's
// leader. Outside the leader, NATS answers while the group has no leader
// or for a replica just (re)started that was the group's preferred one,
// each from its own copy: a replica restarted after a crash answered with
// its empty copy, and started without the retained messages. The leader
// lists the other replicas and not itself; another replica lists the
// leader.
func fromLeader(c *jetstream.ClusterInfo) bool {
	if c == nil {
		return true // not clustered: the one server
	}
	if c.Leader == "" {
		return false
	}
	for _, p := range c.Replicas {
		if p != nil && p.Name == c.Leader {
			return false
		}
	}
	return true
}

// decode reads a message another replica published; false for this
// replica's own and for malformed ones.
func (n *Node) decode(hdr nats.Header, data []byte) (Message, bool) {
	if hdr == nil || hdr.Get(hdrOrigin) == n.replica {
		return Message{}, false
	}
	raw, err := base64.RawStdEncoding.DecodeString(hdr.Get(hdrMessage))
	if err != nil {
		return Message{}, false
	}
	return fromEnvelope(raw, data)
}

// encodeRetained is a retained message's bucket value: the length of its
// envelope (4 bytes, big-endian), the envelope, the payload.
func encodeRetained(m Message) []byte {
	e := m.envelope()
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(e)+len(m.Payload)), uint32(len(e)))
	return append(append(out, e...), m.Payload...)
}

func decodeRetained(v []byte) (Message, bool) {
	if len(v) < 4 {
		return Message{}, false
	}
	n := binary.BigEndian.Uint32(v)
	if uint64(n) > uint64(len(v)-4) {
		return Message{}, false
	}
	return fromEnvelope(v[4:4+n], v[4+n:])
}

// natsLogger hands the embedded server's logs to slog, and its fatal
// errors to startServer.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
func (l *natsLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
