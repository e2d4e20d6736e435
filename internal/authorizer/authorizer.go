package authorizer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// KeyHeader carries the shared secret that protects the adapter endpoints.
const KeyHeader = "X-Gatehouse-Adapter-Key"

// KeyParam is the query parameter alternative to KeyHeader, for brokers
// (RabbitMQ) that cannot send headers.
const KeyParam = "adapter_key"

// Authenticator checks credentials, and rechecks an identity that
// authenticated earlier; *authn.Authenticator is one.
type Authenticator interface {
	Authenticate(ctx context.Context, c authn.Credentials) (*authn.Identity, error)
	Recheck(ctx context.Context, id *authn.Identity) error
}

// Config holds the adapters' dependencies and settings.
type Config struct {
	Authn    Authenticator
	Registry *registry.Service
	// Store keeps the sessions brokers authenticated, shared by every
	// replica.
	Store *store.Store
	// Revoked tells whether the access token with a jti was revoked
	// (*oauth.Server.Revoked); nil: never.
	Revoked func(ctx context.Context, jti string) bool
	// Events is the log Run follows: revocations and registry changes end
	// RabbitMQ connections.
	Events *events.Log
	// RabbitMQManagement is where Run closes RabbitMQ connections whose
	// credential was revoked, disabled or expired; no URL: it does not.
	RabbitMQManagement RabbitMQManagement
	// Policy pins the region and account of ARN resources, as for the
	// embedded broker.
	Policy policy.Options
	Logger *slog.Logger
	Now    func() time.Time

	// Keys are the accepted shared secrets (several, for rotation).
	Keys []string
	// AllowedSources are networks whose requests need no key.
	AllowedSources []netip.Prefix

	// MaxSessions bounds the unexpired sessions in the store (default
	// 100,000).
	MaxSessions int
	// SessionTTL bounds a session whose credential never expires (default
	// 24 hours).
	SessionTTL time.Duration
	// ResolveByThingName lets an EMQX authz request without a session be
	// decided on the policies of the thing named by its username when the
	// client id is that name (see the package documentation).
	ResolveByThingName bool

	// RabbitMQVHosts are the vhosts MQTT clients may use (default "/").
	RabbitMQVHosts []string
	// RabbitMQExchange is the MQTT plugin's topic exchange (default
	// amq.topic, the plugin's mqtt.exchange).
	RabbitMQExchange string
}

// Adapters serves the external-broker endpoints.
type Adapters struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	keys   [][sha256.Size]byte
	count  sessionCount
	recent recentSessions
	vhosts map[string]bool
	rabbit *rabbitManagement
}

// New returns the adapters for c.
func New(c Config) *Adapters {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 100_000
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 24 * time.Hour
	}
	if len(c.RabbitMQVHosts) == 0 {
		c.RabbitMQVHosts = []string{"/"}
	}
	if c.RabbitMQExchange == "" {
		c.RabbitMQExchange = "amq.topic"
	}
	if c.Revoked == nil {
		c.Revoked = func(context.Context, string) bool { return false }
	}
	a := &Adapters{cfg: c, log: c.Logger, now: c.Now, vhosts: map[string]bool{}, rabbit: newRabbitManagement(c.RabbitMQManagement)}
	for _, k := range c.Keys {
		if k != "" {
			a.keys = append(a.keys, sha256.Sum256([]byte(k)))
		}
	}
	for _, v := range c.RabbitMQVHosts {
		a.vhosts[v] = true
	}
	return a
}

// Handler serves /authorizer/emqx/{authn,authz} and
// /authorizer/rabbitmq/{user,vhost,resource,topic}.
func (a *Adapters) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/authorizer/emqx/authn", a.emqxAuthn)
	mux.HandleFunc("/authorizer/emqx/authz", a.emqxAuthz)
	mux.HandleFunc("/authorizer/rabbitmq/user", a.rabbitUser)
	mux.HandleFunc("/authorizer/rabbitmq/vhost", a.rabbitVHost)
	mux.HandleFunc("/authorizer/rabbitmq/resource", a.rabbitResource)
	mux.HandleFunc("/authorizer/rabbitmq/topic", a.rabbitTopic)
	return a.guard(mux)
}

// maxBody bounds a request body; the largest field is a token.
const maxBody = 64 << 10

// guard admits requests with a configured key or from an allowed source.
func (a *Adapters) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		if !a.admitted(r) {
			// A refusal the broker understands as one: EMQX takes a 4xx
			// for "ignore" (and then, by default, allows), RabbitMQ for an
			// error.
			a.log.Warn("authorizer request refused: no valid adapter key and source not allowed", "remote", r.RemoteAddr, "path", r.URL.Path)
			if strings.HasPrefix(r.URL.Path, "/authorizer/emqx/") {
				writeEMQX(w, emqxResponse{Result: resultDeny})
			} else {
				writeRabbit(w, false)
			}
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func (a *Adapters) admitted(r *http.Request) bool {
	if ip := remoteIP(r.RemoteAddr); ip.IsValid() {
		for _, p := range a.cfg.AllowedSources {
			if p.Contains(ip) {
				return true
			}
		}
	}
	key := r.Header.Get(KeyHeader)
	if key == "" {
		key = r.URL.Query().Get(KeyParam)
	}
	if key == "" {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range a.keys {
		ok |= subtle.ConstantTimeCompare(sum[:], k[:])
	}
	return ok == 1
}

func remoteIP(addr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap()
	}
	ip, _ := netip.ParseAddr(addr)
	return ip.Unmap()
}

// ErrThingDisabled refuses sessions whose thing was disabled since.
var ErrThingDisabled = errors.New("authorizer: thing is not enabled")

// bind is Bind with the adapters' registry and policy options; thingAs is
// the client id (or for RabbitMQ without one, the username).
func (a *Adapters) bind(ctx context.Context, sub registry.Subject, id *authn.Identity, clientID, thingAs string, ip netip.Addr) (*policy.Bound, error) {
	return Bind(ctx, a.cfg.Registry, a.cfg.Policy, sub, id, clientID, thingAs, ip)
}

// Bind resolves sub's policies now (the registry caches them and drops the
// cache on changes, so edits apply at once) and binds them for a broker
// connection of id with clientID from ip; a disabled thing is refused
// (ErrThingDisabled). Thing variables resolve only when thingAs is the
// thing's name.
func Bind(ctx context.Context, reg *registry.Service, opts policy.Options, sub registry.Subject, id *authn.Identity, clientID, thingAs string, ip netip.Addr) (*policy.Bound, error) {
	res, err := reg.ResolvePolicies(ctx, sub, opts)
	if err != nil {
		return nil, fmt.Errorf("authorizer: resolve policies: %w", err)
	}
	if res.Thing != nil && res.Thing.State != store.StateEnabled {
		return nil, ErrThingDisabled
	}
	var (
		cert *policy.Certificate
		tok  *policy.Token
	)
	if id != nil {
		cert, tok = id.Certificate, id.Token
	}
	pctx := registry.PolicyContext(res, clientID, ip, cert, tok)
	if res.Thing == nil || thingAs == "" || res.Thing.Name != thingAs {
		pctx.Thing = nil
	}
	return res.Set.Bind(pctx), nil
}

// SubscribeAllowed is the embedded broker's SUBSCRIBE decision: a literal
// (wildcard-free, unshared) filter also needs iot:Receive.
func SubscribeAllowed(b *policy.Bound, filter string) bool {
	if policy.ValidateTopicFilter(filter) != nil || !b.Allowed(policy.ActionSubscribe, filter) {
		return false
	}
	if _, _, shared := policy.SplitShared(filter); shared || policy.HasWildcard(filter) {
		return true
	}
	return b.Allowed(policy.ActionReceive, filter)
}

// PublishAllowed is the PUBLISH decision.
func PublishAllowed(b *policy.Bound, topic string, retain bool) bool {
	if policy.ValidateTopicName(topic) != nil || !b.Allowed(policy.ActionPublish, topic) {
		return false
	}
	return !retain || b.Allowed(policy.ActionRetainPublish, topic)
}

// logName is a username fit for logs: an AWS-IoT-style custom-authorizer
// username carries the token and signature after "?", so that is cut.
func logName(u string) string {
	name, _, _ := strings.Cut(u, "?")
	return truncate(name)
}

// truncate keeps logged client-supplied strings short.
func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}
