package thing

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// Lobby target kinds an assignment names.
const (
	// TargetLocal is the Gatehouse the lobby belongs to: the device logs in
	// there with its manufacturer certificate, as its thing.
	TargetLocal = "local"
	// TargetMQTT is another MQTT broker: the device logs in there with its
	// manufacturer certificate.
	TargetMQTT = "mqtt"
	// TargetGatehouse is another Gatehouse: the device registers there with
	// the registration token of its assignment (a CSR for a new key) and
	// logs in with the certificate it gets.
	TargetGatehouse = "gatehouse"
)

// LobbyConfig configures JoinLobby and WaitForAssignment.
type LobbyConfig struct {
	// Lobbies are the lobby's MQTT over TLS URLs (mqtts://host:port),
	// tried in order: when the connection to one fails or drops, the device
	// moves on to the next. At least one is required.
	Lobbies []string
	// Certificate is the device's manufacturer certificate and private
	// key. Its SHA-256 fingerprint is the device's identity in the lobby
	// (and the QR code printed on it). Required.
	Certificate tls.Certificate
	// RootCAs verify the lobby's server certificate; nil uses the system
	// roots.
	RootCAs *x509.CertPool
	// StateDir keeps the assignment (lobby.json) and, below target/, the
	// thing's state at its target. Required; created 0700.
	StateDir string
	// State and Config are what the device reports in its knocks;
	// State defaults to "factory default".
	State, Config string
	// KnockInterval is the time between knocks while the device waits;
	// default 5 s. Every knock also asks the lobby to send the assignment
	// again, so a device that moved to another lobby replica gets it there.
	KnockInterval time.Duration
	// Logger gets progress messages, never secrets; default discards.
	Logger *slog.Logger
}

// Assignment is what the lobby tells a claimed device: where to go and
// with which configuration.
type Assignment struct {
	// Kind is TargetLocal, TargetMQTT or TargetGatehouse.
	Kind string `json:"kind,omitempty"`
	// Endpoint is the target's MQTT URL (mqtts://host:port).
	Endpoint string `json:"endpoint,omitempty"`
	// Config is the operator's configuration for the device.
	Config string `json:"config,omitempty"`
	// CAChain (PEM) verifies the target's server certificate.
	CAChain string `json:"caChain,omitempty"`
	// ThingName is the device's name at the target (its MQTT client id).
	ThingName string `json:"thingName,omitempty"`
	// ServerURL is a Gatehouse target's base URL.
	ServerURL string `json:"serverUrl,omitempty"`
	// RegistrationToken registers the device at a Gatehouse target (single
	// use; a secret).
	RegistrationToken string `json:"registrationToken,omitempty"`
}

func (a *Assignment) kind() string {
	switch {
	case a.Kind != "":
		return a.Kind
	case a.RegistrationToken != "":
		return TargetGatehouse
	case a.ThingName != "":
		return TargetLocal
	}
	return TargetMQTT
}

func (a *Assignment) check() error {
	if a.Endpoint == "" && a.kind() != TargetGatehouse {
		return errors.New("thing: assignment without an endpoint")
	}
	if a.Endpoint != "" {
		if _, err := url.Parse(a.Endpoint); err != nil {
			return fmt.Errorf("thing: assignment endpoint: %w", err)
		}
	}
	switch a.kind() {
	case TargetLocal, TargetMQTT:
	case TargetGatehouse:
		if a.ServerURL == "" || a.RegistrationToken == "" || a.ThingName == "" {
			return errors.New("thing: a gatehouse assignment needs serverUrl, registrationToken and thingName")
		}
	default:
		return fmt.Errorf("thing: unknown assignment kind %q", a.Kind)
	}
	return nil
}

// Joined is a device that left the lobby for its target.
type Joined struct {
	Assignment Assignment
	// Thing is the device at its target (state in StateDir/target).
	Thing *Thing
	// Conn is the MQTT connection to the target, logged in.
	Conn *Conn
}

// lobbyFile is what the device remembers of the lobby.
type lobbyFile struct {
	Assignment Assignment `json:"assignment"`
	Arrived    bool       `json:"arrived"`
}

const fileLobby = "lobby.json"

// Fingerprint is the lobby identity of a certificate: the lowercase hex
// SHA-256 of its DER encoding.
func Fingerprint(cert tls.Certificate) (string, error) {
	if len(cert.Certificate) == 0 {
		return "", errors.New("thing: no certificate")
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:]), nil
}

func (c *LobbyConfig) check() (fp string, urls []*url.URL, err error) {
	if len(c.Lobbies) == 0 {
		return "", nil, errors.New("thing: LobbyConfig.Lobbies is required")
	}
	if c.StateDir == "" {
		return "", nil, errors.New("thing: LobbyConfig.StateDir is required")
	}
	if c.Certificate.PrivateKey == nil {
		return "", nil, errors.New("thing: LobbyConfig.Certificate needs its private key")
	}
	if fp, err = Fingerprint(c.Certificate); err != nil {
		return "", nil, err
	}
	for _, raw := range c.Lobbies {
		u, err := url.Parse(raw)
		if err != nil {
			return "", nil, fmt.Errorf("thing: lobby URL %q: %w", raw, err)
		}
		if u.Scheme != "mqtts" && u.Scheme != "tls" && u.Scheme != "ssl" {
			return "", nil, fmt.Errorf("thing: lobby URL %q: the lobby needs mqtts://", raw)
		}
		urls = append(urls, u)
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return "", nil, fmt.Errorf("thing: state dir: %w", err)
	}
	return fp, urls, nil
}

// lobbySession is an MQTT session in the lobby.
type lobbySession struct {
	cfg  LobbyConfig
	fp   string
	self *Thing // files in StateDir; the MQTT client of the session
	got  chan Assignment
	// hosts are the lobby's host names: an assignment must be signed by
	// a certificate for one of them (see VerifyLobbyMessage).
	hosts []string

	mu   sync.Mutex
	conn *Conn // nil until connected and once closed
}

func (s *lobbySession) current() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

func (c *LobbyConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// openLobby connects to the first lobby that answers, subscribes to the
// assignment topic and starts knocking.
func openLobby(ctx context.Context, cfg LobbyConfig) (*lobbySession, error) {
	fp, urls, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if cfg.State == "" {
		cfg.State = "factory default"
	}
	if cfg.KnockInterval <= 0 {
		cfg.KnockInterval = 5 * time.Second
	}
	s := &lobbySession{cfg: cfg, fp: fp, got: make(chan Assignment, 1),
		self: &Thing{cfg: Config{StateDir: cfg.StateDir}, log: cfg.logger(), now: time.Now, st: state{Name: fp}}}
	for _, u := range urls {
		s.hosts = append(s.hosts, u.Hostname())
	}
	opts := MQTTOptions{Auth: MQTTCertificate, ClientID: fp,
		TLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs, Certificates: []tls.Certificate{cfg.Certificate}}}
	knock := func() {
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.knock(kctx, cfg.State); err != nil {
			s.self.log.Info("thing: lobby knock failed", "err", err)
		}
	}
	// Every (re)connection knocks at once; the first one once subscribed.
	conn, err := s.self.dial(ctx, urls, opts, func() { go knock() })
	if err != nil {
		return nil, fmt.Errorf("thing: lobby: %w", err)
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	if err := conn.Subscribe(ctx, "$gatehouse/lobby/"+fp+"/assignment", 1, s.onAssignment); err != nil {
		s.close(ctx)
		return nil, err
	}
	go knock()
	s.self.log.Info("thing: in the lobby", "certificateId", fp)
	return s, nil
}

func (s *lobbySession) onAssignment(m Message) {
	if len(m.Payload) == 0 {
		return // a cleared retained assignment
	}
	// Only the lobby may send the device anywhere: a message it did not
	// sign (a forged assignment sending the device, and its manufacturer
	// certificate, to someone else's endpoint) is refused.
	ap, err := VerifyLobbyMessage(m.Payload, s.fp, s.hosts, s.cfg.RootCAs, s.self.now())
	if err != nil {
		s.self.log.Warn("thing: refusing a lobby message", "err", err)
		return
	}
	a := *ap
	if a.Endpoint == "" && a.RegistrationToken == "" {
		s.self.log.Info("thing: lobby message without a target", "config", a.Config)
		return // e.g. {"config":"factory reset"} to a device still waiting
	}
	select {
	case s.got <- a:
	default: // one is waiting already; the same assignment again
	}
}

// knock publishes the device's state; the lobby answers a commissioned
// device with its assignment again.
func (s *lobbySession) knock(ctx context.Context, deviceState string) error {
	conn := s.current()
	if conn == nil {
		return nil // not connected yet (the first knock follows) or closed
	}
	b, err := json.Marshal(map[string]string{"state": deviceState, "config": s.cfg.Config})
	if err != nil {
		return err
	}
	return conn.Publish(ctx, "$gatehouse/lobby/"+s.fp+"/knock", b, 1, false)
}

// wait knocks every KnockInterval until an assignment arrives.
func (s *lobbySession) wait(ctx context.Context) (*Assignment, error) {
	tick := time.NewTicker(s.cfg.KnockInterval)
	defer tick.Stop()
	for {
		select {
		case a := <-s.got:
			if err := a.check(); err != nil {
				s.self.log.Info("thing: ignoring an assignment", "err", err)
				continue
			}
			s.self.log.Info("thing: assigned", "kind", a.kind(), "endpoint", a.Endpoint, "thingName", a.ThingName)
			return &a, nil
		case <-tick.C:
			kctx, cancel := context.WithTimeout(ctx, s.cfg.KnockInterval)
			if err := s.knock(kctx, s.cfg.State); err != nil && ctx.Err() == nil {
				s.self.log.Info("thing: lobby knock failed", "err", err)
			}
			cancel()
		case <-ctx.Done():
			return nil, fmt.Errorf("thing: waiting in the lobby: %w", ctx.Err())
		}
	}
}

func (s *lobbySession) close(ctx context.Context) {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

// WaitForAssignment connects to the lobby with the manufacturer
// certificate (MQTT client id = its fingerprint), knocks, and waits until
// an operator claims the device and the lobby hands it its assignment. It
// neither stores the assignment nor goes to the target; JoinLobby does.
func WaitForAssignment(ctx context.Context, cfg LobbyConfig) (*Assignment, error) {
	s, err := openLobby(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	return s.wait(ctx)
}

// JoinLobby takes a device from the lobby to its target. A device that
// arrived at a target before goes there at once (and back to the lobby if
// the target refuses it). Otherwise it connects to the lobby (trying
// cfg.Lobbies in turn), knocks, waits until an operator claims it, stores
// the assignment, logs in at the target - registering first at a
// Gatehouse target - and reports its arrival: a local target sees the
// login itself, for other targets the device knocks "arrived" before it
// leaves the lobby. It returns the logged-in connection to the target.
//
// The connection reconnects by itself. When the target refuses the device
// for good (an operator rerouted or reset it, which deactivates its
// certificate at a local target), close it and call JoinLobby again: the
// refusal sends the device back to the lobby.
func JoinLobby(ctx context.Context, cfg LobbyConfig) (*Joined, error) {
	if _, _, err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.logger()
	var saved lobbyFile
	if err := readJSONFile(filepath.Join(cfg.StateDir, fileLobby), &saved); err == nil && saved.Arrived {
		j, err := arrive(ctx, cfg, &saved.Assignment)
		if err == nil {
			return j, nil
		}
		var ce *autopaho.ConnackError
		if !errors.As(err, &ce) {
			return nil, err
		}
		log.Info("thing: the target refused the device; back to the lobby", "err", err)
		if err := ForgetAssignment(cfg.StateDir); err != nil {
			return nil, err
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s, err := openLobby(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	a, err := s.wait(ctx)
	if err != nil {
		return nil, err
	}
	if *a != saved.Assignment {
		// A new target: whatever the device was at another one goes.
		if err := os.RemoveAll(filepath.Join(cfg.StateDir, "target")); err != nil {
			return nil, fmt.Errorf("thing: forget the old target: %w", err)
		}
	}
	if err := s.self.writeJSON(fileLobby, lobbyFile{Assignment: *a}); err != nil {
		return nil, err
	}
	if a.kind() == TargetLocal {
		// The lobby session ends before the login at the target, which
		// takes the device out of the lobby.
		s.close(ctx)
	}
	j, err := arrive(ctx, cfg, a)
	if err != nil {
		return nil, err
	}
	if a.kind() != TargetLocal {
		if err := s.knock(ctx, "arrived"); err != nil {
			j.Conn.Close(ctx)
			return nil, fmt.Errorf("thing: report arrival: %w", err)
		}
	}
	if err := s.self.writeJSON(fileLobby, lobbyFile{Assignment: *a, Arrived: true}); err != nil {
		j.Conn.Close(ctx)
		return nil, err
	}
	log.Info("thing: arrived at the target", "kind", a.kind(), "thingName", j.Thing.Name())
	return j, nil
}

// ForgetAssignment deletes the stored assignment and target state (a
// factory reset): the next JoinLobby starts in the lobby.
func ForgetAssignment(stateDir string) error {
	if err := os.Remove(filepath.Join(stateDir, fileLobby)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("thing: forget assignment: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(stateDir, "target")); err != nil {
		return fmt.Errorf("thing: forget assignment: %w", err)
	}
	return nil
}

// arrive logs in at the target of a.
func arrive(ctx context.Context, cfg LobbyConfig, a *Assignment) (*Joined, error) {
	dir := filepath.Join(cfg.StateDir, "target")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("thing: target state dir: %w", err)
	}
	var roots *x509.CertPool
	if a.CAChain != "" {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(a.CAChain)) {
			return nil, errors.New("thing: the assignment's caChain holds no certificate")
		}
	}
	switch a.kind() {
	case TargetGatehouse:
		if a.CAChain != "" {
			if _, err := os.Stat(filepath.Join(dir, fileCA)); errors.Is(err, fs.ErrNotExist) {
				if err := os.WriteFile(filepath.Join(dir, fileCA), []byte(a.CAChain), 0o600); err != nil {
					return nil, fmt.Errorf("thing: write %s: %w", fileCA, err)
				}
			}
		}
		th, err := New(Config{ServerURL: a.ServerURL, Name: a.ThingName, StateDir: dir, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		if _, err := th.readFile(fileCert); errors.Is(err, fs.ErrNotExist) {
			if _, err := th.Register(ctx, a.RegistrationToken, "lobby"); err != nil {
				return nil, err
			}
		}
		conn, err := th.Connect(ctx, MQTTOptions{URL: a.Endpoint, Auth: MQTTCertificate})
		if err != nil {
			return nil, err
		}
		return &Joined{Assignment: *a, Thing: th, Conn: conn}, nil
	default:
		name := a.ThingName
		if name == "" {
			leaf, err := x509.ParseCertificate(cfg.Certificate.Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("thing: manufacturer certificate: %w", err)
			}
			name = leaf.Subject.CommonName
		}
		if name == "" {
			return nil, errors.New("thing: the assignment names no thing and the certificate has no common name")
		}
		th, err := New(Config{ServerURL: a.Endpoint, Name: name, StateDir: dir, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		conn, err := th.Connect(ctx, MQTTOptions{URL: a.Endpoint, Auth: MQTTCertificate,
			TLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{cfg.Certificate}}})
		if err != nil {
			return nil, err
		}
		return &Joined{Assignment: *a, Thing: th, Conn: conn}, nil
	}
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("thing: %s: %w", filepath.Base(path), err)
	}
	return nil
}
