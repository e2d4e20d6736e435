package thing

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
)

// MQTTAuth is how an MQTT connection authenticates.
type MQTTAuth int

const (
	// MQTTToken logs in with username = thing name and the access token as
	// password.
	MQTTToken MQTTAuth = iota
	// MQTTCertificate logs in with the registered certificate (mutual TLS).
	MQTTCertificate
	// MQTTCustomAuthorizer logs in AWS-IoT style: username
	// name?x-amz-customauthorizer-name=N&x-amz-customauthorizer-signature=S&token=T.
	MQTTCustomAuthorizer
)

// CustomAuthorizer is an AWS-IoT-style custom authorizer the device signs
// its access token for.
type CustomAuthorizer struct {
	// Name of the authorizer on the server.
	Name string
	// TokenKeyName is the query parameter or header carrying the token;
	// default "token".
	TokenKeyName string
	// Signer is the device's token signing key (RSA or ECDSA); its public
	// key is configured on the authorizer.
	Signer crypto.Signer
}

// Sign returns the base64 signature of token: RSA PKCS #1 v1.5 or ECDSA
// (ASN.1) over its SHA-256, as `openssl dgst -sha256 -sign` makes.
func (a *CustomAuthorizer) Sign(token string) (string, error) {
	if a == nil || a.Signer == nil {
		return "", errors.New("thing: custom authorizer without a signing key")
	}
	sum := sha256.Sum256([]byte(token))
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := a.Signer.Public().(*rsa.PublicKey); ok {
		opts = crypto.SHA256 // PKCS #1 v1.5 for *rsa.PrivateKey
	}
	sig, err := a.Signer.Sign(rand.Reader, sum[:], opts)
	if err != nil {
		return "", fmt.Errorf("thing: sign token: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

func (a *CustomAuthorizer) tokenKey() string {
	if a.TokenKeyName == "" {
		return "token"
	}
	return a.TokenKeyName
}

// MQTTOptions configure Connect.
type MQTTOptions struct {
	// URL of the broker: mqtt://host:port or mqtts://host:port. Default:
	// the endpoint returned at registration ("mqtts" for MQTTCertificate,
	// else "mqtt").
	URL string
	// Auth chooses the login.
	Auth MQTTAuth
	// Authorizer is required for MQTTCustomAuthorizer.
	Authorizer *CustomAuthorizer
	// ClientID defaults to the thing name.
	ClientID string
	// KeepAlive in seconds; default 30.
	KeepAlive uint16
	// TLS overrides the TLS configuration for mqtts:// (by default the
	// stored root CA verifies the server). With MQTTCertificate, a
	// certificate set here is used instead of the registered one.
	TLS *tls.Config
}

// Message is a message received on a subscription.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Conn is an MQTT 5 connection that reconnects by itself. Subscriptions
// made through it are renewed after each reconnect.
type Conn struct {
	t      *Thing
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc

	// everUp is set once a connection came up.
	everUp atomic.Bool

	mu      sync.Mutex
	subs    map[string]subscription
	lastErr error         // the last failed connection try
	waited  time.Duration // waits before the first connection
	// lost is closed when the connection that is up goes down (nil while
	// none is up): a QoS 1/2 publish waiting for its acknowledgement on it
	// stops waiting and is sent again on the next (see Publish).
	lost chan struct{}
}

// connectionUp and connectionDown keep Conn.lost.
func (c *Conn) connectionUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost = make(chan struct{})
}

func (c *Conn) connectionDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost != nil {
		close(c.lost)
		c.lost = nil
	}
	return true // autopaho reconnects
}

// currentLost is Conn.lost of the connection up now, or nil.
func (c *Conn) currentLost() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// backoff is autopaho's ReconnectBackoff: the wait before try number
// attempt (from 0) of one (re)connection. The first connection's first try
// goes at once; after a connection dropped, the first try waits a random
// share of Retry.Base so that a fleet dropped together (a broker restart)
// comes back spread out; failed tries back off as Retry says.
func (c *Conn) backoff(attempt int) time.Duration {
	p := c.t.retryPolicy
	first := !c.everUp.Load()
	if attempt == 0 && first {
		return 0
	}
	n := attempt
	if first {
		n-- // the first connection's second try waits up to Base
	}
	d := p.Backoff(n, 0)
	if attempt == 0 {
		c.t.log.Debug("thing: mqtt reconnecting", "thing", c.t.Name(), "wait", d.Round(time.Millisecond))
		return d
	}
	c.mu.Lock()
	err := c.lastErr
	if first {
		c.waited += d
	}
	c.mu.Unlock()
	c.t.noteRetry(RetryEvent{Op: "mqtt connect", Attempt: attempt, Wait: d, Err: err})
	return d
}

// noteConnectError remembers the last failed try, for the retry events.
func (c *Conn) noteConnectError(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// keepTrying tells whether Connect should go on after a CONNACK refusal:
// a refusal for now (Retryable) while the Retry policy allows waiting.
func (c *Conn) keepTrying(err error) bool {
	p := c.t.retryPolicy
	if p.Disable || !Retryable(err) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.everUp.Load() || c.waited < p.MaxWait
}

type subscription struct {
	qos     byte
	handler func(Message)
}

// Connect connects to the broker and waits until the first connection is
// up, the broker refuses the login, or ctx ends. A refusal for now (0x88
// server unavailable, 0x89 server busy, 0x97 quota exceeded, 0x9F
// connection rate exceeded) is retried with the Config.Retry backoff
// until ctx ends or Retry.MaxWait is used up. The connection then lives,
// reconnecting as needed (with a fresh token when the server disconnected
// it with 0x87 or 0xA0, or refused the login), until Close.
func (t *Thing) Connect(ctx context.Context, opts MQTTOptions) (*Conn, error) {
	u, err := t.brokerURL(opts)
	if err != nil {
		return nil, err
	}
	return t.dial(ctx, []*url.URL{u}, opts, nil)
}

// dial connects to the first of urls that answers (moving on to the next
// whenever a connection fails) and calls up, if set, after every
// connection is up and its subscriptions renewed.
func (t *Thing) dial(ctx context.Context, urls []*url.URL, opts MQTTOptions, up func()) (*Conn, error) {
	u := urls[0]
	clientID := opts.ClientID
	if clientID == "" {
		clientID = t.Name()
	}
	keepAlive := opts.KeepAlive
	if keepAlive == 0 {
		keepAlive = 30
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Conn{t: t, cancel: cancel, subs: map[string]subscription{}}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    urls,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              c.backoff,
		ConnectTimeout:                10 * time.Second,
		ClientConfig:                  paho.ClientConfig{ClientID: clientID},
	}
	if u.Scheme == "mqtts" || u.Scheme == "tls" || u.Scheme == "ssl" {
		tu := u
		if len(urls) > 1 {
			tu = nil // each dial takes the server name from its own URL
		}
		tc, err := t.tlsConfig(tu, opts)
		if err != nil {
			cancel()
			return nil, err
		}
		cfg.TlsCfg = tc
	}
	staleOn := func(code byte) {
		// 0x86 bad credentials, 0x87 not authorized, 0xA0 maximum connect
		// time (the token expired): the next login needs a new token.
		if code == 0x86 || code == 0x87 || code == 0xA0 {
			t.InvalidateToken()
		}
	}
	cfg.ConnectPacketBuilder = func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		return t.connectPacket(life, cp, opts)
	}
	refused := make(chan error, 1)
	cfg.OnConnectError = func(err error) {
		c.noteConnectError(err)
		var ce *autopaho.ConnackError
		if errors.As(err, &ce) {
			staleOn(ce.ReasonCode)
			if !c.keepTrying(err) {
				select { // the first refusal ends Connect: retrying will not help
				case refused <- err:
				default:
				}
			}
		}
		t.log.Info("thing: mqtt connect failed", "thing", t.Name(), "err", err)
	}
	cfg.OnServerDisconnect = func(d *paho.Disconnect) {
		staleOn(d.ReasonCode)
		t.log.Info("thing: mqtt server disconnected", "thing", t.Name(), "reason", fmt.Sprintf("0x%02X", d.ReasonCode))
	}
	cfg.OnConnectionDown = c.connectionDown
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		c.connectionUp()
		c.everUp.Store(true)
		t.log.Debug("thing: mqtt connected", "thing", t.Name(), "broker", u.Host)
		go func() {
			c.resubscribe(life)
			if up != nil {
				up()
			}
		}()
	}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){c.deliver}
	cm, err := autopaho.NewConnection(life, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("thing: mqtt: %w", err)
	}
	c.cm = cm
	wait, stopWait := context.WithCancel(ctx)
	defer stopWait()
	first := make(chan error, 1)
	go func() { first <- cm.AwaitConnection(wait) }()
	select {
	case err = <-first:
	case err = <-refused:
	}
	if err != nil {
		cancel()
		<-cm.Done()
		return nil, fmt.Errorf("thing: mqtt connect to %s: %w", hosts(urls), err)
	}
	return c, nil
}

func (t *Thing) brokerURL(opts MQTTOptions) (*url.URL, error) {
	raw := opts.URL
	if raw == "" {
		key := "mqtt"
		if opts.Auth == MQTTCertificate {
			key = "mqtts"
		}
		raw = t.Endpoints()[key]
	}
	if raw == "" {
		return nil, errors.New("thing: no broker URL: set MQTTOptions.URL or register first")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("thing: broker URL: %w", err)
	}
	if opts.Auth == MQTTCertificate && u.Scheme != "mqtts" && u.Scheme != "tls" && u.Scheme != "ssl" {
		return nil, fmt.Errorf("thing: certificate login needs an mqtts:// URL, got %s", u.Scheme)
	}
	return u, nil
}

func (t *Thing) tlsConfig(u *url.URL, opts MQTTOptions) (*tls.Config, error) {
	var tc *tls.Config
	if opts.TLS != nil {
		tc = opts.TLS.Clone()
	} else {
		pool, err := t.RootCAs()
		if err != nil {
			return nil, err
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	if tc.ServerName == "" && u != nil {
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			host = u.Host
		}
		tc.ServerName = host
	}
	if opts.Auth == MQTTCertificate && len(tc.Certificates) == 0 {
		cert, err := t.Certificate()
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// connectPacket fills in the credentials for each (re)connection.
func (t *Thing) connectPacket(ctx context.Context, cp *paho.Connect, opts MQTTOptions) (*paho.Connect, error) {
	switch opts.Auth {
	case MQTTCertificate:
		cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = false, "", false, nil
		return cp, nil
	case MQTTToken:
		tok, err := t.Token(ctx)
		if err != nil {
			return nil, err
		}
		cp.UsernameFlag, cp.Username = true, t.Name()
		cp.PasswordFlag, cp.Password = true, []byte(tok)
		return cp, nil
	case MQTTCustomAuthorizer:
		if opts.Authorizer == nil {
			return nil, errors.New("thing: MQTTCustomAuthorizer needs MQTTOptions.Authorizer")
		}
		tok, err := t.Token(ctx)
		if err != nil {
			return nil, err
		}
		sig, err := opts.Authorizer.Sign(tok)
		if err != nil {
			return nil, err
		}
		q := url.Values{"x-amz-customauthorizer-name": {opts.Authorizer.Name}, "x-amz-customauthorizer-signature": {sig}, opts.Authorizer.tokenKey(): {tok}}
		cp.UsernameFlag, cp.Username = true, t.Name()+"?"+q.Encode()
		cp.PasswordFlag, cp.Password = false, nil
		return cp, nil
	}
	return nil, fmt.Errorf("thing: unknown MQTT auth %d", opts.Auth)
}

func (c *Conn) deliver(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	c.mu.Lock()
	var handlers []func(Message)
	for filter, s := range c.subs {
		if topicMatches(filter, p.Topic) {
			handlers = append(handlers, s.handler)
		}
	}
	c.mu.Unlock()
	m := Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain}
	for _, h := range handlers {
		h(m)
	}
	return len(handlers) > 0, nil
}

func (c *Conn) resubscribe(ctx context.Context) {
	c.mu.Lock()
	subs := make(map[string]subscription, len(c.subs))
	for f, s := range c.subs {
		subs[f] = s
	}
	c.mu.Unlock()
	for f, s := range subs {
		if err := c.subscribe(ctx, f, s.qos); err != nil {
			c.t.log.Info("thing: mqtt resubscribe failed", "filter", f, "err", err)
		}
	}
}

// Publish publishes payload to topic. With QoS 1 it waits for the PUBACK
// and fails if the broker refused the message (e.g. policy denied).
//
// A connection that drops between waiting for it and sending (a token
// expiring, say) is waited for again: the message was not sent, so it is
// sent on the next connection, up to a few times within ctx.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	var (
		resp *paho.PublishResponse
		err  error
	)
	for attempt := 0; ; attempt++ {
		if err := c.cm.AwaitConnection(ctx); err != nil {
			return fmt.Errorf("thing: publish: %w", err)
		}
		resp, err = c.publishOnce(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
		if attempt < 3 && ctx.Err() == nil && (errors.Is(err, autopaho.ConnectionDownError) || errors.Is(err, session.ErrNoConnection) ||
			errors.Is(err, errAckLost) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		break
	}
	if err != nil {
		return fmt.Errorf("thing: publish to %s: %w", topic, err)
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("thing: publish to %s refused: reason 0x%02X", topic, resp.ReasonCode)
	}
	return nil
}

// errAckLost: the connection a QoS 1/2 publish was sent on went down
// before the broker acknowledged it.
var errAckLost = errors.New("thing: connection lost before the publish was acknowledged")

// publishOnce sends pk on the connection up now and waits for its
// acknowledgement while that connection lasts. paho forgets a session's
// unacknowledged publishes when the connection ends (a session without
// expiry, as the SDK's) but leaves their callers waiting for the packet
// timeout (10 s); Publish sends such a message again, at least once, on
// the next connection instead (a soak run saw a publish racing a token
// expiry's disconnect fail after 10 s).
func (c *Conn) publishOnce(ctx context.Context, pk *paho.Publish) (*paho.PublishResponse, error) {
	lost := c.currentLost()
	if lost == nil || pk.QoS == 0 {
		return c.cm.Publish(ctx, pk)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-lost:
			cancel()
		case <-done:
		}
	}()
	resp, err := c.cm.Publish(pctx, pk)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		return resp, fmt.Errorf("%w: %w", errAckLost, err)
	}
	return resp, err
}

// Subscribe subscribes to filter and calls handler for each message
// matching it (from the connection's receive goroutine: handler must not
// block long). The subscription is renewed after reconnects.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte, handler func(Message)) error {
	if handler == nil {
		return errors.New("thing: subscribe needs a handler")
	}
	c.mu.Lock()
	c.subs[filter] = subscription{qos: qos, handler: handler}
	c.mu.Unlock()
	if err := c.cm.AwaitConnection(ctx); err != nil {
		return fmt.Errorf("thing: subscribe: %w", err)
	}
	if err := c.subscribe(ctx, filter, qos); err != nil {
		c.mu.Lock()
		delete(c.subs, filter)
		c.mu.Unlock()
		return err
	}
	return nil
}

func (c *Conn) subscribe(ctx context.Context, filter string, qos byte) error {
	sa, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		return fmt.Errorf("thing: subscribe to %s: %w", filter, err)
	}
	if sa != nil && len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80 {
		return fmt.Errorf("thing: subscribe to %s refused: reason 0x%02X", filter, sa.Reasons[0])
	}
	return nil
}

// Close disconnects and stops reconnecting.
func (c *Conn) Close(ctx context.Context) error {
	err := c.cm.Disconnect(ctx)
	c.cancel()
	select {
	case <-c.cm.Done():
	case <-ctx.Done():
	}
	if err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		return fmt.Errorf("thing: disconnect: %w", err)
	}
	return nil
}

// Done is closed when the connection has stopped for good.
func (c *Conn) Done() <-chan struct{} { return c.cm.Done() }

func hosts(urls []*url.URL) string {
	hs := make([]string, len(urls))
	for i, u := range urls {
		hs[i] = u.Host
	}
	return strings.Join(hs, ",")
}

// topicMatches implements MQTT filter matching with + and #.
func topicMatches(filter, topic string) bool {
	for {
		fi, fr, fmore := cut(filter)
		ti, tr, tmore := cut(topic)
		switch {
		case fi == "#":
			return true
		case fi != "+" && fi != ti:
			return false
		case !fmore && !tmore:
			return true
		case !fmore || !tmore:
			return fmore && fr == "#"
		}
		filter, topic = fr, tr
	}
}

func cut(s string) (head, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
