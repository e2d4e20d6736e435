// Package app wires Gatehouse together: configuration to store, store to
// services, services to listeners. It is the only package that knows every
// other one, and it holds no logic of its own beyond start-up and orderly
// shutdown; cmd/gatehouse is its only importer.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
	"github.com/gatehouse-iot/gatehouse/internal/awsiot"
	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/cluster"
	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/console"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/httpapi"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Options carries what the caller injects besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Out receives the start-up banner (listen addresses, bootstrap
	// credentials). It is the terminal, never the log.
	Out     io.Writer
	Now     func() time.Time
	Rand    io.Reader
	Version string
	// ReadyFile, when set, receives the listen addresses (and first-start
	// credentials) as JSON before the banner is printed (ready.go).
	ReadyFile string
}

// App is a configured, not yet serving, Gatehouse.
type App struct {
	cfg      config.Config
	opts     Options
	log      *slog.Logger
	Store    *store.Store
	Events   *events.Log
	Registry *registry.Service
	OAuth    *oauth.Server
	Certs    *certs.Service
	Lobby    *lobby.Service
	// FleetProv keeps provisioning templates and answers AWS IoT fleet
	// provisioning over MQTT.
	FleetProv *fleetprov.Service
	Broker    *broker.Broker
	// cluster joins the broker to the other replicas; nil for one.
	cluster  *cluster.Node
	Console  *console.Console
	api      *httpapi.API
	adapters *authorizer.Adapters
	series   *httpapi.Sampler
	metrics  *prometheus.Registry
	httpLn   net.Listener
	httpsLn  net.Listener
	httpSrv  *http.Server
	issuer   string
}

// New opens the store, builds the services and binds the listeners. The
// caller must Run or Close it. It is three steps, each in its own
// function: the services over the store (services), the MQTT broker over
// them (startBroker), and the HTTP surface over both (serveHTTP).
func New(ctx context.Context, cfg config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: data dir: %w", err)
	}
	s, err := store.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a.Store = s
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	w, err := a.services(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.startBroker(ctx, w); err != nil {
		return nil, err
	}
	a.serveHTTP(w)
	if opts.ReadyFile != "" {
		if err := a.writeReady(opts.ReadyFile, w.boot); err != nil {
			return nil, err
		}
	}
	a.banner(w.boot)
	ok = true
	return a, nil
}

// wiring is what New's steps hand each other: values every later step
// needs but no service keeps.
type wiring struct {
	// reg registers metrics, labelled with the replica's name in a cluster.
	reg prometheus.Registerer
	// popts pins the ARN resources of every policy decision to this
	// region and account.
	popts  policy.Options
	limits *limits
	sealer *seal.Sealer
	boot   *registry.Bootstrap
	// tlsConfig serves the server certificate on every TLS listener; nil
	// when there is none.
	tlsConfig *tls.Config
	// httpsRaw is the bound mutual-TLS HTTPS listener before TLS; nil
	// when none is configured.
	httpsRaw net.Listener
	// base authenticates tokens, certificates and custom authorizers;
	// authenticator puts the lobby's devices in front of it.
	base          *authn.Authenticator
	authenticator *lobby.Authenticator
	// dataEndpoint is host:port of the MQTT TLS listener, for AWS IoT's
	// DescribeEndpoint; "" without one.
	dataEndpoint string
}

// services builds everything that lives on the store — events, registry,
// secrets, OAuth, certificates, the lobby — and binds the HTTP listeners,
// whose addresses the OAuth issuer and metadata name.
func (a *App) services(ctx context.Context) (*wiring, error) {
	cfg, opts, s := a.cfg, a.opts, a.Store
	w := &wiring{popts: policy.Options{Region: cfg.MQTT.Region, Account: cfg.MQTT.Account}}
	var err error
	a.Events = events.NewLog(s, opts.Now)
	a.Registry, err = registry.New(registry.Config{Store: s, Events: a.Events, Now: opts.Now, Rand: opts.Rand, Logger: opts.Logger.With("component", "registry"),
		SignIn: registry.SignInThrottle{FreeFailures: cfg.Limits.SignInFreeFailures, MaxDelay: cfg.Limits.SignInMaxDelay}})
	if err != nil {
		return nil, err
	}
	a.metrics = prometheus.NewRegistry()
	// Replicas of a cluster label their metrics with the replica's name.
	w.reg = a.metrics
	if name := replicaName(cfg); name != "" {
		w.reg = prometheus.WrapRegistererWith(prometheus.Labels{"replica": name}, a.metrics)
	}
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_things", Help: "Registered things."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := s.CountThings(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	if w.limits, err = newLimits(cfg, w.reg, opts.Now); err != nil {
		return nil, fmt.Errorf("app: limits: %w", err)
	}
	if w.boot, err = a.Registry.EnsureBootstrap(ctx); err != nil {
		return nil, fmt.Errorf("app: bootstrap: %w", err)
	}
	masterKey, err := seal.LoadOrCreateKeyFile(cfg.Secrets.MasterKeyFile, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("app: master key: %w", err)
	}
	previous, err := readKeyFiles(cfg.Secrets.PreviousMasterKeyFiles)
	if err != nil {
		return nil, fmt.Errorf("app: previous master keys: %w", err)
	}
	if w.sealer, err = seal.New(masterKey, seal.WithRand(opts.Rand), seal.WithOldKeys(previous...)); err != nil {
		return nil, fmt.Errorf("app: master key: %w", err)
	}

	// Bind HTTP first: the OAuth issuer is the external URL, which for an
	// ephemeral port (tests) is only known once bound.
	a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("app: listen http: %w", err)
	}
	issuer := cfg.HTTP.ExternalURL
	if strings.HasSuffix(issuer, ":0") {
		issuer = "http://" + a.httpLn.Addr().String()
	}
	a.issuer = issuer
	// The mutual-TLS HTTPS listener likewise: its URL is in the metadata.
	mtlsBase := ""
	if cfg.HTTP.TLSAddr != "" {
		if w.httpsRaw, err = net.Listen("tcp", cfg.HTTP.TLSAddr); err != nil {
			return nil, fmt.Errorf("app: listen https: %w", err)
		}
		a.httpsLn = w.httpsRaw // wrapped in TLS once the CA is ready; closed on failure
		mtlsBase = cfg.HTTP.TLSExternalURL
		if strings.HasSuffix(mtlsBase, ":0") {
			mtlsBase = "https://" + w.httpsRaw.Addr().String()
		}
	}
	var hs256 []byte
	if cfg.OAuth.HS256Secret != "" {
		hs256 = []byte(cfg.OAuth.HS256Secret)
	}
	limits := w.limits
	a.OAuth, err = oauth.New(oauth.Config{
		Store: s, Registry: a.Registry, Events: a.Events, Issuer: issuer, Sealer: w.sealer,
		Algorithm: cfg.OAuth.Algorithm, HS256Secret: hs256,
		AccessTokenTTL: cfg.OAuth.AccessTokenTTL, RefreshTokenTTL: cfg.OAuth.RefreshTokenTTL,
		DeviceCodeTTL: cfg.OAuth.DeviceCodeTTL, KeyRotation: cfg.OAuth.KeyRotation,
		DefaultScopes: cfg.OAuth.DefaultScopes,
		PasswordGrant: cfg.OAuth.PasswordGrant, Resources: cfg.OAuth.Resources,
		// RFC 8705: a client certificate from the certificate service
		// authenticates its thing at the token endpoint.
		ClientCertificates: func(ctx context.Context, chain []*x509.Certificate) (string, error) {
			au, err := a.Certs.AuthenticateCertificate(ctx, chain)
			if err != nil {
				return "", err
			}
			return au.ThingName, nil
		},
		// A token bound to a certificate lives only as long as the
		// certificate stays ACTIVE.
		CertificateStatus: func(ctx context.Context, fingerprint string) error {
			return a.Certs.CheckBoundCertificate(ctx, fingerprint)
		},
		MTLSBaseURL: mtlsBase, Now: opts.Now, Rand: opts.Rand, Logger: opts.Logger.With("component", "oauth"),
		Limits: oauth.Limits{TokenPerIP: limits.tokenPerIP, TokenPerClient: limits.tokenPerClient, UserCodePerIP: limits.deviceUserCodePerIP,
			UserCodePerCode: limits.deviceUserCodePerCode, UserCodeTotal: limits.deviceUserCodeTotal},
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := a.OAuth.RegisterMetrics(w.reg); err != nil {
		return nil, fmt.Errorf("app: oauth metrics: %w", err)
	}
	a.Certs, err = certs.New(certs.Config{
		Store: s, Registry: a.Registry, Events: a.Events, Sealer: w.sealer, Now: opts.Now, Rand: opts.Rand,
		Logger: opts.Logger.With("component", "certs"), LeafValidity: cfg.PKI.LeafValidity,
		RequireProofOfPossession: cfg.PKI.RequireProofOfPossession, Endpoints: endpoints(cfg, issuer),
		RegisterPerIP: limits.registerPerIP,
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := a.Certs.EnsureCA(ctx); err != nil {
		return nil, fmt.Errorf("app: CA: %w", masterKeyHint(err, cfg.Secrets.MasterKeyFile, masterKey))
	}
	if cfg.MQTT.TLSAddr != "" || cfg.MQTT.WSSAddr != "" || cfg.HTTP.TLSAddr != "" {
		if w.tlsConfig, err = a.Certs.ServerTLSConfig(ctx, cfg.MQTT.Hosts); err != nil {
			return nil, fmt.Errorf("app: broker TLS: %w", err)
		}
	}
	w.base = authn.New(authn.Config{Tokens: a.OAuth, Registry: a.Registry, Store: s, Now: opts.Now, Certificates: a.Certs})
	for _, e := range cfg.OAuth.ExternalIssuers {
		if err := w.base.AddExternalIssuer(authn.ExternalIssuer(e)); err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
	}
	lobbyCfg := lobby.Config{Store: s, Registry: a.Registry, Certs: a.Certs, Events: a.Events, Now: opts.Now,
		Logger: opts.Logger.With("component", "lobby"), LocalEndpoint: endpoints(cfg, issuer)["mqtts"],
		Sealer: w.sealer}
	if tlsConfig := w.tlsConfig; tlsConfig != nil {
		// The lobby signs what it tells devices with the server
		// certificate they verified when they connected.
		lobbyCfg.Signer = func() (*tls.Certificate, error) { return tlsConfig.GetCertificate(&tls.ClientHelloInfo{}) }
	}
	a.Lobby, err = lobby.New(lobbyCfg)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := a.Lobby.EnsurePolicy(ctx); err != nil {
		return nil, fmt.Errorf("app: lobby: %w", err)
	}
	a.FleetProv, err = fleetprov.New(fleetprov.Config{Store: s, Registry: a.Registry, Certs: a.Certs, Events: a.Events, Now: opts.Now,
		Rand: opts.Rand, Logger: opts.Logger.With("component", "fleetprov"), CertificatesPerClaim: limits.certificatesPerClaim})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	// Devices with a manufacturer certificate and their fingerprint as
	// client id are lobby sessions; everything else authenticates as usual.
	w.authenticator = a.Lobby.Authenticator(w.base)
	return w, nil
}

// startBroker joins the cluster (when configured) and binds the MQTT
// listeners.
func (a *App) startBroker(ctx context.Context, w *wiring) error {
	cfg, opts := a.cfg, a.opts
	var err error
	// The unauthenticated interop test listener, bound to one stored policy.
	var anonymousPolicy *policy.Set
	if cfg.MQTT.AnonymousAddr != "" {
		anonymousPolicy, err = a.Registry.CompileStoredPolicy(ctx, cfg.MQTT.AnonymousPolicy, w.popts)
		if err != nil {
			return fmt.Errorf("app: mqtt.anonymousPolicy: %w", err)
		}
	}
	var brokerCluster broker.Cluster
	if n := cfg.Cluster.NATS; n.Enabled() {
		cc := cluster.Config{URL: n.URL, StreamReplicas: n.Replicas, Logger: opts.Logger.With("component", "cluster")}
		if e := n.Embedded; e.Listen != "" {
			cc.Replica = e.Name
			cc.Embedded = &cluster.Embedded{Name: e.Name, Listen: e.Listen, Routes: e.Routes, StoreDir: e.StoreDir, RoutePassword: e.RoutePassword}
		}
		if a.cluster, err = cluster.Start(cc); err != nil {
			return fmt.Errorf("app: %w", err)
		}
		brokerCluster = a.cluster
		a.log.Info("cluster joined", "replica", a.cluster.Replica(), "routes", a.cluster.RouteAddr())
	}
	limits := w.limits
	a.Broker, err = broker.New(broker.Config{
		Authn: w.authenticator, Registry: a.Registry, Events: a.Events, Logger: opts.Logger.With("component", "broker"), Now: opts.Now,
		Policy:  w.popts,
		TCPAddr: cfg.MQTT.Addr, WSAddr: cfg.MQTT.WSAddr, TLSAddr: cfg.MQTT.TLSAddr, WSSAddr: cfg.MQTT.WSSAddr, TLSConfig: w.tlsConfig,
		EventTopicPrefix: cfg.MQTT.EventTopicPrefix, Reserved: []broker.ReservedGrant{lobby.ReservedGrant, lobby.AWSReservedGrant},
		ReservedTopics: []broker.ReservedSpace{lobby.AWSReservedTopic},
		Answerers:      []broker.Answerer{fleetProvAnswerer(a.FleetProv)},
		AnonymousAddr:  cfg.MQTT.AnonymousAddr, AnonymousPolicy: anonymousPolicy,
		MaxKeepAlive: cfg.MQTT.MaxKeepAlive,
		ConnectPerIP: limits.connectPerIP, ConnectionsPerThing: cfg.Limits.ConnectionsPerThing,
		MaxPacketSize: cfg.MQTT.MaxPacketSize, MaxMessageSize: cfg.MQTT.MaxMessageSize, Rejections: limits.rejections,
		ConnectTimeout: cfg.MQTT.ConnectTimeout, PendingConnectionsPerIP: cfg.Limits.PendingConnectionsPerIP,
		MaxTopicBytes: cfg.MQTT.MaxTopicBytes, MaxTopicLevels: cfg.MQTT.MaxTopicLevels, DenialWindow: cfg.Events.DenialWindow,
		DropDeniedQoS0: cfg.MQTT.DeniedQoS0Publish == config.DeniedQoS0Drop,
		Cluster:        brokerCluster,
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if addr := a.Broker.Addr("anonymous"); addr != "" {
		// Validate checked the configured host; this checks what it
		// resolved to.
		if host, _, _ := net.SplitHostPort(addr); !config.IsLoopbackHost(host) && !cfg.MQTT.AnonymousAllowNonLoopback {
			return fmt.Errorf("app: the anonymous MQTT listener bound to %s, not loopback (set mqtt.anonymousAllowNonLoopback to allow)", addr)
		}
		a.log.Warn("unauthenticated MQTT test listener enabled", "addr", addr, "policy", cfg.MQTT.AnonymousPolicy)
	}
	if err := a.Broker.RegisterMetrics(w.reg); err != nil {
		return fmt.Errorf("app: broker metrics: %w", err)
	}
	if addr := a.Broker.Addr("mqtts"); addr != "" {
		// With an ephemeral port the configured address says ":0".
		_, port, _ := net.SplitHostPort(addr)
		host := "localhost"
		if len(cfg.MQTT.Hosts) > 0 {
			host = cfg.MQTT.Hosts[0]
		}
		w.dataEndpoint = net.JoinHostPort(host, port)
		a.Lobby.SetLocalEndpoint("mqtts://" + w.dataEndpoint)
	}
	return nil
}

// serveHTTP builds the HTTP surface — API, console, OAuth, the adapters
// for external brokers, the AWS IoT control plane — on the one route
// table, and the server that serves it on the bound listeners.
func (a *App) serveHTTP(w *wiring) {
	cfg, opts, s := a.cfg, a.opts, a.Store
	limits := w.limits
	a.adapters = authorizer.New(authorizer.Config{
		Authn: w.authenticator, Registry: a.Registry, Store: s, Revoked: a.OAuth.Revoked, Events: a.Events,
		Logger: opts.Logger.With("component", "authorizer"), Now: opts.Now,
		Policy: w.popts,
		Keys:   cfg.Authorizer.Keys, AllowedSources: cfg.Authorizer.AllowedSources,
		MaxSessions: cfg.Authorizer.MaxSessions, SessionTTL: cfg.Authorizer.SessionTTL, ResolveByThingName: cfg.Authorizer.ResolveByThingName,
		RabbitMQVHosts: cfg.Authorizer.RabbitMQVHosts, RabbitMQExchange: cfg.Authorizer.RabbitMQExchange,
		RabbitMQManagement: authorizer.RabbitMQManagement{URL: cfg.Authorizer.RabbitMQManagementURL,
			Username: cfg.Authorizer.RabbitMQManagementUser, Password: cfg.Authorizer.RabbitMQManagementPassword},
	})
	mux := http.NewServeMux()
	a.Console = console.New(console.Config{Registry: a.Registry, Store: s, Events: a.Events, Logger: opts.Logger.With("component", "console"),
		Now: opts.Now, Rand: opts.Rand, SessionTTL: cfg.Console.SessionTTL, IdleTimeout: cfg.Console.IdleTimeout,
		SecureCookies: strings.HasPrefix(a.issuer, "https://"), LoginPerIP: limits.consoleLoginPerIP,
		Tokens: a.OAuth, MQTTWS: a.Broker.Addr("ws"), MQTTWSS: a.Broker.Addr("wss")})
	a.series = httpapi.NewSampler(a.metrics, opts.Now, 10*time.Second, time.Hour)
	awsKeys := awsiot.NewKeys(s, a.Events, w.sealer, opts.Rand, opts.Now)
	a.api = httpapi.New(httpapi.Config{AWSKeys: awsKeys, Registry: a.Registry, Events: a.Events, OAuth: a.OAuth, Certs: a.Certs, FleetProv: a.FleetProv, Lobby: a.Lobby, Logger: opts.Logger.With("component", "httpapi"), MaxBodyBytes: cfg.HTTP.MaxBodyBytes, MaxImportBytes: cfg.HTTP.MaxImportBytes,
		Sessions: a.Console, Connections: httpapi.ConnectionsFunc(a.connections), Series: a.series, AuthFailures: authFailures(limits.apiAuthFailuresPerIP)})
	var awsIoT http.Handler
	if p := cfg.AWSIoT.Prefix; p != "" {
		dataEndpoint := w.dataEndpoint
		awsIoT = awsiot.New(awsiot.Config{Registry: a.Registry, Keys: awsKeys, Prefix: p, Region: cfg.AWSIoT.Region, Account: cfg.AWSIoT.Account,
			MaxSkew: cfg.AWSIoT.MaxSkew, MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Now: opts.Now, Logger: opts.Logger.With("component", "awsiot"),
			Certs: a.Certs, FleetProv: a.FleetProv, Authenticate: w.base.Authenticate, Policy: w.popts,
			DataEndpoint: func() string { return dataEndpoint }})
	}
	a.routes(mux, a.adapters.Handler(), awsIoT)
	if w.httpsRaw != nil {
		a.httpsLn = tls.NewListener(w.httpsRaw, w.tlsConfig)
	}
	a.httpSrv = &http.Server{
		// Per-request read and write deadlines rather than the server's
		// ReadTimeout and WriteTimeout, which would end the event stream.
		Handler: httpapi.Deadlines(cfg.HTTP.ReadTimeout, cfg.HTTP.WriteTimeout,
			ratelimit.TrustProxies(cfg.HTTP.TrustedProxies, httpapi.Instrument(w.reg, mux))),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	a.httpSrv.RegisterOnShutdown(a.api.CloseStreams)
}

// Offline is the store and registry without any listener, for commands
// that work on the database directly.
type Offline struct {
	Store    *store.Store
	Registry *registry.Service
}

// NewOffline opens the store and registry for cfg.
func NewOffline(ctx context.Context, cfg config.Config) (*Offline, error) {
	s, err := store.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	reg, err := registry.New(registry.Config{Store: s, Events: events.NewLog(s, time.Now), Now: time.Now, Rand: rand.Reader})
	if err != nil {
		s.Close()
		return nil, err
	}
	return &Offline{Store: s, Registry: reg}, nil
}

// Close closes the store.
func (o *Offline) Close() error { return o.Store.Close() }

// HTTPAddr is the address the HTTP listener is bound to.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

func (a *App) banner(boot *registry.Bootstrap) {
	w := a.opts.Out
	base := "http://" + a.HTTPAddr()
	fmt.Fprintf(w, "Gatehouse %s\n", a.opts.Version)
	fmt.Fprintf(w, "  http        %s (listening on %s)\n", base, a.HTTPAddr())
	if a.httpsLn != nil {
		fmt.Fprintf(w, "  https       https://%s (mutual TLS for RFC 8705 tls_client_auth)\n", a.httpsLn.Addr())
	}
	fmt.Fprintf(w, "  admin API   %s/api/v1\n", base)
	fmt.Fprintf(w, "  console     %s/console/\n", base)
	fmt.Fprintf(w, "  oauth       issuer %s, token %s/oauth2/token\n", a.issuer, a.issuer)
	fmt.Fprintf(w, "  device page %s/device\n", a.issuer)
	if addr := a.Broker.Addr("mqtt"); addr != "" {
		fmt.Fprintf(w, "  mqtt        mqtt://%s\n", addr)
	}
	if addr := a.Broker.Addr("mqtts"); addr != "" {
		fmt.Fprintf(w, "  mqtts       mqtts://%s (client certificates)\n", addr)
	}
	if addr := a.Broker.Addr("ws"); addr != "" {
		fmt.Fprintf(w, "  mqtt/ws     ws://%s/mqtt\n", addr)
	}
	if addr := a.Broker.Addr("wss"); addr != "" {
		fmt.Fprintf(w, "  mqtt/wss    wss://%s/mqtt\n", addr)
	}
	if addr := a.Broker.Addr("anonymous"); addr != "" {
		fmt.Fprintf(w, "  mqtt/anon   mqtt://%s (NO AUTHENTICATION, interop tests only; policy %s)\n", addr, a.cfg.MQTT.AnonymousPolicy)
	}
	fmt.Fprintf(w, "  register    POST %s/register (DeviceToken), CA chain %s/ca\n", base, base)
	fmt.Fprintf(w, "  https pub   POST %s/topics/{topic}\n", base)
	fmt.Fprintf(w, "  health      %s/healthz  %s/readyz\n", base, base)
	fmt.Fprintf(w, "  metrics     %s/metrics\n", base)
	if p := a.cfg.AWSIoT.Prefix; p != "" {
		fmt.Fprintf(w, "  aws iot api %s%s (AWS SigV4, keys from gatehouse aws-keys)\n", base, p)
	}
	fmt.Fprintf(w, "  store       %s\n", a.Store.Dialect())
	fmt.Fprintf(w, "  data dir    %s\n", a.cfg.DataDir)
	if boot != nil {
		fmt.Fprintf(w, "\nFirst start: created the administrator. These secrets are shown once and stored only as hashes.\n")
		fmt.Fprintf(w, "  admin user      %s\n", boot.Username)
		fmt.Fprintf(w, "  admin password  %s\n", boot.Password)
		fmt.Fprintf(w, "  admin token     %s\n", boot.Token)
		fmt.Fprintf(w, "  try: curl -H 'Authorization: Bearer %s' %s/api/v1/things\n", boot.Token, base)
	}
}

// connections lists the broker's live connections of a thing for the API.
func (a *App) connections(thing string) []httpapi.Connection {
	out := a.localConnections(thing)
	if a.cluster == nil {
		return out
	}
	answers, err := a.cluster.Connections(context.Background(), thing, connectionsWindow)
	if err != nil {
		a.log.Warn("cluster connections", "err", err)
	}
	for _, raw := range answers {
		var cs []httpapi.Connection
		if err := json.Unmarshal(raw, &cs); err != nil {
			a.log.Warn("cluster connections: bad answer", "err", err)
			continue
		}
		out = append(out, cs...)
	}
	slices.SortStableFunc(out, func(x, y httpapi.Connection) int {
		if c := x.ConnectedAt.Compare(y.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ClientID, y.ClientID)
	})
	return out
}

// connectionsWindow is how long a connections view waits for the other
// replicas' answers.
const connectionsWindow = 300 * time.Millisecond

// localConnections lists this replica's connections of thing (every one
// for httpapi.AllThings), labelled with the replica's name in a cluster.
func (a *App) localConnections(thing string) []httpapi.Connection {
	var out []httpapi.Connection
	list := a.Broker.Connections(thing)
	if thing == httpapi.AllThings {
		list = a.Broker.AllConnections()
	}
	for _, c := range list {
		hc := httpapi.Connection{Thing: c.Thing, ClientID: c.ClientID, Username: c.Username, RemoteAddr: c.RemoteAddr, Listener: c.Listener,
			ProtocolVersion: c.ProtocolVersion, ConnectedAt: c.ConnectedAt}
		if a.cluster != nil {
			hc.Replica = a.cluster.Replica()
		}
		out = append(out, hc)
	}
	return out
}

// endpoints are what registering devices are told to connect to.
func endpoints(cfg config.Config, issuer string) map[string]string {
	out := map[string]string{"https": issuer}
	host := "localhost"
	if len(cfg.MQTT.Hosts) > 0 {
		host = cfg.MQTT.Hosts[0]
	}
	for scheme, addr := range map[string]string{"mqtt": cfg.MQTT.Addr, "mqtts": cfg.MQTT.TLSAddr} {
		if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" {
			out[scheme] = scheme + "://" + net.JoinHostPort(host, port)
		}
	}
	return out
}

// Run serves until ctx is cancelled, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		a.log.Info("http listening", "addr", a.HTTPAddr())
		if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	if a.httpsLn != nil {
		g.Go(func() error {
			if err := a.httpSrv.Serve(a.httpsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("https: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return a.Broker.Run(ctx) })
	if a.cluster != nil {
		g.Go(func() error { return a.cluster.Run(ctx, a.Broker.ClusterHandler()) })
		stop, err := a.cluster.ServeConnections(func(thing string) []byte {
			b, _ := json.Marshal(a.localConnections(thing))
			return b
		})
		if err != nil {
			a.log.Warn("cluster: connections view shows this replica only", "err", err)
		} else {
			defer stop()
		}
	}
	g.Go(func() error { return a.Lobby.Run(ctx, a.Broker) })
	g.Go(func() error { return a.OAuth.Run(ctx) })
	g.Go(func() error { return a.adapters.Run(ctx) })
	g.Go(func() error { return a.Certs.Run(ctx) })
	g.Go(func() error { return a.Registry.RunExpiry(ctx, a.cfg.Access.PurgeInterval, a.cfg.Access.PendingTTL) })
	g.Go(func() error {
		return a.series.Run(ctx, func(err error) { a.log.Warn("metrics sample", "err", err) })
	})
	g.Go(func() error { return a.Console.Run(ctx, 10*time.Minute) })
	g.Go(func() error {
		return a.Events.RunRetention(ctx, a.cfg.Events.Retention, retentionInterval, a.log.With("component", "events"))
	})
	g.Go(func() error {
		<-ctx.Done()
		a.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		return a.httpSrv.Shutdown(sctx)
	})
	return g.Wait()
}

// replicaName labels a cluster replica's metrics: its embedded NATS
// server's name, else (external NATS) the host name; "" without a cluster.
func replicaName(cfg config.Config) string {
	n := cfg.Cluster.NATS
	switch {
	case n.Embedded.Listen != "":
		return n.Embedded.Name
	case n.URL != "":
		h, _ := os.Hostname()
		return h
	}
	return ""
}

// retentionInterval is how often the server prunes events past
// events.retention (and once at start).
const retentionInterval = time.Hour

// Close releases everything New acquired.
func (a *App) Close() error {
	var errs []error
	for _, ln := range []net.Listener{a.httpLn, a.httpsLn} {
		if ln == nil {
			continue
		}
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if a.cluster != nil {
		a.cluster.Close()
		a.cluster = nil
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
		a.Store = nil
	}
	return errors.Join(errs...)
}

// authFailures is the admin API's failed-authentication limiter, nil (no
// limit) when the limit is off: a nil *ratelimit.Limiter in the interface
// would be a limiter that allows everything, but says so less plainly.
func authFailures(l *ratelimit.Limiter) httpapi.AuthFailureLimiter {
	if l == nil {
		return nil
	}
	return l
}

// fleetProvAnswerer serves AWS IoT fleet provisioning's MQTT API on the
// broker: its $aws/certificates/ and $aws/provisioning-templates/ topics are
// answered to the requesting connection alone.
func fleetProvAnswerer(f *fleetprov.Service) broker.Answerer {
	return broker.Answerer{
		Owns: fleetprov.Owns,
		IsRequest: func(topic string) bool {
			_, ok := fleetprov.ParseTopic(topic)
			return ok
		},
		Answer: func(ctx context.Context, id *authn.Identity, clientID, topic string, payload []byte) (string, []byte, bool) {
			return f.Answer(ctx, fleetprov.Claim{Principal: id.Principal, CredentialID: id.CredentialID, ClientID: clientID}, topic, payload)
		},
	}
}
