package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// runDeviceLobby is `gatehouse device lobby`: a device with a manufacturer
// certificate joins the lobby, waits to be claimed and goes to its target
// (thing.JoinLobby).
func runDeviceLobby(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device lobby", "device lobby --lobby mqtts://HOST:PORT[,mqtts://...] --cert DEVICE.pem --key DEVICE.key --ca LOBBY-CA.pem [--state-dir DIR] [--config TEXT] [--forget]")
	lobbies := fs.String("lobby", "", "lobby MQTT over TLS URLs, comma separated, tried in turn (env GATEHOUSE_LOBBY)")
	certFile := fs.String("cert", "", "the manufacturer certificate (PEM)")
	keyFile := fs.String("key", "", "its private key (PEM)")
	caFile := fs.String("ca", "", "CA chain the lobby's server certificate is verified by (GET /ca); default: system roots")
	stateDir := fs.String("state-dir", "", "where the assignment is kept (env GATEHOUSE_STATE_DIR, default ./gatehouse-device)")
	config := fs.String("config", "", "the device's configuration, reported in its knocks")
	interval := fs.Duration("knock-interval", 5*time.Second, "time between knocks while waiting")
	forget := fs.Bool("forget", false, "factory reset: forget a stored assignment first")
	verbose := fs.Bool("v", false, "log what the SDK does to stderr")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *lobbies == "" {
		*lobbies = env.Getenv("GATEHOUSE_LOBBY")
	}
	if *stateDir == "" {
		*stateDir = env.Getenv("GATEHOUSE_STATE_DIR")
	}
	if *stateDir == "" {
		*stateDir = "gatehouse-device"
	}
	if *lobbies == "" || *certFile == "" || *keyFile == "" {
		return usagef("--lobby, --cert and --key are required")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("device lobby: %w", err)
	}
	cfg := thing.LobbyConfig{Lobbies: splitList(*lobbies), Certificate: cert, StateDir: *stateDir, Config: *config, KnockInterval: *interval}
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("device lobby: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return usagef("--ca %s holds no PEM certificate", *caFile)
		}
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *forget {
		if err := thing.ForgetAssignment(*stateDir); err != nil {
			return err
		}
	}
	fp, err := thing.Fingerprint(cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "in the lobby as %s (QR GH1:%s); waiting to be claimed\n", fp, fp)
	j, err := joinLobby(ctx, env, cfg)
	if err != nil {
		return err
	}
	defer j.Conn.Close(context.WithoutCancel(ctx))
	a := j.Assignment
	return printJSON(env.Stdout, map[string]any{"certificateId": fp, "kind": a.Kind, "endpoint": a.Endpoint, "thingName": j.Thing.Name(),
		"config": a.Config, "serverUrl": a.ServerURL, "stateDir": *stateDir, "arrived": true})
}

// joinLobby is thing.JoinLobby, tried again every knock interval while the
// lobby refuses the connection: a manufacturer CA registered a moment ago
// on another replica may not be trusted by this one yet, and the device
// should wait rather than give up.
func joinLobby(ctx context.Context, env *Env, cfg thing.LobbyConfig) (*thing.Joined, error) {
	wait := cfg.KnockInterval
	if wait <= 0 {
		wait = 5 * time.Second
	}
	for {
		j, err := thing.JoinLobby(ctx, cfg)
		var refused *autopaho.ConnackError
		if err == nil || !errors.As(err, &refused) {
			return j, err
		}
		fmt.Fprintf(env.Stderr, "the lobby refused the connection (%v); trying again in %s\n", err, wait)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}
