// Package config defines Gatehouse's configuration and how it is assembled:
// built-in defaults, then a YAML file (unknown keys are errors), then
// GATEHOUSE_* environment variables, then command-line flags. Validate
// reports every problem at once.
//
// It exists so that the one place that knows every setting, its default and
// its environment name is also the place that checks them; the rest of the
// program receives a validated Config and never reads the environment.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
)

// Config is the whole configuration of `gatehouse serve`.
type Config struct {
	// DataDir holds the SQLite database, the master key and other state.
	DataDir string  `yaml:"dataDir"`
	Store   Store   `yaml:"store"`
	HTTP    HTTP    `yaml:"http"`
	Log     Log     `yaml:"log"`
	OAuth   OAuth   `yaml:"oauth"`
	MQTT    MQTT    `yaml:"mqtt"`
	Secrets Secrets `yaml:"secrets"`
	PKI     PKI     `yaml:"pki"`
	// Access configures access requests and expiring relationships.
	Access Access `yaml:"access"`
	// AWSIoT serves a subset of the AWS IoT registry API (things, thing
	// types) signed with AWS Signature V4.
	AWSIoT AWSIoT `yaml:"awsIot"`
	// Authorizer configures the endpoints external brokers (EMQX,
	// RabbitMQ) call to authenticate and authorize devices.
	Authorizer Authorizer `yaml:"authorizer"`
	// Console configures the web console's sessions.
	Console Console `yaml:"console"`
	// Limits are the abuse limits (see Limits).
	Limits Limits `yaml:"limits"`
	// Events configures the event log's growth: denial aggregation and
	// retention.
	Events Events `yaml:"events"`
	// Cluster makes several replicas one MQTT system (off by default).
	Cluster Cluster `yaml:"cluster"`
}

// Cluster joins replicas' brokers (internal/cluster).
type Cluster struct {
	NATS ClusterNATS `yaml:"nats"`
}

// ClusterNATS is where replicas exchange MQTT messages: an embedded NATS
// server per replica (Embedded.Listen set) or an external NATS cluster
// (URL); neither (the default) is one replica on its own.
type ClusterNATS struct {
	// URL is an external NATS cluster, e.g. nats://nats-1:4222,nats://nats-2:4222.
	URL string `yaml:"url" secret:"urls"`
	// Embedded runs a NATS server in this process.
	Embedded ClusterEmbedded `yaml:"embedded"`
	// Replicas is how many NATS servers keep each QoS 1/2 and retained
	// message (1 to 5; 3 for three or more replicas survives losing one).
	Replicas int `yaml:"replicas"`
}

// ClusterEmbedded configures the embedded NATS server.
type ClusterEmbedded struct {
	// Listen is the route listener (host:port) the other replicas dial;
	// set, it enables the embedded server.
	Listen string `yaml:"listen"`
	// Routes are every replica's route listener (this one's may be
	// listed too, so that all replicas share one list).
	Routes []string `yaml:"routes"`
	// Name is this replica's unique name in the NATS cluster.
	Name string `yaml:"name"`
	// StoreDir holds JetStream state; "" is <dataDir>/nats.
	StoreDir string `yaml:"storeDir"`
	// RoutePassword, the same on every replica, authenticates route
	// connections; required unless Listen is a loopback address.
	RoutePassword string `yaml:"routePassword" secret:"true"`
}

// Enabled reports whether the replica joins a cluster.
func (c ClusterNATS) Enabled() bool { return c.URL != "" || c.Embedded.Listen != "" }

// Events bounds the event log.
type Events struct {
	// Retention deletes events older than this; the server prunes every
	// hour (and `gatehouse events prune --before` does it on demand).
	// 0 keeps events forever.
	Retention time.Duration `yaml:"retention"`
	// DenialWindow aggregates repeated broker denials of one source
	// (client address or principal), action and reason: the first in a
	// window is written at once, the rest of that window as one event
	// with a count when it ends. 0 writes every denial.
	DenialWindow time.Duration `yaml:"denialWindow"`
}

// Console configures the web console under /console/.
type Console struct {
	// SessionTTL is how long a console login lasts at most.
	SessionTTL time.Duration `yaml:"sessionTTL"`
	// IdleTimeout ends a console session unused for that long.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
}

// Limits bound what one client address, OAuth client or thing may do.
// Rates are "N/PERIOD" (N at once, then N per PERIOD, e.g. "10/5m",
// "600/m"); "off" disables one. Every refusal is counted in
// gatehouse_limit_rejections_total{limit="<key>"}.
type Limits struct {
	// TokenPerIP: token endpoint requests per client address (429 with
	// Retry-After and an RFC 6749 error body).
	TokenPerIP string `yaml:"tokenPerIP"`
	// TokenPerClient: tokens issued per client (client credentials, JWT
	// bearer, token exchange, /things/{name}?_action=get_access_token);
	// only issued tokens count, so failed attempts under someone else's
	// client id cannot use up its budget.
	TokenPerClient string `yaml:"tokenPerClient"`
	// DeviceUserCodePerIP: user code (and password) attempts on the device
	// verification page per client address.
	DeviceUserCodePerIP string `yaml:"deviceUserCodePerIP"`
	// RegisterPerIP: POST /register per client address.
	RegisterPerIP string `yaml:"registerPerIP"`
	// CertificatesPerClaim: certificates fleet provisioning issues
	// (CreateKeysAndCertificate, CreateCertificateFromCsr over MQTT) per
	// claim certificate, which a whole production line may share; over it
	// the request is answered 429 Throttling.
	CertificatesPerClaim string `yaml:"certificatesPerClaim"`
	// ConnectPerIP: MQTT CONNECTs per client address, checked before
	// authentication (refused with 0x9F connection rate exceeded).
	ConnectPerIP string `yaml:"connectPerIP"`
	// ConnectionsPerThing: concurrent MQTT connections (distinct client
	// ids) per thing; a new one over the limit is refused with 0x97 quota
	// exceeded, the existing ones stay. 0 disables.
	ConnectionsPerThing int `yaml:"connectionsPerThing"`
	// APIAuthFailuresPerIP: failed authentications at the admin API (a
	// wrong or missing API token, a stale console session) per client
	// address; over it the address gets 429 with Retry-After, whatever it
	// sends, until the bucket refills.
	APIAuthFailuresPerIP string `yaml:"apiAuthFailuresPerIP"`
	// ConsoleLoginPerIP: console login attempts per client address (429
	// with Retry-After).
	ConsoleLoginPerIP string `yaml:"consoleLoginPerIP"`
	// DeviceUserCodePerCode: attempts on the device verification page per
	// user code entered, counted after the per-address limit.
	DeviceUserCodePerCode string `yaml:"deviceUserCodePerCode"`
	// DeviceUserCodeTotal: attempts on the device page, the login page and
	// the password grant from all addresses together, counted only for
	// attempts the per-address and per-code limits let through; keep it
	// far above what a few addresses can send.
	DeviceUserCodeTotal string `yaml:"deviceUserCodeTotal"`
	// SignInFreeFailures: failed sign-ins (console, device and login
	// pages, password grant) per account, from any address, before each
	// further attempt waits; the wait doubles from 1s per failure up to
	// SignInMaxDelay. Accounts are slowed, never locked.
	SignInFreeFailures int           `yaml:"signInFreeFailures"`
	SignInMaxDelay     time.Duration `yaml:"signInMaxDelay"`
	// ExemptSources are CIDR prefixes of client addresses that the
	// onboarding limits per address (tokenPerIP, registerPerIP,
	// connectPerIP) do not count: a factory provisioning station, a site
	// NAT. The limits per client and per thing, and the guessing limits
	// (deviceUserCodePerIP, apiAuthFailuresPerIP), still apply.
	ExemptSources Prefixes `yaml:"exemptSources"`
	// PendingConnectionsPerIP: concurrent MQTT connections per client
	// address that have not yet completed an authenticated CONNECT (TCP,
	// TLS and WebSocket); a new one over it is closed at once. 0 disables.
	PendingConnectionsPerIP int `yaml:"pendingConnectionsPerIP"`
}

// Authorizer configures the external-broker adapters under /authorizer/.
// Requests must carry one of Keys (X-Gatehouse-Adapter-Key header or
// adapter_key query parameter) or come from AllowedSources; with neither
// configured every request is refused.
type Authorizer struct {
	Keys               []string      `yaml:"keys" secret:"true"`
	AllowedSources     Prefixes      `yaml:"allowedSources"`
	MaxSessions        int           `yaml:"maxSessions"`
	SessionTTL         time.Duration `yaml:"sessionTTL"`
	ResolveByThingName bool          `yaml:"resolveByThingName"`
	RabbitMQVHosts     []string      `yaml:"rabbitmqVhosts"`
	RabbitMQExchange   string        `yaml:"rabbitmqExchange"`
	// RabbitMQManagementURL is RabbitMQ's management API (the
	// rabbitmq_management plugin), e.g. http://127.0.0.1:15672: there
	// Gatehouse closes the connections of credentials revoked, disabled or
	// expired. Empty: it does not (RabbitMQ keeps them open).
	RabbitMQManagementURL string `yaml:"rabbitmqManagementUrl"`
	// RabbitMQManagementUser and RabbitMQManagementPassword log in to it as
	// a user with the administrator tag.
	RabbitMQManagementUser     string `yaml:"rabbitmqManagementUser"`
	RabbitMQManagementPassword string `yaml:"rabbitmqManagementPassword" secret:"true"`
}

// PKI configures the certificate authority and registration gateway.
type PKI struct {
	// LeafValidity is how long device certificates are valid.
	LeafValidity time.Duration `yaml:"leafValidity"`
	// RequireProofOfPossession refuses manufacturer CAs registered without
	// a verification certificate.
	RequireProofOfPossession bool `yaml:"requireProofOfPossession"`
}

// MQTT configures the embedded broker. An empty address disables a
// listener.
type MQTT struct {
	// Addr is MQTT over TCP. The default, 127.0.0.1:1884, sits beside a
	// broker that may already hold 1883 during a migration.
	Addr string `yaml:"addr"`
	// WSAddr is MQTT over WebSocket (path /mqtt).
	WSAddr string `yaml:"wsAddr"`
	// TLSAddr is MQTT over TLS with client certificates (mTLS). The server
	// certificate comes from the Gatehouse CA, for Hosts.
	TLSAddr string `yaml:"tlsAddr"`
	// WSSAddr is MQTT over secure WebSocket.
	WSSAddr string `yaml:"wssAddr"`
	// Hosts are the names and addresses devices dial; they go into the
	// broker's TLS certificate and the endpoints given at registration.
	Hosts []string `yaml:"hosts"`
	// EventTopicPrefix mirrors the event log to MQTT; "" disables.
	EventTopicPrefix string `yaml:"eventTopicPrefix"`
	// Region and Account pin the REGION and ACCOUNT of policy ARNs; empty
	// matches any.
	Region  string `yaml:"region"`
	Account string `yaml:"account"`
	// AnonymousAddr, for interoperability test suites only
	// (docs/interop.md), serves plain MQTT without authentication: every
	// client is the principal "anonymous", bound to AnonymousPolicy.
	// Empty (the default) disables it. It must be a loopback address
	// unless AnonymousAllowNonLoopback is set.
	AnonymousAddr string `yaml:"anonymousAddr"`
	// AnonymousPolicy names the stored policy anonymous clients are bound
	// to; it is compiled once at start (restart to apply a new version).
	AnonymousPolicy string `yaml:"anonymousPolicy"`
	// AnonymousAllowNonLoopback lets AnonymousAddr listen beyond loopback.
	AnonymousAllowNonLoopback bool `yaml:"anonymousAllowNonLoopback"`
	// MaxKeepAlive caps the keep-alive interval of MQTT 5 clients: one
	// asking for more, or for none (0), is told this value in the CONNACK
	// (Server Keep Alive) and held to it, as AWS IoT caps at 1200 s.
	// 0 leaves clients' keep-alive as they ask.
	MaxKeepAlive time.Duration `yaml:"maxKeepAlive"`
	// MaxPacketSize bounds every MQTT packet in bytes; a client sending a
	// bigger one is disconnected (0x95 packet too large).
	MaxPacketSize int `yaml:"maxPacketSize"`
	// MaxMessageSize bounds a PUBLISH payload in bytes (MQTT and HTTPS
	// publish); bigger ones are refused (0x95 for MQTT 5).
	MaxMessageSize int `yaml:"maxMessageSize"`
	// ConnectTimeout closes a connection that has not completed an
	// authenticated CONNECT this long after it was accepted: the TLS
	// handshake, the WebSocket upgrade and the CONNECT packet must all
	// fit in it.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// MaxTopicBytes bounds a topic name or filter in UTF-8 bytes (AWS IoT:
	// 256); 0 disables.
	MaxTopicBytes int `yaml:"maxTopicBytes"`
	// MaxTopicLevels bounds the levels of a topic name or filter (AWS IoT:
	// 8, that is 7 slashes); 0 disables. Reserved $aws/ and $gatehouse/
	// topics count too.
	MaxTopicLevels int `yaml:"maxTopicLevels"`
	// DeniedQoS0Publish is what happens to an MQTT 3.1.1 client whose QoS
	// 0 PUBLISH the policy refuses: "disconnect" (the default, as AWS IoT
	// Core ends a connection on an authorization failure, and as for QoS
	// 1/2, which 3.1.1 cannot refuse otherwise) or "drop" (the message is
	// dropped, the connection stays).
	DeniedQoS0Publish string `yaml:"deniedQos0Publish"`
}

// The values of MQTT.DeniedQoS0Publish.
const (
	DeniedQoS0Disconnect = "disconnect"
	DeniedQoS0Drop       = "drop"
)

// Secrets locates the master key that encrypts keys at rest. Every replica
// sharing a database needs the same key.
type Secrets struct {
	// MasterKeyFile holds the base64 master key; created if missing.
	// Default: <dataDir>/master.key.
	MasterKeyFile string `yaml:"masterKeyFile"`
	// PreviousMasterKeyFiles are older master keys that still open values
	// sealed under them (new values are sealed with MasterKeyFile): for
	// rotating the master key while the servers run (`gatehouse keys
	// rotate-master --online`).
	PreviousMasterKeyFiles []string `yaml:"previousMasterKeyFiles"`
}

// Store selects the database.
type Store struct {
	// DSN is "sqlite:PATH" or "postgres://...". Empty means
	// sqlite:<dataDir>/gatehouse.db.
	DSN string `yaml:"dsn" secret:"dsn"`
}

// HTTP configures the HTTP listener (admin API, OAuth, device page, metrics).
type HTTP struct {
	Addr string `yaml:"addr"`
	// TLSAddr serves the same routes over TLS with a certificate from the
	// Gatehouse CA (for mqtt.hosts), requesting client certificates: the
	// token endpoint then takes RFC 8705 tls_client_auth and binds tokens
	// to the certificate. Empty disables it.
	TLSAddr string `yaml:"tlsAddr"`
	// ExternalURL is how clients reach the server; it is the OAuth issuer.
	// Empty means http://<addr>.
	ExternalURL string `yaml:"externalURL"`
	// TLSExternalURL is how clients reach TLSAddr: the base of the
	// metadata's RFC 8705 mtls_endpoint_aliases. Empty means
	// https://<tlsAddr>.
	TLSExternalURL string `yaml:"tlsExternalURL"`
	// MaxBodyBytes bounds every request body but registry imports.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxImportBytes bounds a registry import body (POST
	// /api/v1/registry/import), which may be a whole registry export.
	MaxImportBytes  int64         `yaml:"maxImportBytes"`
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// TrustedProxies are the CIDR prefixes of load balancers whose
	// X-Forwarded-For header names the client address (for limits, audit
	// and authorizer sources). Empty (the default): the header is ignored.
	TrustedProxies Prefixes `yaml:"trustedProxies"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// ReadTimeout bounds reading a request body, from the end of its
	// headers; the deadline is lifted once the body is read, so a long
	// response is not cut off.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds writing a response, except the event stream
	// and long polls (GET /api/v1/events/stream, ?wait=), which have
	// their own heartbeats and limits.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// OAuth configures the authorization server.
type OAuth struct {
	// Algorithm signs access tokens: ES256 (default), EdDSA, RS256, or HS256
	// (legacy shared-secret mode, needs HS256Secret).
	Algorithm       string        `yaml:"algorithm"`
	HS256Secret     string        `yaml:"hs256Secret" secret:"true"`
	AccessTokenTTL  time.Duration `yaml:"accessTokenTTL"`
	RefreshTokenTTL time.Duration `yaml:"refreshTokenTTL"`
	DeviceCodeTTL   time.Duration `yaml:"deviceCodeTTL"`
	KeyRotation     time.Duration `yaml:"keyRotation"`
	// DefaultScopes are what a thing without a thing type may get.
	DefaultScopes []string `yaml:"defaultScopes"`
	// ExternalIssuers are other OAuth 2.0 servers whose JWT access tokens
	// the broker and HTTPS publish accept, verified with their JWKS (YAML
	// only).
	ExternalIssuers []ExternalIssuer `yaml:"externalIssuers"`
	// PasswordGrant lets confidential registered apps use the resource
	// owner password grant (off by default: it hands passwords to apps).
	PasswordGrant bool `yaml:"passwordGrant"`
	// Resources are the RFC 8707 resource indicators (absolute URIs)
	// clients may name with resource= to get tokens whose aud is that
	// resource instead of the issuer.
	Resources []string `yaml:"resources"`
}

// ExternalIssuer is another OAuth 2.0 server trusted for access tokens
// (the fields of authn.ExternalIssuer, which documents them).
type ExternalIssuer struct {
	Issuer     string   `yaml:"issuer"`
	JWKSURL    string   `yaml:"jwksURL"`
	Audience   string   `yaml:"audience"`
	ThingClaim string   `yaml:"thingClaim"`
	Algorithms []string `yaml:"algorithms"`
	// AllowUntypedTokens accepts typ "JWT" or no typ besides "at+jwt": a
	// weakening (RFC 8725 section 3.11), off by default.
	AllowUntypedTokens bool `yaml:"allowUntypedTokens"`
	// Leeway accepts the issuer's tokens until exp + Leeway (0 to 5m,
	// default 0).
	Leeway time.Duration `yaml:"leeway"`
}

// Default returns the embedded default configuration.
func Default() Config {
	return Config{
		DataDir: "./gatehouse-data",
		Access:  Access{PurgeInterval: time.Minute, PendingTTL: 7 * 24 * time.Hour},
		AWSIoT:  AWSIoT{Prefix: "/aws-iot", Account: "000000000000", MaxSkew: 5 * time.Minute},
		HTTP: HTTP{Addr: "127.0.0.1:8080", TLSAddr: "127.0.0.1:8443", MaxBodyBytes: 1 << 20, MaxImportBytes: 64 << 20, ShutdownTimeout: 10 * time.Second,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute},
		Log: Log{Level: "info", Format: "text"},
		OAuth: OAuth{Algorithm: "ES256", AccessTokenTTL: time.Hour, RefreshTokenTTL: 30 * 24 * time.Hour,
			DeviceCodeTTL: 10 * time.Minute, KeyRotation: 30 * 24 * time.Hour},
		MQTT: MQTT{Addr: "127.0.0.1:1884", WSAddr: "127.0.0.1:8083", TLSAddr: "127.0.0.1:8883",
			Hosts: []string{"localhost", "127.0.0.1"}, EventTopicPrefix: "$gatehouse/events", MaxKeepAlive: 20 * time.Minute,
			MaxPacketSize: 1 << 20, MaxMessageSize: 128 << 10, ConnectTimeout: 10 * time.Second, MaxTopicBytes: 256, MaxTopicLevels: 8,
			DeniedQoS0Publish: DeniedQoS0Disconnect},
		PKI:     PKI{LeafValidity: 365 * 24 * time.Hour},
		Console: Console{SessionTTL: 12 * time.Hour, IdleTimeout: time.Hour},
		Limits: Limits{TokenPerIP: "6000/m", TokenPerClient: "120/m", DeviceUserCodePerIP: "10/5m", RegisterPerIP: "600/m", CertificatesPerClaim: "600/m",
			ConnectPerIP: "6000/m", ConnectionsPerThing: 10, APIAuthFailuresPerIP: "30/m", PendingConnectionsPerIP: 100,
			ConsoleLoginPerIP: "10/m", DeviceUserCodePerCode: "10/10m", DeviceUserCodeTotal: "2000/20s",
			SignInFreeFailures: 5, SignInMaxDelay: 30 * time.Second},
		Events:  Events{Retention: 90 * 24 * time.Hour, DenialWindow: time.Minute},
		Cluster: Cluster{NATS: ClusterNATS{Replicas: 1}},
	}
}

// EnvPrefix starts every environment variable Gatehouse reads.
const EnvPrefix = "GATEHOUSE_"

// DecodeFile merges a YAML document into c. Unknown keys are errors.
func (c *Config) DecodeFile(r io.Reader) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file: %w", err)
	}
	return nil
}

// EnvVars lists every environment variable name the configuration reads,
// e.g. GATEHOUSE_HTTP_ADDR for http.addr and GATEHOUSE_DATA_DIR for dataDir.
func EnvVars() []string {
	var names []string
	walk(reflect.ValueOf(new(Config)).Elem(), nil, func(path []string, _ reflect.Value) {
		names = append(names, envName(path))
	})
	return names
}

// envName turns a yaml key path into its variable: http.externalURL is
// GATEHOUSE_HTTP_EXTERNAL_URL.
func envName(path []string) string {
	parts := make([]string, len(path))
	for i, key := range path {
		var b strings.Builder
		for j, r := range key {
			if j > 0 && r >= 'A' && r <= 'Z' {
				prev := key[j-1]
				if prev >= 'a' && prev <= 'z' || prev >= '0' && prev <= '9' {
					b.WriteByte('_')
				}
			}
			b.WriteRune(r)
		}
		parts[i] = strings.ToUpper(b.String())
	}
	return EnvPrefix + strings.Join(parts, "_")
}

// walk calls fn for every leaf field with its yaml key path.
func walk(v reflect.Value, path []string, fn func(path []string, field reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		p := append(append([]string(nil), path...), key)
		if f.Type.Kind() == reflect.Struct {
			walk(v.Field(i), p, fn)
			continue
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && f.Type != reflect.TypeFor[Prefixes]() {
			continue // lists of structures come from the file only
		}
		fn(p, v.Field(i))
	}
}

// ApplyEnv overrides fields from GATEHOUSE_* variables found by getenv.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	walk(reflect.ValueOf(c).Elem(), nil, func(path []string, field reflect.Value) {
		name := envName(path)
		val := getenv(name)
		if val == "" {
			return
		}
		if err := setField(field, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// Set sets the field at a dotted yaml path, e.g. "http.addr"; flags use it.
func (c *Config) Set(key, val string) error {
	var (
		found bool
		err   error
	)
	walk(reflect.ValueOf(c).Elem(), nil, func(path []string, field reflect.Value) {
		if strings.Join(path, ".") == key {
			found = true
			err = setField(field, val)
		}
	})
	if !found {
		return fmt.Errorf("unknown setting %q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func setField(f reflect.Value, val string) error {
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(val)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(val)
	case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", val)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%q is not true or false", val)
		}
		f.SetBool(b)
	case f.Type() == reflect.TypeFor[Prefixes]():
		ps, err := ParsePrefixes(val)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(ps))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

// Finish fills settings derived from others (the default DSN and external
// URL). Call it after all sources are applied and before Validate.
func (c *Config) Finish() {
	if c.Store.DSN == "" && c.DataDir != "" {
		c.Store.DSN = "sqlite:" + filepath.Join(c.DataDir, "gatehouse.db")
	}
	if c.HTTP.ExternalURL == "" {
		c.HTTP.ExternalURL = listenerURL("http", c.HTTP.Addr)
	}
	c.HTTP.ExternalURL = strings.TrimRight(c.HTTP.ExternalURL, "/")
	if c.HTTP.TLSExternalURL == "" {
		c.HTTP.TLSExternalURL = listenerURL("https", c.HTTP.TLSAddr)
	}
	c.HTTP.TLSExternalURL = strings.TrimRight(c.HTTP.TLSExternalURL, "/")
	if e := &c.Cluster.NATS.Embedded; e.Listen != "" && e.StoreDir == "" && c.DataDir != "" {
		e.StoreDir = filepath.Join(c.DataDir, "nats")
	}
	if c.Secrets.MasterKeyFile == "" && c.DataDir != "" {
		c.Secrets.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
}

// listenerURL is scheme://addr with a wildcard host made 127.0.0.1, or ""
// for an empty or malformed address.
func listenerURL(scheme, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Validate reports every problem with the configuration, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("dataDir: must be set")
	}
	if !strings.HasPrefix(c.Store.DSN, "sqlite:") && !strings.HasPrefix(c.Store.DSN, "postgres://") && !strings.HasPrefix(c.Store.DSN, "postgresql://") {
		bad("store.dsn: %q: want sqlite:PATH or postgres://...", redact(c.Store.DSN))
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr: %q: %v", c.HTTP.Addr, err)
	}
	if u, err := url.Parse(c.HTTP.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("http.externalURL: %q is not an http(s) URL", c.HTTP.ExternalURL)
	}
	if c.HTTP.TLSAddr != "" {
		if u, err := url.Parse(c.HTTP.TLSExternalURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("http.tlsExternalURL: %q is not an https URL", c.HTTP.TLSExternalURL)
		}
	}
	for _, r := range c.OAuth.Resources {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" {
			bad("oauth.resources: %q is not an absolute URI without a fragment (RFC 8707 section 2)", r)
		}
	}
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 64<<20 {
		bad("http.maxBodyBytes: %d: want 1024 to 67108864", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxImportBytes < c.HTTP.MaxBodyBytes || c.HTTP.MaxImportBytes > 1<<30 {
		bad("http.maxImportBytes: %d: want http.maxBodyBytes (%d) to 1073741824", c.HTTP.MaxImportBytes, c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		bad("http.shutdownTimeout: must be positive")
	}
	for name, d := range map[string]time.Duration{"http.readHeaderTimeout": c.HTTP.ReadHeaderTimeout, "http.readTimeout": c.HTTP.ReadTimeout,
		"http.writeTimeout": c.HTTP.WriteTimeout, "http.idleTimeout": c.HTTP.IdleTimeout, "mqtt.connectTimeout": c.MQTT.ConnectTimeout} {
		if d <= 0 || d > time.Hour {
			bad("%s: %s: want more than 0 and at most 1h", name, d)
		}
	}
	if c.HTTP.ReadTimeout > 0 && c.HTTP.ReadTimeout < c.HTTP.ReadHeaderTimeout {
		bad("http.readTimeout: %s is shorter than http.readHeaderTimeout %s", c.HTTP.ReadTimeout, c.HTTP.ReadHeaderTimeout)
	}
	if c.MQTT.MaxTopicBytes < 0 || c.MQTT.MaxTopicBytes > 65535 {
		bad("mqtt.maxTopicBytes: %d: want 0 (no limit) to 65535", c.MQTT.MaxTopicBytes)
	}
	if c.MQTT.MaxTopicLevels < 0 {
		bad("mqtt.maxTopicLevels: must not be negative (0 disables)")
	}
	if c.Limits.PendingConnectionsPerIP < 0 {
		bad("limits.pendingConnectionsPerIP: must not be negative (0 disables)")
	}
	if c.Events.Retention != 0 && c.Events.Retention < time.Hour {
		bad("events.retention: %s: want 0 (keep forever) or at least 1h", c.Events.Retention)
	}
	if c.Events.DenialWindow < 0 || c.Events.DenialWindow > time.Hour {
		bad("events.denialWindow: %s: want 0 (no aggregation) to 1h", c.Events.DenialWindow)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format: %q: want text or json", c.Log.Format)
	}
	switch c.OAuth.Algorithm {
	case "ES256", "EdDSA", "RS256":
	case "HS256":
		if len(c.OAuth.HS256Secret) < 32 {
			bad("oauth.hs256Secret: HS256 needs a shared secret of at least 32 bytes")
		}
	default:
		bad("oauth.algorithm: %q: want ES256, EdDSA, RS256 or HS256", c.OAuth.Algorithm)
	}
	for name, d := range map[string]time.Duration{
		"oauth.accessTokenTTL": c.OAuth.AccessTokenTTL, "oauth.refreshTokenTTL": c.OAuth.RefreshTokenTTL,
		"oauth.deviceCodeTTL": c.OAuth.DeviceCodeTTL, "oauth.keyRotation": c.OAuth.KeyRotation,
	} {
		if d <= 0 {
			bad("%s: must be positive", name)
		}
	}
	if c.PKI.LeafValidity < time.Hour || c.PKI.LeafValidity > 10*365*24*time.Hour {
		bad("pki.leafValidity: %s: want 1h to 10 years", c.PKI.LeafValidity)
	}
	if c.Access.PurgeInterval < 0 || c.Access.PendingTTL < 0 {
		bad("access: purgeInterval and pendingTTL must not be negative")
	}
	if p := c.AWSIoT.Prefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/api/")) {
		bad("awsIot.prefix: %q: want a path like /aws-iot (leading /, no trailing /, not under /api/)", p)
	}
	if c.AWSIoT.MaxSkew <= 0 || c.AWSIoT.MaxSkew > time.Hour {
		bad("awsIot.maxSkew: %s: want more than 0 and at most 1h", c.AWSIoT.MaxSkew)
	}
	if (c.MQTT.TLSAddr != "" || c.MQTT.WSSAddr != "") && len(c.MQTT.Hosts) == 0 {
		bad("mqtt.hosts: TLS listeners need at least one host name for their certificate")
	}
	for name, addr := range map[string]string{"mqtt.addr": c.MQTT.Addr, "mqtt.wsAddr": c.MQTT.WSAddr, "mqtt.tlsAddr": c.MQTT.TLSAddr, "mqtt.wssAddr": c.MQTT.WSSAddr, "http.tlsAddr": c.HTTP.TLSAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s: %q: %v", name, addr, err)
		}
	}
	if a := c.MQTT.AnonymousAddr; a != "" {
		host, _, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			bad("mqtt.anonymousAddr: %q: %v", a, err)
		case !IsLoopbackHost(host) && !c.MQTT.AnonymousAllowNonLoopback:
			bad("mqtt.anonymousAddr: %q is not a loopback address; the unauthenticated test listener stays on loopback unless mqtt.anonymousAllowNonLoopback is set", a)
		}
		if c.MQTT.AnonymousPolicy == "" {
			bad("mqtt.anonymousPolicy: the anonymous listener needs the name of a stored policy")
		}
	}
	if k := c.MQTT.MaxKeepAlive; k != 0 && (k < 5*time.Second || k > 65535*time.Second || k%time.Second != 0) {
		bad("mqtt.maxKeepAlive: %s: want 0 (no cap) or whole seconds from 5s to 65535s", k)
	}
	if d := c.MQTT.DeniedQoS0Publish; d != DeniedQoS0Disconnect && d != DeniedQoS0Drop {
		bad("mqtt.deniedQos0Publish: %q: want %q or %q", d, DeniedQoS0Disconnect, DeniedQoS0Drop)
	}
	if p := c.MQTT.EventTopicPrefix; p != "" && (strings.ContainsAny(p, "+#") || strings.HasSuffix(p, "/")) {
		bad("mqtt.eventTopicPrefix: %q: no wildcards and no trailing /", p)
	}
	for i, e := range c.OAuth.ExternalIssuers {
		if e.Issuer == "" || !strings.HasPrefix(e.JWKSURL, "http") {
			bad("oauth.externalIssuers[%d]: needs issuer and an http(s) jwksURL", i)
		}
		if e.Audience == "" {
			bad("oauth.externalIssuers[%d]: audience: must be set (the aud this server's tokens carry for Gatehouse)", i)
		}
		if e.Leeway < 0 || e.Leeway > 5*time.Minute {
			bad("oauth.externalIssuers[%d]: leeway: %s: want 0 to 5m", i, e.Leeway)
		}
	}
	if u := c.Authorizer.RabbitMQManagementURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
			// Not echoed: it may hold a password.
			bad("authorizer.rabbitmqManagementUrl: not an http(s) URL without credentials (set rabbitmqManagementUser and rabbitmqManagementPassword)")
		}
	}
	if c.Authorizer.MaxSessions < 0 || c.Authorizer.SessionTTL < 0 {
		bad("authorizer: maxSessions and sessionTTL must not be negative")
	}
	if c.Secrets.MasterKeyFile == "" {
		bad("secrets.masterKeyFile: must be set")
	}
	if c.Console.SessionTTL < time.Minute || c.Console.SessionTTL > 30*24*time.Hour {
		bad("console.sessionTTL: %s: want 1m to 720h", c.Console.SessionTTL)
	}
	if c.Console.IdleTimeout < time.Minute || c.Console.IdleTimeout > c.Console.SessionTTL {
		bad("console.idleTimeout: %s: want 1m up to console.sessionTTL", c.Console.IdleTimeout)
	}
	for name, r := range map[string]string{"limits.tokenPerIP": c.Limits.TokenPerIP, "limits.tokenPerClient": c.Limits.TokenPerClient,
		"limits.deviceUserCodePerIP": c.Limits.DeviceUserCodePerIP, "limits.registerPerIP": c.Limits.RegisterPerIP, "limits.connectPerIP": c.Limits.ConnectPerIP,
		"limits.certificatesPerClaim": c.Limits.CertificatesPerClaim,
		"limits.apiAuthFailuresPerIP": c.Limits.APIAuthFailuresPerIP, "limits.consoleLoginPerIP": c.Limits.ConsoleLoginPerIP,
		"limits.deviceUserCodePerCode": c.Limits.DeviceUserCodePerCode, "limits.deviceUserCodeTotal": c.Limits.DeviceUserCodeTotal} {
		if _, err := ratelimit.ParseRate(r); err != nil {
			bad("%s: %v", name, err)
		}
	}
	for name, rate := range map[string]string{"limits.deviceUserCodePerIP": c.Limits.DeviceUserCodePerIP, "limits.deviceUserCodePerCode": c.Limits.DeviceUserCodePerCode,
		"limits.deviceUserCodeTotal": c.Limits.DeviceUserCodeTotal} {
		if r, err := ratelimit.ParseRate(rate); err == nil && !r.Enabled() {
			bad("%s: user code guessing must stay limited", name)
		}
	}
	if c.Limits.SignInFreeFailures < 1 || c.Limits.SignInFreeFailures > 100 {
		bad("limits.signInFreeFailures: %d: want 1 to 100", c.Limits.SignInFreeFailures)
	}
	if c.Limits.SignInMaxDelay < time.Second || c.Limits.SignInMaxDelay > 10*time.Minute {
		bad("limits.signInMaxDelay: %s: want 1s to 10m (accounts are slowed, never locked)", c.Limits.SignInMaxDelay)
	}
	for _, p := range c.Limits.ExemptSources {
		if p.Bits() == 0 {
			bad("limits.exemptSources: %q exempts every address; set the limits off instead", p)
		}
	}
	if c.Limits.ConnectionsPerThing < 0 {
		bad("limits.connectionsPerThing: must not be negative (0 disables)")
	}
	if c.MQTT.MaxPacketSize < 0 || c.MQTT.MaxPacketSize > 268435455 {
		bad("mqtt.maxPacketSize: %d: want 0 (MQTT's own maximum) to 268435455", c.MQTT.MaxPacketSize)
	}
	if c.MQTT.MaxMessageSize < 0 || (c.MQTT.MaxPacketSize > 0 && c.MQTT.MaxMessageSize > c.MQTT.MaxPacketSize) {
		bad("mqtt.maxMessageSize: %d: want 0 (no limit) to mqtt.maxPacketSize", c.MQTT.MaxMessageSize)
	}
	if c.OAuth.AccessTokenTTL > 24*time.Hour {
		bad("oauth.accessTokenTTL: %s is longer than 24h", c.OAuth.AccessTokenTTL)
	}
	errs = append(errs, c.Cluster.NATS.validate()...)
	return errors.Join(errs...)
}

// validate checks the cluster settings.
func (c ClusterNATS) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	e := c.Embedded
	if c.URL != "" && e.Listen != "" {
		bad("cluster.nats: set url (external NATS) or embedded.listen, not both")
	}
	if c.URL != "" {
		for _, u := range strings.Split(c.URL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls") {
				bad("cluster.nats.url: %q: want nats://host:port or tls://host:port, comma-separated", u)
			}
		}
	}
	if e.Listen == "" && (len(e.Routes) > 0 || e.Name != "" || e.RoutePassword != "") {
		bad("cluster.nats.embedded: routes, name and routePassword need listen")
	}
	if e.Listen != "" {
		host, _, err := net.SplitHostPort(e.Listen)
		if err != nil {
			bad("cluster.nats.embedded.listen: %q: %v", e.Listen, err)
		} else if !IsLoopbackHost(host) && e.RoutePassword == "" {
			bad("cluster.nats.embedded.routePassword: needed when listen (%q) is not a loopback address", e.Listen)
		}
		if e.Name == "" || strings.ContainsAny(e.Name, " \t\r\n.*>") {
			bad("cluster.nats.embedded.name: %q: each replica needs a unique name without spaces, dots or wildcards", e.Name)
		}
		for _, r := range e.Routes {
			hp := r
			if _, after, ok := strings.Cut(r, "://"); ok {
				hp = after
			}
			if _, _, err := net.SplitHostPort(hp); err != nil {
				bad("cluster.nats.embedded.routes: %q: want host:port", r)
			}
		}
		if len(e.Routes) == 0 {
			bad("cluster.nats.embedded.routes: list every replica's route listener (this one's may be among them); a JetStream cluster needs them")
		}
		if c.Replicas > len(e.Routes)+1 {
			bad("cluster.nats.replicas: %d is more than the %d servers routes name", c.Replicas, len(e.Routes)+1)
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("cluster.nats.replicas: %d: want 1 to 5", c.Replicas)
	}
	return errs
}

// IsLoopbackHost reports whether host (of a listen address) is "localhost"
// or a loopback IP address; "" (every interface) is not.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// mask replaces a secret in Redacted's output.
const mask = "xxxxx"

// secretDSNParam reports whether a DSN query parameter holds a secret.
func secretDSNParam(key string) bool {
	return strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword")
}

// redact masks the password of a DSN's user info and of its query
// parameters; a DSN that does not parse is masked whole.
func redact(dsn string) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		if dsn == "" {
			return ""
		}
		return mask
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return mask
		}
		for key := range q {
			if secretDSNParam(key) {
				q[key] = []string{mask}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactURLs masks passwords in a comma-separated list of URLs.
func redactURLs(list string) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, u := range parts {
		parts[i] = redact(strings.TrimSpace(u))
	}
	return strings.Join(parts, ",")
}

// Redacted returns the configuration as YAML with secrets masked, for
// logging at debug level and `gatehouse config`. A field tagged
// secret:"true" is masked whole (each element of a list), one tagged
// secret:"dsn" keeps all but its passwords, secret:"urls" likewise for a
// comma-separated list of URLs.
func (c Config) Redacted() string {
	v := reflect.ValueOf(&c).Elem()
	maskSecrets(v)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(c)
	return b.String()
}

// maskSecrets masks the secret fields of the struct v in place. Slices are
// replaced by masked copies, never written through, so the configuration
// Redacted was called on keeps its values.
func maskSecrets(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		switch tag := f.Tag.Get("secret"); {
		case tag == "dsn" && fv.Kind() == reflect.String:
			fv.SetString(redact(fv.String()))
		case tag == "urls" && fv.Kind() == reflect.String:
			fv.SetString(redactURLs(fv.String()))
		case tag != "" && fv.Kind() == reflect.String:
			if fv.String() != "" {
				fv.SetString(mask)
			}
		case tag != "" && fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			if fv.Len() > 0 {
				masked := make([]string, fv.Len())
				for j := range masked {
					masked[j] = mask
				}
				fv.Set(reflect.ValueOf(masked))
			}
		case tag != "":
			fv.Set(reflect.Zero(fv.Type()))
		case fv.Kind() == reflect.Struct:
			maskSecrets(fv)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct && fv.Len() > 0:
			copied := reflect.MakeSlice(fv.Type(), fv.Len(), fv.Len())
			reflect.Copy(copied, fv)
			for j := range copied.Len() {
				maskSecrets(copied.Index(j))
			}
			fv.Set(copied)
		}
	}
}

// Access configures the expiry of relationships and access requests.
type Access struct {
	// PurgeInterval is how often expired relationships are purged (with a
	// relationship.expired event) and ended requests marked; 0 disables.
	PurgeInterval time.Duration `yaml:"purgeInterval"`
	// PendingTTL expires access requests nobody decided; 0 never does.
	PendingTTL time.Duration `yaml:"pendingTTL"`
}

// AWSIoT configures the AWS-IoT-compatible registry API on the HTTP
// listener. Callers sign with access keys from `gatehouse aws-keys`.
type AWSIoT struct {
	// Prefix is the path the API is served under; "" disables it.
	Prefix string `yaml:"prefix"`
	// Region is the signing region required ("" accepts any) and the
	// region of returned ARNs.
	Region string `yaml:"region"`
	// Account is the account id in returned ARNs.
	Account string `yaml:"account"`
	// MaxSkew bounds the difference between a request's X-Amz-Date and
	// the server clock.
	MaxSkew time.Duration `yaml:"maxSkew"`
}
