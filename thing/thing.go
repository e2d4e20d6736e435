package thing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Files in the state directory.
const (
	fileState        = "state.json"
	fileClientSecret = "client_secret"
	fileKey          = "key.pem"
	fileCert         = "cert.pem"
	fileCA           = "ca.pem"
	fileToken        = "token.json"
)

// AuthMethod is how the thing authenticates to get tokens.
type AuthMethod int

const (
	// AuthAuto uses the client secret if the thing has one, else a JWT
	// signed with its key (private_key_jwt).
	AuthAuto AuthMethod = iota
	// AuthClientSecretBasic sends the client secret with HTTP Basic.
	AuthClientSecretBasic
	// AuthClientSecretPost sends the client secret in the form body.
	AuthClientSecretPost
	// AuthPrivateKeyJWT sends a client assertion (RFC 7523) signed with the
	// thing's key; its public JWK must be registered with the server.
	AuthPrivateKeyJWT
	// AuthNone is a public client (RFC 6749 section 2.1): it sends its
	// client id and no credential, as a tool in a person's hands does
	// (the gatehouse CLI's device-login). Such a client gets tokens only
	// through DeviceFlow, where a person approves.
	AuthNone
)

// TokenEndpoint is where the thing asks for access tokens.
type TokenEndpoint int

const (
	// EndpointOAuth is the standard token endpoint (client credentials).
	EndpointOAuth TokenEndpoint = iota
	// EndpointThings is the ForgeRock-style
	// POST /things/{name}?_action=get_access_token.
	EndpointThings
)

// Config configures a Thing.
type Config struct {
	// ServerURL is the Gatehouse base URL, e.g. https://gatehouse.example.com.
	ServerURL string
	// Name is the thing name. Optional once the state directory knows it.
	Name string
	// StateDir holds the thing's credentials, created 0700. It may be
	// empty for a client whose credentials come from Config (a public
	// client, AuthNone, or a ClientSecret): then the tokens stay in
	// memory and nothing is written anywhere.
	StateDir string
	// ClientSecret is a client secret the caller holds instead of
	// StateDir/client_secret (e.g. from the environment); it is never
	// written.
	ClientSecret string
	// HTTPClient talks to the server; default: a client with a 30 s timeout
	// that trusts the stored root CA besides the system roots.
	HTTPClient *http.Client
	// Logger gets debug and info messages, never secrets; default discards.
	Logger *slog.Logger
	// Scopes are requested with every token; empty asks for all the
	// thing may have.
	Scopes []string
	// Auth and Endpoint choose how tokens are fetched.
	Auth     AuthMethod
	Endpoint TokenEndpoint
	// RefreshBefore is how long before expiry a cached token is renewed;
	// default 30 s (or a tenth of the token's lifetime if shorter).
	RefreshBefore time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Retry is what every call does when the server answers "too many
	// requests" or "busy" (see Retry); the zero value retries with the
	// default backoff, Retry{Disable: true} fails at once.
	Retry Retry
}

// state is the non-secret part of what the thing remembers.
type state struct {
	Name          string            `json:"name"`
	CertificateID string            `json:"certificateId,omitempty"`
	Endpoints     map[string]string `json:"endpoints,omitempty"`
}

// Thing is a device's view of itself: its name, credentials and a token
// cache. It is safe for concurrent use.
type Thing struct {
	cfg    Config
	server string
	http   *http.Client
	log    *slog.Logger
	now    func() time.Time
	// retryPolicy is cfg.Retry with its defaults filled in.
	retryPolicy Retry

	mu      sync.Mutex
	st      state
	secret  string
	key     crypto.Signer
	tok     *Token
	meta    *metadata
	tokenMu sync.Mutex // serialises token fetches
}

// New loads the thing's state from cfg.StateDir (creating the directory
// if needed) and returns it. A name in cfg must match a stored one.
func New(cfg Config) (*Thing, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("thing: Config.ServerURL is required")
	}
	switch {
	case cfg.StateDir == "" && (cfg.Name == "" || cfg.Auth != AuthNone && cfg.ClientSecret == ""):
		return nil, errors.New("thing: Config.StateDir is required, but for a named client whose credentials come from Config (AuthNone, or a ClientSecret)")
	case cfg.StateDir != "":
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("thing: state dir: %w", err)
		}
	}
	t := &Thing{cfg: cfg, server: strings.TrimRight(cfg.ServerURL, "/"), log: cfg.Logger, now: cfg.Now, retryPolicy: cfg.Retry.withDefaults()}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	if err := t.readJSON(fileState, &t.st); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	switch {
	case cfg.Name != "" && t.st.Name != "" && cfg.Name != t.st.Name:
		return nil, fmt.Errorf("thing: state dir %s belongs to thing %q, not %q", cfg.StateDir, t.st.Name, cfg.Name)
	case cfg.Name != "":
		t.st.Name = cfg.Name
	case t.st.Name == "":
		return nil, errors.New("thing: Config.Name is required for a new state dir")
	}
	if cfg.ClientSecret != "" {
		t.secret = cfg.ClientSecret
	} else if b, err := t.readFile(fileClientSecret); err == nil {
		t.secret = strings.TrimSpace(string(b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if b, err := t.readFile(fileKey); err == nil {
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("thing: %s: %w", fileKey, err)
		}
		t.key = k
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var tok Token
	if err := t.readJSON(fileToken, &tok); err == nil {
		t.tok = &tok
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	t.http = cfg.HTTPClient
	if t.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if pool, err := t.RootCAs(); err == nil {
			tr.TLSClientConfig.RootCAs = pool
		}
		t.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	if err := t.saveState(); err != nil {
		return nil, err
	}
	return t, nil
}

// Name is the thing's name.
func (t *Thing) Name() string { return t.st.Name }

// Endpoints are the server endpoints returned at registration (keys
// "https", "mqtt", "mqtts"), or nil.
func (t *Thing) Endpoints() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.st.Endpoints)
}

// CertificateID is the SHA-256 fingerprint of the registered certificate,
// or "".
func (t *Thing) CertificateID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.CertificateID
}

// SetClientSecret stores the client secret an operator created for the
// thing (0600) and uses it from now on.
func (t *Thing) SetClientSecret(secret string) error {
	if err := t.writeFile(fileClientSecret, []byte(secret)); err != nil {
		return err
	}
	t.mu.Lock()
	t.secret = secret
	t.mu.Unlock()
	return nil
}

// HasClientSecret tells whether a client secret is stored.
func (t *Thing) HasClientSecret() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.secret != ""
}

// Key returns the thing's private key, generating and storing an ECDSA
// P-256 key the first time. The key never leaves the device.
func (t *Thing) Key() (crypto.Signer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.key != nil {
		return t.key, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("thing: generate key: %w", err)
	}
	if err := t.writeKey(fileKey, k); err != nil {
		return nil, err
	}
	t.key = k
	t.log.Info("thing: generated device key", "thing", t.st.Name)
	return k, nil
}

// Certificate returns the registered certificate with its key, for mutual
// TLS.
func (t *Thing) Certificate() (tls.Certificate, error) {
	certPEM, err := t.readFile(fileCert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("thing: no certificate (register first): %w", err)
	}
	keyPEM, err := t.readFile(fileKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("thing: no key: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("thing: certificate: %w", err)
	}
	return c, nil
}

// RootCAs returns a pool with the stored root CA.
func (t *Thing) RootCAs() (*x509.CertPool, error) {
	b, err := t.readFile(fileCA)
	if err != nil {
		return nil, fmt.Errorf("thing: no root CA (register first): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("thing: ca.pem holds no certificate")
	}
	return pool, nil
}

// LoadOrCreateSigningKey returns the ECDSA P-256 key stored in the state
// directory as name (e.g. "authorizer-key.pem"), generating it the first
// time. Use it for custom-authorizer token signatures.
func (t *Thing) LoadOrCreateSigningKey(name string) (crypto.Signer, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == fileKey {
		return nil, fmt.Errorf("thing: bad key file name %q", name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, err := t.readFile(name); err == nil {
		return parseKey(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("thing: generate key: %w", err)
	}
	if err := t.writeKey(name, k); err != nil {
		return nil, err
	}
	return k, nil
}

// PublicKeyPEM encodes a signer's public key as a PEM "PUBLIC KEY", the
// form custom authorizers are configured with.
func PublicKeyPEM(s crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return "", fmt.Errorf("thing: public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var (
		k   any
		err error
	)
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

func (t *Thing) writeKey(name string, k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("thing: encode key: %w", err)
	}
	return t.writeFile(name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func (t *Thing) path(name string) string { return filepath.Join(t.cfg.StateDir, name) }

// readFile reads a state file; without a state directory (a public
// client in memory) there is none.
func (t *Thing) readFile(name string) ([]byte, error) {
	if t.cfg.StateDir == "" {
		return nil, fs.ErrNotExist
	}
	return os.ReadFile(t.path(name))
}

func (t *Thing) readJSON(name string, v any) error {
	b, err := t.readFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("thing: %s: %w", name, err)
	}
	return nil
}

// writeFile replaces a state file atomically, readable by the owner only.
func (t *Thing) writeFile(name string, b []byte) error {
	if t.cfg.StateDir == "" {
		return nil // a public client in memory keeps nothing
	}
	f, err := os.CreateTemp(t.cfg.StateDir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("thing: write %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("thing: write %s: %w", name, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("thing: write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("thing: write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), t.path(name)); err != nil {
		return fmt.Errorf("thing: write %s: %w", name, err)
	}
	return nil
}

func (t *Thing) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("thing: encode %s: %w", name, err)
	}
	return t.writeFile(name, b)
}

// saveState writes state.json; callers hold t.mu or own t exclusively.
func (t *Thing) saveState() error { return t.writeJSON(fileState, t.st) }
