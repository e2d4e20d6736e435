package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/thing"
)

func runDevice(ctx context.Context, env *Env, args []string) error {
	return sub(ctx, env, "device", args, map[string]func(context.Context, *Env, []string) error{
		"register":    runDeviceRegister,
		"token":       runDeviceToken,
		"jwk":         runDeviceJWK,
		"publish":     runDevicePublish,
		"subscribe":   runDeviceSubscribe,
		"device-flow": runDeviceFlow,
		"lobby":       runDeviceLobby,
	})
}

// deviceFlags are the flags every device command shares.
type deviceFlags struct {
	server, stateDir, name, scope, secret string
	jwt, thingsEndpoint, verbose          bool
}

func addDeviceFlags(fs *flag.FlagSet, f *deviceFlags) {
	fs.StringVar(&f.server, "server", "", "server URL (env GATEHOUSE_SERVER, default http://127.0.0.1:8080)")
	fs.StringVar(&f.stateDir, "state-dir", "", "the device's state directory (env GATEHOUSE_STATE_DIR, default ./gatehouse-device)")
	fs.StringVar(&f.name, "name", "", "thing name (needed once; then read from the state dir)")
	fs.StringVar(&f.scope, "scope", "", "scopes to ask for, comma or space separated")
	fs.StringVar(&f.secret, "client-secret", "", "store this client secret in the state dir (env GATEHOUSE_CLIENT_SECRET)")
	fs.BoolVar(&f.jwt, "private-key-jwt", false, "authenticate with a JWT signed by the device key")
	fs.BoolVar(&f.thingsEndpoint, "things-endpoint", false, "use POST /things/{name}?_action=get_access_token")
	fs.BoolVar(&f.verbose, "v", false, "log what the SDK does to stderr")
}

// open resolves the flags and loads the device.
func (f *deviceFlags) open(env *Env) (*thing.Thing, error) {
	if f.server == "" {
		f.server = env.Getenv("GATEHOUSE_SERVER")
	}
	if f.server == "" {
		f.server = "http://127.0.0.1:8080"
	}
	if f.stateDir == "" {
		f.stateDir = env.Getenv("GATEHOUSE_STATE_DIR")
	}
	if f.stateDir == "" {
		f.stateDir = "gatehouse-device"
	}
	if f.secret == "" {
		f.secret = env.Getenv("GATEHOUSE_CLIENT_SECRET")
	}
	cfg := thing.Config{ServerURL: f.server, StateDir: f.stateDir, Name: f.name,
		Scopes: strings.Fields(strings.ReplaceAll(f.scope, ",", " "))}
	if f.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if f.jwt {
		cfg.Auth = thing.AuthPrivateKeyJWT
	}
	if f.thingsEndpoint {
		cfg.Endpoint = thing.EndpointThings
	}
	th, err := thing.New(cfg)
	if err != nil {
		return nil, err
	}
	if f.secret != "" {
		if err := th.SetClientSecret(f.secret); err != nil {
			return nil, err
		}
	}
	return th, nil
}

func runDeviceRegister(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device register", "device register --name THING --token REGISTRATION_TOKEN [--version V] [--state-dir DIR]")
	var f deviceFlags
	addDeviceFlags(fs, &f)
	token := fs.String("token", "", "registration token (env GATEHOUSE_REGISTRATION_TOKEN)")
	version := fs.String("version", "", "firmware version, recorded as the thing's version attribute")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = env.Getenv("GATEHOUSE_REGISTRATION_TOKEN")
	}
	if *token == "" {
		return usagef("--token (or GATEHOUSE_REGISTRATION_TOKEN) is required")
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	reg, err := th.Register(ctx, *token, *version)
	if err != nil {
		return err
	}
	return printJSON(env.Stdout, map[string]any{"thingName": th.Name(), "certificateId": reg.CertificateID,
		"notAfter": reg.Certificate.NotAfter, "endpoints": reg.Endpoints, "stateDir": f.stateDir})
}

func runDeviceToken(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device token", "device token [--name THING] [--client-secret S | --private-key-jwt] [--things-endpoint] [--scope publish] [--json]")
	var f deviceFlags
	addDeviceFlags(fs, &f)
	asJSON := fs.Bool("json", false, "print expiry and scope too")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	tok, err := th.Token(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, map[string]any{"access_token": tok})
	}
	_, err = fmt.Fprintln(env.Stdout, tok)
	return err
}

func runDeviceJWK(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device jwk", "device jwk [--name THING]   (register the output with POST /api/v1/things/{name}/keys)")
	var f deviceFlags
	addDeviceFlags(fs, &f)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	jwk, err := th.PublicJWK()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.Stdout, "%s\n", jwk)
	return err
}

// mqttFlags choose the broker and the login.
type mqttFlags struct {
	url, auth, authorizer, authorizerKey string
}

func addMQTTFlags(fs *flag.FlagSet, m *mqttFlags) {
	fs.StringVar(&m.url, "mqtt", "", "broker URL mqtt://HOST:PORT or mqtts://HOST:PORT (default: the registered endpoint)")
	fs.StringVar(&m.auth, "auth", "token", "login: token (token as password), cert (mutual TLS), custom (custom authorizer)")
	fs.StringVar(&m.authorizer, "authorizer", "", "custom authorizer name (with --auth custom or --https)")
	fs.StringVar(&m.authorizerKey, "authorizer-key", "authorizer-key.pem", "token signing key file in the state dir, created if missing")
}

func (m *mqttFlags) options(th *thing.Thing) (thing.MQTTOptions, *thing.CustomAuthorizer, error) {
	opts := thing.MQTTOptions{URL: m.url}
	var ca *thing.CustomAuthorizer
	if m.authorizer != "" {
		k, err := th.LoadOrCreateSigningKey(m.authorizerKey)
		if err != nil {
			return opts, nil, err
		}
		ca = &thing.CustomAuthorizer{Name: m.authorizer, Signer: k}
	}
	switch m.auth {
	case "token":
		opts.Auth = thing.MQTTToken
	case "cert":
		opts.Auth = thing.MQTTCertificate
	case "custom":
		if ca == nil {
			return opts, nil, usagef("--auth custom needs --authorizer")
		}
		opts.Auth, opts.Authorizer = thing.MQTTCustomAuthorizer, ca
	default:
		return opts, nil, usagef("--auth must be token, cert or custom")
	}
	return opts, ca, nil
}

func runDevicePublish(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device publish", "device publish --topic T [--message M | stdin] [--qos 1] [--retain] [--https] [--auth token|cert|custom] [--mqtt URL]")
	var f deviceFlags
	var m mqttFlags
	addDeviceFlags(fs, &f)
	addMQTTFlags(fs, &m)
	topic := fs.String("topic", "", "topic to publish to")
	message := fs.String("message", "", "payload (default: read stdin)")
	qos := fs.Uint("qos", 1, "QoS 0 or 1")
	retain := fs.Bool("retain", false, "retain the message")
	useHTTPS := fs.Bool("https", false, "publish with HTTPS POST /topics/{topic} instead of MQTT")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" || *qos > 1 {
		return usagef("--topic is required and --qos is 0 or 1")
	}
	payload := []byte(*message)
	if *message == "" {
		b, err := io.ReadAll(env.Stdin)
		if err != nil {
			return err
		}
		payload = b
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	opts, ca, err := m.options(th)
	if err != nil {
		return err
	}
	if *useHTTPS {
		return th.PublishHTTPS(ctx, *topic, payload, thing.HTTPSOptions{QoS: byte(*qos), Retain: *retain, Authorizer: ca})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := th.Connect(cctx, opts)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Publish(cctx, *topic, payload, byte(*qos), *retain)
}

func runDeviceSubscribe(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device subscribe", "device subscribe --topic FILTER [--count N] [--timeout 30s] [--auth token|cert|custom] [--mqtt URL]")
	var f deviceFlags
	var m mqttFlags
	addDeviceFlags(fs, &f)
	addMQTTFlags(fs, &m)
	var topics multiFlag
	fs.Var(&topics, "topic", "topic filter (repeatable)")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit after this long (0: no limit)")
	qos := fs.Uint("qos", 1, "QoS 0 or 1")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if len(topics) == 0 || *qos > 1 {
		return usagef("--topic is required and --qos is 0 or 1")
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	opts, _, err := m.options(th)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	conn, err := th.Connect(ctx, opts)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	msgs := make(chan thing.Message, 64)
	for _, t := range topics {
		if err := conn.Subscribe(ctx, t, byte(*qos), func(m thing.Message) {
			select {
			case msgs <- m:
			case <-ctx.Done():
			}
		}); err != nil {
			return err
		}
	}
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case msg := <-msgs:
			fmt.Fprintf(env.Stdout, "%s %s\n", msg.Topic, msg.Payload)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && *count == 0 {
				return nil
			}
			return fmt.Errorf("after %d message(s): %w", n, ctx.Err())
		}
	}
	return nil
}

func runDeviceFlow(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "device device-flow", "device device-flow [--name THING] [--client-secret S | --private-key-jwt] [--scope publish]")
	var f deviceFlags
	addDeviceFlags(fs, &f)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	th, err := f.open(env)
	if err != nil {
		return err
	}
	tok, err := th.DeviceFlow(ctx, func(_ context.Context, dc thing.DeviceCode) error {
		fmt.Fprintf(env.Stderr, "To approve this device, open %s\nand enter the code %s\n", dc.VerificationURI, dc.UserCode)
		if dc.VerificationURIComplete != "" {
			fmt.Fprintf(env.Stderr, "(or open %s)\n", dc.VerificationURIComplete)
		}
		fmt.Fprintln(env.Stderr, "Waiting for approval...")
		return nil
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, tok.AccessToken)
	return err
}
