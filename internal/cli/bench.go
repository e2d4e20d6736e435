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
	"os/user"
	"path/filepath"
	"runtime/pprof"
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
	Addr string `json:"addr"`
	// PID is the broker's process when it is not the child itself
	// (Mosquitto started by the child).
	PID         int                   `json:"pid,omitempty"`
	Publishers  []loadtest.Credential `json:"publishers"`
	Subscribers []loadtest.Credential `json:"subscribers"`
}

// runBench measures the embedded broker against plain mochi-mqtt and
// Mosquitto in one run: each Go broker runs in a child process of its own
// so its CPU time can be read from /proc, and the same load is put on each.
func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench", "dev bench [--pairs N] [--duration D] [--qos 0,1] [--mosquitto ADDR] [--mosquitto-plugin FILE] [--connects D] [--cpuprofile DIR]")
	pairs := fs.Int("pairs", 4, "publisher/subscriber pairs")
	duration := fs.Duration("duration", 10*time.Second, "length of each throughput run")
	qosList := fs.String("qos", "0,1", "QoS levels to run")
	payload := fs.Int("payload", 100, "payload bytes")
	mosq := fs.String("mosquitto", "127.0.0.1:1883", "Mosquitto to compare with (anonymous); empty skips it")
	connects := fs.Duration("connects", 5*time.Second, "length of the CONNECT-rate run (0 skips it)")
	profiles := fs.String("cpuprofile", "", "directory to write each Go broker's CPU profile to (<broker>.pprof, for go tool pprof)")
	plugin := fs.String("mosquitto-plugin", "bin/gatehouse-mosquitto.so", "the Gatehouse Mosquitto plugin (make mosquitto-plugin) for the mosquitto+gatehouse row; empty or missing skips it; several, comma-separated, give a row each (mosquitto+<file name>), to compare builds in one run")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var targets []loadtest.Target
	for _, kind := range []string{"mochi-plain", "gatehouse"} {
		profile := ""
		if *profiles != "" {
			profile = filepath.Join(*profiles, kind+".pprof")
		}
		t, stop, err := startBenchTarget(ctx, self, kind, *pairs, "--cpuprofile", profile)
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
	// After plain Mosquitto: its process is found by name, and these rows
	// start other ones.
	plugins := splitList(*plugin)
	if _, err := exec.LookPath(mosquittoBinary); err == nil && len(plugins) > 0 {
		// The plugin rows' own baseline: Mosquitto with their settings,
		// anonymous, no plugin (the Mosquitto at --mosquitto has its own
		// configuration: persistence, logging to a file).
		t, stop, err := startBenchTarget(ctx, self, "mosquitto-conf", *pairs)
		if err != nil {
			return fmt.Errorf("start mosquitto-conf: %w", err)
		}
		defer stop()
		targets = append(targets, t)
	}
	for _, so := range plugins {
		name := "mosquitto+gatehouse"
		if len(plugins) > 1 {
			// Several builds compared in one run: each row named by its file.
			name = "mosquitto+" + strings.TrimSuffix(filepath.Base(so), ".so")
		}
		if _, err := os.Stat(so); err != nil {
			fmt.Fprintf(env.Stderr, "%s skipped: no plugin at %q (make mosquitto-plugin)\n", name, so)
			continue
		}
		if _, err := exec.LookPath(mosquittoBinary); err != nil {
			fmt.Fprintf(env.Stderr, "%s skipped: %s not installed\n", name, mosquittoBinary)
			continue
		}
		t, stop, err := startBenchTarget(ctx, self, "mosquitto+gatehouse", *pairs, "--mosquitto-plugin", so)
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		defer stop()
		t.Name = name
		targets = append(targets, t)
	}
	if len(plugins) == 0 {
		fmt.Fprintln(env.Stderr, "mosquitto+gatehouse skipped: no plugin given")
	}
	for i := range targets {
		targets[i].Topic = func(i int) string { return "bench/" + strconv.Itoa(i) }
	}
	fmt.Fprintf(env.Stdout, "# gatehouse dev bench: %d pairs, %d-byte payload, %s per run, GOMAXPROCS of the brokers: default\n", *pairs, *payload, *duration)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	baseNames := []string{"mochi-plain", "mosquitto", "mosquitto-conf"}
	fmt.Fprintln(tw, "run\tbroker\tdelivered/s\tbroker CPU s\tmsgs per broker core-s\tvs mochi-plain\tvs mosquitto\tvs mosquitto-conf\terrors")
	if err := throughputRows(ctx, tw, targets, baseNames, *qosList, loadtest.Throughput{Pairs: *pairs, Payload: *payload, Duration: *duration}); err != nil {
		return err
	}
	if *connects > 0 {
		perCore := make([]float64, len(baseNames))
		for _, t := range targets {
			r, err := loadtest.RunConnects(ctx, t, t.Publishers, min(4, len(t.Publishers)), *connects)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			fmt.Fprintf(tw, "connect\t%s\t%.0f\t%.2f\t%.0f%s\t%d\n", t.Name, r.PerSecond(), r.BrokerCPU.Seconds(), r.PerCoreSecond(),
				ratioCells(t.Name, r.PerCoreSecond(), baseNames, perCore), r.Errors)
		}
	}
	return tw.Flush()
}

// ratioCells notes v as the figure of the base named name, if it is one,
// and returns v's ratio to each base measured so far, as tab-led cells
// ("-" for a base not measured yet).
func ratioCells(name string, v float64, bases []string, perCore []float64) string {
	row := ""
	for i, b := range bases {
		if name == b {
			perCore[i] = v
		}
		row += "\t" + ratio(v, perCore[i])
	}
	return row
}

// throughputRows runs cfg at each QoS of qosList against every target and
// writes a row per run, with its ratio to each of the targets named in
// bases (measured before the rows compared with them; "-" before).
func throughputRows(ctx context.Context, tw io.Writer, targets []loadtest.Target, bases []string, qosList string, cfg loadtest.Throughput) error {
	for _, q := range splitList(qosList) {
		qos, err := strconv.Atoi(q)
		if err != nil || qos < 0 || qos > 1 {
			return usagef("--qos: want 0 and/or 1")
		}
		cfg.QoS = byte(qos)
		perCore := make([]float64, len(bases))
		for _, t := range targets {
			r, err := loadtest.RunThroughput(ctx, t, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			row := fmt.Sprintf("qos%d\t%s\t%.0f\t%.2f\t%.0f", qos, t.Name, r.PerSecond(), r.BrokerCPU.Seconds(), r.PerCoreSecond())
			fmt.Fprintf(tw, "%s%s\t%d\n", row, ratioCells(t.Name, r.PerCoreSecond(), bases, perCore), r.Errors)
		}
	}
	return nil
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
func startBenchTarget(ctx context.Context, self, kind string, pairs int, extra ...string) (loadtest.Target, func(), error) {
	cmd := exec.CommandContext(ctx, self, append([]string{"dev", "bench-target", "--kind", kind, "--pairs", strconv.Itoa(pairs)}, extra...)...)
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
	pid := cmd.Process.Pid
	if bt.PID != 0 {
		pid = bt.PID
	}
	return loadtest.Target{Name: kind, Addr: bt.Addr, PID: pid, Publishers: bt.Publishers, Subscribers: bt.Subscribers}, stop, nil
}

// runBenchTarget is the child of `gatehouse dev bench`: it serves one broker
// until its standard input closes.
func runBenchTarget(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench-target", "dev bench-target --kind mochi-plain|gatehouse|mosquitto-conf|mosquitto+gatehouse --pairs N [--mosquitto-plugin FILE] [cluster flags] (used by gatehouse dev bench and bench-cluster)")
	kind := fs.String("kind", "gatehouse", "mochi-plain, gatehouse, mosquitto-conf (Mosquitto with the plugin row's settings, anonymous, no plugin) or mosquitto+gatehouse")
	pairs := fs.Int("pairs", 4, "credentials to prepare")
	var r benchReplica
	fs.StringVar(&r.dsn, "dsn", "", "gatehouse: PostgreSQL shared by the replicas (default: a SQLite database of its own)")
	fs.StringVar(&r.masterKey, "master-key", "", "gatehouse: master key file shared by the replicas")
	fs.StringVar(&r.name, "cluster-name", "", "gatehouse: this replica's name in the NATS cluster")
	fs.StringVar(&r.listen, "cluster-listen", "", "gatehouse: this replica's NATS route listener (enables the cluster)")
	routes := fs.String("cluster-routes", "", "gatehouse: every replica's route listener, comma-separated")
	noSeed := fs.Bool("no-seed", false, "gatehouse: create no things (another replica did)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	plugin := fs.String("mosquitto-plugin", "bin/gatehouse-mosquitto.so", "the plugin Mosquitto loads (mosquitto+gatehouse)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	r.routes, r.seed = splitList(*routes), !*noSeed
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
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
		g, err := gatehouseTarget(ctx, *pairs, r)
		if err != nil {
			return err
		}
		bt, run = g.bt, g.run
	case "mosquitto-conf":
		dir, err := os.MkdirTemp("", "gatehouse-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		addr, pid, stop, err := startMosquitto(ctx, dir, []string{"allow_anonymous true"}, env.Stderr)
		if err != nil {
			return err
		}
		defer stop()
		bt.Addr, bt.PID = addr, pid
		for i := range *pairs {
			bt.Publishers = append(bt.Publishers, loadtest.Credential{ClientID: fmt.Sprintf("pub-%d", i)})
			bt.Subscribers = append(bt.Subscribers, loadtest.Credential{ClientID: fmt.Sprintf("sub-%d", i)})
		}
		run = func() error { <-ctx.Done(); return nil }
	case "mosquitto+gatehouse":
		g, err := gatehouseTarget(ctx, *pairs, benchReplica{seed: true})
		if err != nil {
			return err
		}
		stop, err := mosquittoWithPlugin(ctx, &g, *plugin, env.Stderr)
		if err != nil {
			return err
		}
		defer stop()
		bt, run = g.bt, g.run
	default:
		return usagef("--kind: want mochi-plain, gatehouse, mosquitto-conf or mosquitto+gatehouse")
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

// benchGatehouse is a running Gatehouse of the benchmark.
type benchGatehouse struct {
	bt      benchTarget
	run     func() error
	dataDir string
	issuer  string
}

// benchReplica makes a bench target one replica of a cluster: a shared
// PostgreSQL and master key, an embedded NATS server with routes to the
// others. seed: it creates the things (one replica does).
type benchReplica struct {
	dsn, masterKey, name, listen string
	routes                       []string
	seed                         bool
}

// gatehouseTarget starts a whole Gatehouse on a temporary SQLite database
// (or as a replica: r) with things, a policy and access tokens for them.
func gatehouseTarget(ctx context.Context, pairs int, r benchReplica) (benchGatehouse, error) {
	dir, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return benchGatehouse{}, err
	}
	c := config.Default()
	c.DataDir, c.HTTP.Addr, c.MQTT.Addr, c.MQTT.WSAddr, c.MQTT.TLSAddr, c.HTTP.TLSAddr = dir, "127.0.0.1:0", "127.0.0.1:0", "", "", ""
	// The load comes from one address: the per-address limits would
	// measure themselves.
	c.Limits.ConnectPerIP, c.Limits.TokenPerIP = "off", "off"
	if r.dsn != "" {
		// One issuer for all replicas: a token from one is good on all.
		c.Store.DSN, c.Secrets.MasterKeyFile, c.HTTP.ExternalURL = r.dsn, r.masterKey, "http://gatehouse.bench"
	}
	if r.listen != "" {
		c.Cluster.NATS.Replicas = min(3, len(r.routes))
		c.Cluster.NATS.Embedded = config.ClusterEmbedded{Name: r.name, Listen: r.listen, Routes: r.routes}
	}
	c.Finish()
	a, err := app.New(ctx, c, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return benchGatehouse{}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	runErr := make(chan error, 1)
	g := benchGatehouse{bt: benchTarget{Addr: a.Broker.Addr("mqtt")}, dataDir: dir, issuer: "http://" + a.HTTPAddr(), run: func() error {
		defer cleanup()
		err := <-runErr
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}}
	if !r.seed {
		go func() { runErr <- a.Run(ctx) }()
		return g, nil
	}
	actx := events.WithActor(ctx, "bench")
	if _, err := a.Registry.CreatePolicy(actx, registry.NewPolicy{Name: "bench", Document: []byte(benchPolicy)}); err != nil {
		return benchGatehouse{}, err
	}
	if _, err := a.Registry.CreateThingType(actx, registry.ThingTypeSpec{Name: "bench", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"bench"}}); err != nil {
		return benchGatehouse{}, err
	}
	go func() { runErr <- a.Run(ctx) }()
	tokenURL := "http://" + a.HTTPAddr() + "/oauth2/token"
	for i := range pairs {
		for _, role := range []string{"pub", "sub"} {
			name := fmt.Sprintf("%s-%d", role, i)
			if _, err := a.Registry.CreateThing(actx, registry.NewThing{Name: name, ThingType: "bench"}); err != nil {
				return benchGatehouse{}, err
			}
			secret, err := a.OAuth.SetThingSecret(actx, name)
			if err != nil {
				return benchGatehouse{}, err
			}
			tok, err := clientCredentials(ctx, tokenURL, name, secret)
			if err != nil {
				return benchGatehouse{}, err
			}
			cred := loadtest.Credential{ClientID: name, Username: name, Password: tok}
			if role == "pub" {
				g.bt.Publishers = append(g.bt.Publishers, cred)
			} else {
				g.bt.Subscribers = append(g.bt.Subscribers, cred)
			}
		}
	}
	return g, nil
}

// mosquittoBinary is Debian's Mosquitto broker.
const mosquittoBinary = "/usr/sbin/mosquitto"

// mosquittoWithPlugin starts Mosquitto on a free loopback port with the
// Gatehouse plugin on g's store (read-only, as in production) and points
// g's benchmark target at it: Mosquitto's process is the broker measured.
func mosquittoWithPlugin(ctx context.Context, g *benchGatehouse, plugin string, stderr io.Writer) (func(), error) {
	abs, err := filepath.Abs(plugin)
	if err != nil {
		return nil, err
	}
	addr, pid, stop, err := startMosquitto(ctx, g.dataDir, []string{"allow_anonymous false",
		"plugin " + abs, "plugin_opt_dataDir " + g.dataDir, "plugin_opt_http.externalURL " + g.issuer}, stderr)
	if err != nil {
		return nil, err
	}
	g.bt.Addr, g.bt.PID = addr, pid
	return stop, nil
}

// startMosquitto starts Mosquitto on a free loopback port with Mosquitto's
// defaults but persistence off and logging of errors and warnings only,
// plus the given lines, its configuration file in dir. It returns once
// Mosquitto accepts connections.
func startMosquitto(ctx context.Context, dir string, extra []string, stderr io.Writer) (addr string, pid int, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	lines := append([]string{"persistence false", "log_dest stderr", "log_type error", "log_type warning"}, extra...)
	lines = append(lines, "listener "+port+" 127.0.0.1")
	if u, err := user.Current(); err == nil {
		lines = append([]string{"user " + u.Username}, lines...)
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, mosquittoBinary, "-c", conf)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	// Up when it accepts connections (it binds after loading its plugins).
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("mosquitto did not start listening on %s", addr)
		}
		time.Sleep(50 * time.Millisecond) // polling a port a child process is binding
	}
	return addr, cmd.Process.Pid, stop, nil
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
