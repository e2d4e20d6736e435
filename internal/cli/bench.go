package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/app"
	"github.com/gatehouse-iot/gatehouse/internal/config"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/loadtest"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// benchTarget is what a bench-target child prints on its first line.
type benchTarget struct {
	Addr        string                `json:"addr"`
	Publishers  []loadtest.Credential `json:"publishers"`
	Subscribers []loadtest.Credential `json:"subscribers"`
}

// runBench measures the embedded broker against plain mochi-mqtt and
// Mosquitto in one run: each Go broker runs in a child process of its own
// so its CPU time can be read from /proc, and the same load is put on each.
func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench", "dev bench [--pairs N] [--duration D] [--qos 0,1] [--mosquitto ADDR] [--connects D]")
	pairs := fs.Int("pairs", 4, "publisher/subscriber pairs")
	duration := fs.Duration("duration", 10*time.Second, "length of each throughput run")
	qosList := fs.String("qos", "0,1", "QoS levels to run")
	payload := fs.Int("payload", 100, "payload bytes")
	mosq := fs.String("mosquitto", "127.0.0.1:1883", "Mosquitto to compare with (anonymous); empty skips it")
	connects := fs.Duration("connects", 5*time.Second, "length of the CONNECT-rate run (0 skips it)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var targets []loadtest.Target
	for _, kind := range []string{"mochi-plain", "gatehouse"} {
		t, stop, err := startBenchTarget(ctx, self, kind, *pairs)
		if err != nil {
			return fmt.Errorf("start %s: %w", kind, err)
		}
		defer stop()
		targets = append(targets, t)
	}
	if *mosq != "" {
		if c, err := net.DialTimeout("tcp", *mosq, time.Second); err == nil {
			c.Close()
			var creds []loadtest.Credential
			for i := range *pairs {
				creds = append(creds, loadtest.Credential{ClientID: "bench-" + strconv.Itoa(i)})
			}
			subs := make([]loadtest.Credential, len(creds))
			for i := range creds {
				subs[i] = loadtest.Credential{ClientID: "bench-sub-" + strconv.Itoa(i)}
			}
			targets = append(targets, loadtest.Target{Name: "mosquitto", Addr: *mosq, PID: pidOf("mosquitto"), Publishers: creds, Subscribers: subs})
		} else {
			fmt.Fprintf(env.Stderr, "mosquitto at %s not reachable: skipped\n", *mosq)
		}
	}
	for i := range targets {
		targets[i].Topic = func(i int) string { return "bench/" + strconv.Itoa(i) }
	}
	fmt.Fprintf(env.Stdout, "# gatehouse dev bench: %d pairs, %d-byte payload, %s per run, GOMAXPROCS of the brokers: default\n", *pairs, *payload, *duration)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tbroker\tdelivered/s\tbroker CPU s\tmsgs per broker core-s\tvs mochi-plain\terrors")
	for _, q := range splitList(*qosList) {
		qos, err := strconv.Atoi(q)
		if err != nil || qos < 0 || qos > 1 {
			return usagef("--qos: want 0 and/or 1")
		}
		var base float64
		for _, t := range targets {
			r, err := loadtest.RunThroughput(ctx, t, loadtest.Throughput{Pairs: *pairs, QoS: byte(qos), Payload: *payload, Duration: *duration})
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			if t.Name == "mochi-plain" {
				base = r.PerCoreSecond()
			}
			fmt.Fprintf(tw, "qos%d\t%s\t%.0f\t%.2f\t%.0f\t%s\t%d\n", qos, t.Name, r.PerSecond(), r.BrokerCPU.Seconds(), r.PerCoreSecond(), ratio(r.PerCoreSecond(), base), r.Errors)
		}
	}
	if *connects > 0 {
		var base float64
		for _, t := range targets {
			r, err := loadtest.RunConnects(ctx, t, t.Publishers, min(4, len(t.Publishers)), *connects)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			if t.Name == "mochi-plain" {
				base = r.PerCoreSecond()
			}
			fmt.Fprintf(tw, "connect\t%s\t%.0f\t%.2f\t%.0f\t%s\t%d\n", t.Name, r.PerSecond(), r.BrokerCPU.Seconds(), r.PerCoreSecond(), ratio(r.PerCoreSecond(), base), r.Errors)
		}
	}
	return tw.Flush()
}

func ratio(v, base float64) string {
	if base <= 0 || v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v/base)
}

func pidOf(name string) int {
	out, err := exec.Command("pidof", "-s", name).Output()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return pid
}

// startBenchTarget runs `gatehouse dev bench-target` and reads its address and
// credentials.
func startBenchTarget(ctx context.Context, self, kind string, pairs int) (loadtest.Target, func(), error) {
	cmd := exec.CommandContext(ctx, self, "dev", "bench-target", "--kind", kind, "--pairs", strconv.Itoa(pairs))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return loadtest.Target{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return loadtest.Target{}, nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return loadtest.Target{}, nil, err
	}
	stop := func() { stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		stop()
		return loadtest.Target{}, nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	var bt benchTarget
	if err := json.Unmarshal(line, &bt); err != nil {
		stop()
		return loadtest.Target{}, nil, err
	}
	return loadtest.Target{Name: kind, Addr: bt.Addr, PID: cmd.Process.Pid, Publishers: bt.Publishers, Subscribers: bt.Subscribers}, stop, nil
}

// runBenchTarget is the child of `gatehouse dev bench`: it serves one broker
// until its standard input closes.
func runBenchTarget(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench-target", "dev bench-target --kind mochi-plain|gatehouse --pairs N (used by gatehouse dev bench)")
	kind := fs.String("kind", "gatehouse", "mochi-plain or gatehouse")
	pairs := fs.Int("pairs", 4, "credentials to prepare")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, env.Stdin); cancel() }()
	var (
		bt  benchTarget
		run func() error
	)
	switch *kind {
	case "mochi-plain":
		addr, serve, err := plainMochi(ctx)
		if err != nil {
			return err
		}
		bt.Addr, run = addr, serve
		for i := range *pairs {
			bt.Publishers = append(bt.Publishers, loadtest.Credential{ClientID: fmt.Sprintf("pub-%d", i)})
			bt.Subscribers = append(bt.Subscribers, loadtest.Credential{ClientID: fmt.Sprintf("sub-%d", i)})
		}
	case "gatehouse":
		b, serve, err := gatehouseTarget(ctx, *pairs)
		if err != nil {
			return err
		}
		bt, run = b, serve
	default:
		return usagef("--kind: want mochi-plain or gatehouse")
	}
	line, _ := json.Marshal(bt)
	fmt.Fprintf(env.Stdout, "%s\n", line)
	return run()
}

// baselineHook admits every client and every topic. It exists only so the
// benchmark has plain mochi-mqtt to compare with; the product never
// installs an allow-all hook.
type baselineHook struct{ mqtt.HookBase }

func (baselineHook) ID() string { return "benchmark-baseline" }
func (baselineHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (baselineHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (baselineHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

func plainMochi(ctx context.Context) (string, func() error, error) {
	opts := &mqtt.Options{Logger: slog.New(slog.DiscardHandler)}
	opts.Capabilities = mqtt.NewDefaultServerCapabilities()
	opts.Capabilities.MaximumClientWritesPending = 1024
	s := mqtt.New(opts)
	if err := s.AddHook(&baselineHook{}, nil); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	if err := s.AddListener(listeners.NewNet("bench", ln)); err != nil {
		return "", nil, err
	}
	return ln.Addr().String(), func() error {
		if err := s.Serve(); err != nil {
			return err
		}
		<-ctx.Done()
		return s.Close()
	}, nil
}

// benchPolicy lets each thing connect as itself and use bench/*.
const benchPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/bench/*"},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/bench/*"},
 {"Effect":"Deny","Action":"iot:Publish","Resource":"topic/bench/*/forbidden"}]}`

// gatehouseTarget starts a whole Gatehouse on a temporary SQLite database
// with things, a policy and access tokens for them.
func gatehouseTarget(ctx context.Context, pairs int) (benchTarget, func() error, error) {
	dir, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return benchTarget{}, nil, err
	}
	c := config.Default()
	c.DataDir, c.HTTP.Addr, c.MQTT.Addr, c.MQTT.WSAddr, c.MQTT.TLSAddr, c.HTTP.TLSAddr = dir, "127.0.0.1:0", "127.0.0.1:0", "", "", ""
	// The load comes from one address: the per-address limits would
	// measure themselves.
	c.Limits.ConnectPerIP, c.Limits.TokenPerIP = "off", "off"
	c.Finish()
	a, err := app.New(ctx, c, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return benchTarget{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	actx := events.WithActor(ctx, "bench")
	if _, err := a.Registry.CreatePolicy(actx, registry.NewPolicy{Name: "bench", Document: []byte(benchPolicy)}); err != nil {
		return benchTarget{}, nil, err
	}
	if _, err := a.Registry.CreateThingType(actx, registry.ThingTypeSpec{Name: "bench", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"bench"}}); err != nil {
		return benchTarget{}, nil, err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	bt := benchTarget{Addr: a.Broker.Addr("mqtt")}
	tokenURL := "http://" + a.HTTPAddr() + "/oauth2/token"
	for i := range pairs {
		for _, role := range []string{"pub", "sub"} {
			name := fmt.Sprintf("%s-%d", role, i)
			if _, err := a.Registry.CreateThing(actx, registry.NewThing{Name: name, ThingType: "bench"}); err != nil {
				return benchTarget{}, nil, err
			}
			secret, err := a.OAuth.SetThingSecret(actx, name)
			if err != nil {
				return benchTarget{}, nil, err
			}
			tok, err := clientCredentials(ctx, tokenURL, name, secret)
			if err != nil {
				return benchTarget{}, nil, err
			}
			cred := loadtest.Credential{ClientID: name, Username: name, Password: tok}
			if role == "pub" {
				bt.Publishers = append(bt.Publishers, cred)
			} else {
				bt.Subscribers = append(bt.Subscribers, cred)
			}
		}
	}
	return bt, func() error {
		defer cleanup()
		err := <-runErr
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}, nil
}

func clientCredentials(ctx context.Context, tokenURL, id, secret string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("token for %s: %s", id, out.Error)
	}
	return out.AccessToken, nil
}
