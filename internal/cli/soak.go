package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/simulate"
)

// soakServerRE read the banner of the server a soak run starts.
var (
	soakListenRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)\)`)
	soakTokenRE  = regexp.MustCompile(`admin token\s+(\S+)`)
	soakMQTTRE   = regexp.MustCompile(`mqtt\s+mqtt://(127\.0\.0\.1:\d+)`)
)

// runSoak is `gatehouse dev soak`: it starts this binary as a server on
// loopback (its own temporary data directory, SQLite unless --dsn), runs
// a simulated fleet against it whose tokens expire every --token-ttl (the
// broker disconnects them, the devices get new tokens and reconnect), and
// samples the server's heap, RSS and goroutines from /metrics. It prints
// one row per sample and a verdict: flat, or growing over the second half.
func runSoak(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "soak", "dev soak [--duration 30m] [--things 20] [--rate 5] [--token-ttl 2m] [--publish-interval 1s] [--interval D] [--dsn postgres://...] [--keep DIR]")
	duration := fs.Duration("duration", 30*time.Minute, "length of the run (10s to 24h)")
	things := fs.Int("things", 20, "simulated devices (1 to 2000)")
	rate := fs.Float64("rate", 5, "devices started per second")
	ttl := fs.Duration("token-ttl", 2*time.Minute, "access token lifetime: devices are disconnected and reconnect with a new token this often")
	interval := fs.Duration("interval", 0, "time between samples (default duration/30, 1s to 1m)")
	publish := fs.Duration("publish-interval", time.Second, "time between a device's telemetry messages")
	dsn := fs.String("dsn", "", "database of the server (default SQLite in its temporary data directory)")
	keep := fs.String("keep", "", "data directory to use and keep (default a temporary one, removed at the end)")
	binary := fs.String("binary", "", "gatehouse binary to run as the server (default this one)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *duration < 10*time.Second || *duration > 24*time.Hour:
		return usagef("--duration: want 10s to 24h")
	case *things < 1 || *things > 2000:
		return usagef("--things: want 1 to 2000")
	case *rate <= 0 || *ttl < 5*time.Second || *publish <= 0:
		return usagef("--rate and --publish-interval must be positive, --token-ttl at least 5s")
	}
	if *interval == 0 {
		*interval = min(max(*duration/30, time.Second), time.Minute)
	}
	self := *binary
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return err
		}
	}
	dir := *keep
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "gatehouse-soak"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	srv, err := startSoakServer(ctx, self, dir, *dsn, *ttl)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(env.Stdout, "# gatehouse dev soak: %d things at %g/s for %s, token TTL %s, publish every %s, sample every %s\n",
		*things, *rate, *duration, *ttl, *publish, *interval)
	fmt.Fprintf(env.Stdout, "# server: %s pid %d (%s), store %s\n", srv.url, srv.cmd.Process.Pid, self, storeName(*dsn))

	hc := &http.Client{Timeout: 10 * time.Second}
	metricsURL := srv.url + "/metrics"
	start := time.Now()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var (
		sum    *simulate.Summary
		simErr error
		done   = make(chan struct{})
	)
	stateDir := filepath.Join(dir, "devices")
	go func() {
		defer close(done)
		sum, simErr = simulate.Run(runCtx, simulate.Config{
			Server: srv.url, AdminToken: srv.token, MQTTURL: "mqtt://" + srv.mqtt,
			Things: *things, Rate: *rate, Duration: *duration, PublishInterval: *publish,
			Auth: simulate.AuthToken, Prefix: "soak", StateDir: stateDir, Logger: slog.New(slog.DiscardHandler),
		})
	}()

	// Rows are printed as they are sampled (fixed widths, no tabwriter
	// buffering) so a long run's output file shows progress.
	const row = "%9s %9s %9s %11s %8s %9s %7s %10s\n"
	fmt.Fprintf(env.Stdout, row, "elapsed", "heap MiB", "rss MiB", "goroutines", "clients", "connects", "kicked", "messages")
	var samples []simulate.Sample
	read := func(label string) (simulate.Sample, bool) {
		s, err := simulate.ReadSample(ctx, hc, metricsURL, time.Since(start))
		if err != nil {
			fmt.Fprintf(env.Stderr, "soak: %v\n", err)
			return s, false
		}
		if label == "" {
			label = s.At.Round(time.Second).String()
		}
		fmt.Fprintf(env.Stdout, row, label, fmt.Sprintf("%.1f", s.HeapBytes/(1<<20)), fmt.Sprintf("%.1f", s.RSSBytes/(1<<20)),
			fmt.Sprintf("%.0f", s.Goroutines), fmt.Sprintf("%.0f", s.Clients), fmt.Sprintf("%.0f", s.Accepted), fmt.Sprintf("%.0f", s.Kicked), fmt.Sprintf("%.0f", s.Messages))
		return s, true
	}
	sample := func() {
		if s, ok := read(""); ok {
			samples = append(samples, s)
		}
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	sample()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			<-done
			break loop
		case <-tick.C:
			if srv.exited() {
				stopRun()
				<-done
				return fmt.Errorf("soak: the server exited during the run:\n%s", srv.tail())
			}
			sample()
		}
	}
	// After the fleet disconnected: shown, not part of the trend.
	read("after")
	if simErr != nil {
		return simErr
	}
	fmt.Fprintln(env.Stdout)
	if err := printSimulateSummary(env.Stdout, sum); err != nil {
		return err
	}
	trends := simulate.Trends(samples)
	fmt.Fprintf(env.Stdout, "\ntrend over the second half (%d samples; growing = more than %.0f%% over it):\n", len(samples)-len(samples)/2, simulate.GrowthThreshold*100)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\tmean\tslope per hour\tchange\t")
	for _, t := range trends {
		mean, slope := fmt.Sprintf("%.0f", t.Mean), fmt.Sprintf("%+.0f", t.PerHour)
		if t.Name != "goroutines" {
			mean, slope = fmt.Sprintf("%.1f MiB", t.Mean/(1<<20)), fmt.Sprintf("%+.1f MiB", t.PerHour/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%+.1f%%\t\n", t.Name, mean, slope, t.Change*100)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "verdict: %s\n", simulate.Verdict(trends))
	return nil
}

func storeName(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// soakServer is the `gatehouse serve` child of a soak run.
type soakServer struct {
	cmd              *exec.Cmd
	url, token, mqtt string
	mu               sync.Mutex
	log              []string // the last lines of its standard error
	done             chan struct{}
}

// startSoakServer starts self serve on loopback ports and reads its banner.
func startSoakServer(ctx context.Context, self, dir, dsn string, ttl time.Duration) (*soakServer, error) {
	args := []string{"serve", "--data-dir", filepath.Join(dir, "server"), "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0",
		"--ws-addr=", "--mqtts-addr=", "--https-addr=", "--log-level", "warn"}
	if dsn != "" {
		args = append(args, "--dsn", dsn)
	}
	cmd := exec.Command(self, args...)
	// The child's configuration is the defaults and these settings only.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GATEHOUSE_OAUTH_ACCESS_TOKEN_TTL="+ttl.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("soak: start server: %w", err)
	}
	s := &soakServer{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, sc.Text())
			if len(s.log) > 20 {
				s.log = s.log[1:]
			}
			s.mu.Unlock()
		}
	}()
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "try: curl") {
				banner <- b.String()
				sent = true
			}
		}
		if !sent {
			banner <- b.String()
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	var text string
	select {
	case text = <-banner:
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("soak: the server did not start within a minute")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	m1, m2, m3 := soakListenRE.FindStringSubmatch(text), soakTokenRE.FindStringSubmatch(text), soakMQTTRE.FindStringSubmatch(text)
	if m1 == nil || m2 == nil || m3 == nil {
		s.stop()
		return nil, fmt.Errorf("soak: could not read the server banner (a fresh data directory is needed for the admin token):\n%s%s", text, s.tail())
	}
	s.url, s.token, s.mqtt = "http://"+m1[1], m2[1], m3[1]
	return s, nil
}

func (s *soakServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *soakServer) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// stop ends the server: SIGTERM, then SIGKILL after 20 s.
func (s *soakServer) stop() {
	if s.exited() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
