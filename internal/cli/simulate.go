package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/simulate"
)

func runSimulate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "simulate", "simulate --things N --rate R [--duration D] [--publish-interval I] [--auth token|cert] [--server URL] [--token ADMIN_TOKEN] [--mqtt URL] [--mqtts URL] [--prefix P] [--state-dir DIR] [--json]")
	things := fs.Int("things", 10, "number of simulated devices")
	rate := fs.Float64("rate", 10, "devices started per second")
	duration := fs.Duration("duration", 30*time.Second, "length of the run, from the first device start")
	interval := fs.Duration("publish-interval", time.Second, "time between a device's telemetry messages (QoS 1)")
	auth := fs.String("auth", simulate.AuthToken, "token: client secret, client credentials, token as MQTT password; cert: POST /register, mutual TLS")
	mqttURL := fs.String("mqtt", "", "MQTT listener for --auth token (default mqtt://<server host>:1884)")
	mqttsURL := fs.String("mqtts", "", "MQTT TLS listener for --auth cert (default the endpoint returned at registration, else mqtts://<server host>:8883)")
	prefix := fs.String("prefix", "", "fleet name: things PREFIX-00001..., thing type and policy PREFIX (default sim-<random>)")
	stateDir := fs.String("state-dir", "", "keep the devices' state directories here (default a temporary directory, removed at the end)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	verbose := fs.Bool("v", false, "log what the engine and the device SDK do to stderr")
	conn := clientFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := conn(env)
	if err != nil {
		return err
	}
	if *things <= 0 || *rate <= 0 || *duration <= 0 || *interval <= 0 {
		return usagef("--things, --rate, --duration and --publish-interval must be positive")
	}
	if *auth != simulate.AuthToken && *auth != simulate.AuthCert {
		return usagef("--auth: want token or cert")
	}
	dir := *stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gatehouse-simulate"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	fmt.Fprintf(env.Stderr, "simulate: %d things (%s auth) at %g/s for %s against %s\n", *things, *auth, *rate, *duration, c.base)
	sum, err := simulate.Run(ctx, simulate.Config{
		Server: c.base, AdminToken: c.token, MQTTURL: *mqttURL, MQTTSURL: *mqttsURL,
		Things: *things, Rate: *rate, Duration: *duration, PublishInterval: *interval,
		Auth: *auth, Prefix: *prefix, StateDir: dir, Logger: log, DeviceLogger: log,
		OnProgress: func(p simulate.Progress) { printProgress(env.Stderr, p) },
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, sum)
	}
	return printSimulateSummary(env.Stdout, sum)
}

// printProgress writes the one-line progress report.
func printProgress(w io.Writer, p simulate.Progress) {
	fmt.Fprintf(w, "[%5.1fs] up %d  register/s %.0f  token/s %.0f  connect/s %.0f  msg/s %.0f  retries %d  errors %d\n",
		p.Elapsed.Seconds(), p.Up, p.RegistrationsPerSec, p.TokensPerSec, p.ConnectsPerSec, p.MessagesPerSec, p.Retries, p.Errors)
}

// printSimulateSummary writes the summary as text tables.
func printSimulateSummary(w io.Writer, s *simulate.Summary) error {
	fmt.Fprintf(w, "# gatehouse simulate: %d things (%s auth, prefix %s) at %g/s, publish every %s, against %s\n",
		s.Things, s.Auth, s.Prefix, s.RatePerSec, s.PublishInterval, s.Server)
	fmt.Fprintf(w, "setup %.2fs, run %.2fs: started %d, registered %d, tokens %d, connected %d, messages %d, errors %d\n",
		s.SetupSeconds, s.ElapsedSeconds, s.Started, s.Registered, s.Tokens, s.Connected, s.Messages, s.Errors)
	if s.Retries > 0 {
		ops := make([]string, 0, len(s.RetriesByOp))
		for _, op := range slices.Sorted(maps.Keys(s.RetriesByOp)) {
			ops = append(ops, fmt.Sprintf("%s %d", op, s.RetriesByOp[op]))
		}
		fmt.Fprintf(w, "limits: %d retries after \"not now\" answers (%s), not errors; %d devices delayed, by %.1fs at most, %.1fs in all\n",
			s.Retries, strings.Join(ops, ", "), s.DelayedDevices, s.MaxDeviceDelaySeconds, s.RetryWaitSeconds)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "operation\tcount\tper s (run)\tpeak per s\tp50 ms\tp99 ms\tmax ms\terrors")
	rates := map[string][2]float64{simulate.OpRegister: {s.RegistrationsPerSec, s.PeakRegistrationsPerSec},
		simulate.OpToken: {s.TokensPerSec, s.PeakTokensPerSec}, simulate.OpConnect: {s.ConnectsPerSec, s.PeakConnectsPerSec},
		simulate.OpPublish: {s.MessagesPerSec, s.PeakMessagesPerSec}}
	for _, op := range simulate.Ops {
		l, ok := s.Latencies[op]
		if !ok && s.ErrorsByKind[op] == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.1f\t%.1f\t%.1f\t%d\n", op, l.Count, rates[op][0], rates[op][1], l.P50Ms, l.P99Ms, l.MaxMs, s.ErrorsByKind[op])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.ErrorsByKind) > 0 {
		fmt.Fprintln(w, "\nerrors by kind:")
		for _, k := range s.ErrorKinds() {
			fmt.Fprintf(w, "  %-10s %d  first: %s\n", k, s.ErrorsByKind[k], s.FirstErrorByKind[k])
		}
	}
	return nil
}
