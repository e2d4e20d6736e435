// Package simulate runs a fleet of simulated devices against a running
// Gatehouse: it prepares the fleet through the admin API (a policy, a
// thing type, and a registration token or per-thing client secrets), then
// starts devices at a fixed rate; each registers (certificate vending) or
// gets an access token (client credentials), connects MQTT and publishes
// telemetry with QoS 1 until the run ends.
//
// It exists so that `gatehouse simulate` can show what a deployment does
// under a realistic onboarding and telemetry load (registrations, tokens,
// CONNECTs and PUBACK round trips per second, with latency percentiles
// and errors by kind), end to end through the public device SDK (package
// thing) rather than with hand-made protocol code, with the SDK's own
// retry policy: the server's "not now" answers (a limit's 429, CONNACK
// 0x9F...) are retried as a real device would, and counted as retries
// with the time they cost, apart from errors. It talks only to the
// server it was given: every HTTP request goes through a transport that
// refuses other hosts, and the MQTT URLs must name the same host.
package simulate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// Auth is how simulated devices authenticate.
const (
	// AuthToken: the thing has a client secret (created at setup), gets an
	// access token with client credentials and logs in to MQTT with it as
	// password.
	AuthToken = "token"
	// AuthCert: the thing registers with a registration token (POST
	// /register with a CSR for a local key) and logs in to the MQTT TLS
	// listener with its certificate.
	AuthCert = "cert"
)

// Clock is the time source of a run; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After is like time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
func RealClock() Clock { return realClock{} }

// Config configures a run.
type Config struct {
	// Server is the Gatehouse base URL, e.g. http://127.0.0.1:8080.
	Server string
	// AdminToken authenticates the setup requests to the admin API.
	AdminToken string
	// MQTTURL (mqtt://host:port) is used with AuthToken; default the host
	// of Server on port 1884. MQTTSURL (mqtts://host:port) is used with
	// AuthCert; default the "mqtts" endpoint returned at registration,
	// else the host of Server on port 8883. Both must name Server's host
	// (any loopback name counts as the same when Server is on loopback).
	MQTTURL, MQTTSURL string
	// Things is the fleet size; Rate the devices started per second.
	Things int
	Rate   float64
	// Duration bounds the run, counted from the first device start.
	Duration time.Duration
	// PublishInterval is the time between a device's telemetry messages.
	PublishInterval time.Duration
	// Auth is AuthToken or AuthCert.
	Auth string
	// Prefix names the fleet: things are Prefix-00001..., the thing type
	// and policy are Prefix. Default "sim-" and random hex.
	Prefix string
	// StateDir holds one state directory per thing. Required; the caller
	// decides whether to keep it.
	StateDir string
	// Clock defaults to RealClock().
	Clock Clock
	// Logger gets the engine's messages; default discards.
	Logger *slog.Logger
	// DeviceLogger is given to the SDK of every device; default discards.
	DeviceLogger *slog.Logger
	// OnProgress, if set, is called about every second during the run.
	OnProgress func(Progress)
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

func (c *Config) check() error {
	switch {
	case c.Server == "":
		return errors.New("simulate: a server URL is required")
	case c.AdminToken == "":
		return errors.New("simulate: an admin token is required")
	case c.Things <= 0:
		return errors.New("simulate: the number of things must be positive")
	case c.Rate <= 0:
		return errors.New("simulate: the rate must be positive")
	case c.Duration <= 0:
		return errors.New("simulate: the duration must be positive")
	case c.PublishInterval <= 0:
		return errors.New("simulate: the publish interval must be positive")
	case c.Auth != AuthToken && c.Auth != AuthCert:
		return fmt.Errorf("simulate: auth %q: want %s or %s", c.Auth, AuthToken, AuthCert)
	case c.StateDir == "":
		return errors.New("simulate: a state directory is required")
	case c.Prefix != "" && !prefixRE.MatchString(c.Prefix):
		return fmt.Errorf("simulate: prefix %q: want 1-40 letters, digits, - or _", c.Prefix)
	}
	return nil
}

// ThingName is the name of the i-th thing (from 0) of a fleet.
func ThingName(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i+1) }

// Topic is where a thing publishes its telemetry.
func Topic(thingName string) string { return "simulate/" + thingName + "/telemetry" }

// policyDocument lets each thing connect as itself and publish to its
// own telemetry topic only.
const policyDocument = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/simulate/${iot:Connection.Thing.ThingName}/telemetry"}]}`

// runner is one run's state.
type runner struct {
	cfg     Config
	clock   Clock
	log     *slog.Logger
	http    *http.Client
	host    string // Server's host name
	stats   *stats
	regTok  string
	secrets []string

	mu    sync.Mutex
	conns []*thing.Conn
}

// Run sets the fleet up, runs it for cfg.Duration or until ctx ends,
// disconnects every device and returns the summary. Errors of single
// devices are counted in the summary; Run fails only when the setup does.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DeviceLogger == nil {
		cfg.DeviceLogger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		cfg.Prefix = "sim-" + hex.EncodeToString(b)
	}
	cfg.Server = strings.TrimRight(cfg.Server, "/")
	su, err := url.Parse(cfg.Server)
	if err != nil || (su.Scheme != "http" && su.Scheme != "https") || su.Host == "" {
		return nil, fmt.Errorf("simulate: server %q: want http(s)://host[:port]", cfg.Server)
	}
	r := &runner{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, host: su.Hostname(), stats: newStats()}
	if r.cfg.MQTTURL == "" {
		r.cfg.MQTTURL = "mqtt://" + net.JoinHostPort(r.host, "1884")
	}
	for _, raw := range []string{r.cfg.MQTTURL, r.cfg.MQTTSURL} {
		if raw == "" {
			continue
		}
		if err := r.sameHost(raw); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	r.http = &http.Client{Timeout: 30 * time.Second, Transport: hostGuard{host: su.Host, next: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer tr.CloseIdleConnections()

	setupStart := r.clock.Now()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	setup := r.clock.Now().Sub(setupStart)
	r.log.Info("simulate: fleet set up", "prefix", cfg.Prefix, "things", cfg.Things, "auth", cfg.Auth, "took", setup)

	elapsed := r.run(ctx)
	sum := r.stats.summary(elapsed)
	sum.Server, sum.Auth, sum.Prefix, sum.Things = cfg.Server, cfg.Auth, cfg.Prefix, cfg.Things
	sum.RatePerSec, sum.PublishInterval = cfg.Rate, cfg.PublishInterval.String()
	sum.SetupSeconds = float64(setup.Round(time.Millisecond)) / float64(time.Second)
	return &sum, nil
}

// sameHost checks that an MQTT URL names the server's host.
func (r *runner) sameHost(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("simulate: MQTT URL %q: want mqtt(s)://host:port", raw)
	}
	if h := u.Hostname(); h != r.host && !(loopback(h) && loopback(r.host)) {
		return fmt.Errorf("simulate: MQTT URL %s is not on the server's host %s", raw, r.host)
	}
	return nil
}

func loopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostGuard refuses HTTP requests to any host but the server's.
type hostGuard struct {
	host string
	next http.RoundTripper
}

func (g hostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != g.host {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("simulate: refusing a request to %s: only %s may be contacted", req.URL.Host, g.host)
	}
	return g.next.RoundTrip(req)
}

// admin sends one admin API request and decodes the answer into out.
func (r *runner) admin(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.cfg.Server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.AdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// setup creates the policy, the thing type and the credentials.
func (r *runner) setup(ctx context.Context) error {
	p := r.cfg.Prefix
	if err := r.admin(ctx, "POST", "/api/v1/policies", map[string]any{"name": p, "document": json.RawMessage(policyDocument)}, nil); err != nil {
		return fmt.Errorf("simulate: setup: %w", err)
	}
	if err := r.admin(ctx, "POST", "/api/v1/thing-types", map[string]any{"name": p, "scopes": []string{"mqtt"}, "defaultPolicies": []string{p}}, nil); err != nil {
		return fmt.Errorf("simulate: setup: %w", err)
	}
	if r.cfg.Auth == AuthCert {
		var out struct {
			Token string `json:"token"`
		}
		// Enough uses for the fleet, and an expiry so the token does not
		// outlive the run by much.
		expiry := int64((r.cfg.Duration + 10*time.Minute).Seconds())
		if err := r.admin(ctx, "POST", "/api/v1/registration-tokens", map[string]any{"thingType": p, "maxUses": max(r.cfg.Things, 2), "expiresInSeconds": expiry}, &out); err != nil {
			return fmt.Errorf("simulate: setup: %w", err)
		}
		if out.Token == "" {
			return errors.New("simulate: setup: the registration token answer holds no token")
		}
		r.regTok = out.Token
		return nil
	}
	r.secrets = make([]string, r.cfg.Things)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range r.cfg.Things {
		g.Go(func() error {
			name := ThingName(p, i)
			if err := r.admin(gctx, "POST", "/api/v1/things", map[string]any{"name": name, "thingType": p}, nil); err != nil {
				return err
			}
			var out struct {
				ClientSecret string `json:"clientSecret"`
			}
			if err := r.admin(gctx, "POST", "/api/v1/things/"+url.PathEscape(name)+"/secret", nil, &out); err != nil {
				return err
			}
			if out.ClientSecret == "" {
				return fmt.Errorf("no client secret for %s", name)
			}
			r.secrets[i] = out.ClientSecret
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("simulate: setup: %w", err)
	}
	return nil
}

// Offset is when, after the start, the i-th device (from 0) starts at
// rate devices per second.
func Offset(i int, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// pace calls start(i) for i in [0, n) at Offset(i, rate) after the clock's
// current time, until ctx ends. It returns how many it started.
func pace(ctx context.Context, clock Clock, n int, rate float64, start func(i int)) int {
	t0 := clock.Now()
	for i := range n {
		if wait := Offset(i, rate) - clock.Now().Sub(t0); wait > 0 {
			select {
			case <-ctx.Done():
				return i
			case <-clock.After(wait):
			}
		}
		if ctx.Err() != nil {
			return i
		}
		start(i)
	}
	return n
}

// run starts the devices and waits for the end of the run; it returns the
// elapsed time from the first start to the end of the last publish.
func (r *runner) run(parent context.Context) time.Duration {
	ctx, stop := context.WithCancel(parent)
	defer stop()
	t0 := r.clock.Now()
	var wg sync.WaitGroup
	wg.Go(func() { // the deadline
		select {
		case <-ctx.Done():
		case <-r.clock.After(r.cfg.Duration):
			stop()
		}
	})
	wg.Go(func() { r.report(ctx, t0) })
	var devices sync.WaitGroup
	pace(ctx, r.clock, r.cfg.Things, r.cfg.Rate, func(i int) {
		r.stats.started.Add(1)
		devices.Go(func() { r.device(ctx, i) })
	})
	devices.Wait() // returns once ctx ends: devices publish until then
	stop()
	wg.Wait()
	elapsed := r.clock.Now().Sub(t0)
	r.closeAll()
	return elapsed
}

// report computes the progress every second until ctx ends, keeps the
// peak rates and calls OnProgress.
func (r *runner) report(ctx context.Context, t0 time.Time) {
	prev, last := r.stats.snapshot(), t0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(time.Second):
		}
		now, cur := r.clock.Now(), r.stats.snapshot()
		p := progress(prev, cur, now.Sub(last), now.Sub(t0))
		r.stats.notePeak(p)
		if r.cfg.OnProgress != nil {
			r.cfg.OnProgress(p)
		}
		prev, last = cur, now
	}
}

// closeAll disconnects every device.
func (r *runner) closeAll() {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				r.stats.fail("disconnect", err)
			}
			r.stats.disconnected.Add(1)
		})
	}
	wg.Wait()
}

// timed runs f and records its latency under op when it succeeds. An
// error after the run ended (ctx done) is the run stopping, not counted.
// The latency includes the SDK's waits before retries.
func (r *runner) timed(ctx context.Context, op string, f func() error) bool {
	t := r.clock.Now()
	err := f()
	if err != nil {
		if ctx.Err() == nil {
			r.stats.fail(op, err)
			r.log.Debug("simulate: device operation failed", "op", op, "err", err)
		}
		return false
	}
	r.stats.observe(op, r.clock.Now().Sub(t))
	return true
}

// device is the life of the i-th device.
func (r *runner) device(ctx context.Context, i int) {
	name := ThingName(r.cfg.Prefix, i)
	var waited atomic.Int64 // what the server's limits cost this device
	// The SDK's default retry policy, observed only: the simulation is
	// what a real device does.
	retry := thing.Retry{OnRetry: func(e thing.RetryEvent) {
		r.stats.retry(e.Op, e.Wait)
		waited.Add(int64(e.Wait))
	}}
	th, err := thing.New(thing.Config{ServerURL: r.cfg.Server, Name: name, StateDir: filepath.Join(r.cfg.StateDir, name),
		HTTPClient: r.http, Logger: r.cfg.DeviceLogger, Now: r.clock.Now, Retry: retry})
	if err != nil {
		r.stats.fail("state", err)
		return
	}
	opts := thing.MQTTOptions{URL: r.cfg.MQTTURL, Auth: thing.MQTTToken}
	if r.cfg.Auth == AuthCert {
		if !r.timed(ctx, OpRegister, func() error { _, err := th.Register(ctx, r.regTok, "simulate"); return err }) {
			return
		}
		r.stats.registered.Add(1)
		opts = thing.MQTTOptions{URL: r.cfg.MQTTSURL, Auth: thing.MQTTCertificate}
		if opts.URL == "" {
			opts.URL = th.Endpoints()["mqtts"]
		}
		if opts.URL == "" {
			opts.URL = "mqtts://" + net.JoinHostPort(r.host, "8883")
		}
		if err := r.sameHost(opts.URL); err != nil {
			r.stats.fail(OpConnect, err)
			return
		}
	} else {
		if err := th.SetClientSecret(r.secrets[i]); err != nil {
			r.stats.fail("state", err)
			return
		}
		if !r.timed(ctx, OpToken, func() error { _, err := th.Token(ctx); return err }) {
			return
		}
		r.stats.tokens.Add(1)
	}
	var conn *thing.Conn
	if !r.timed(ctx, OpConnect, func() error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err = th.Connect(cctx, opts)
		return err
	}) {
		return
	}
	r.mu.Lock()
	r.conns = append(r.conns, conn)
	r.mu.Unlock()
	r.stats.connected.Add(1)
	r.stats.delay(time.Duration(waited.Load()))
	topic := Topic(name)
	for seq := 1; ; seq++ {
		payload := []byte(`{"seq":` + strconv.Itoa(seq) + `,"ts":` + strconv.FormatInt(r.clock.Now().UnixMilli(), 10) + `}`)
		if r.timed(ctx, OpPublish, func() error {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return conn.Publish(pctx, topic, payload, 1, false)
		}) {
			r.stats.messages.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(r.cfg.PublishInterval):
		}
	}
}
