package cli

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/loadtest"
)

// runBenchCluster measures a cluster of replicas (embedded NATS, one
// PostgreSQL) against one replica on the same machine: publishers on the
// first replica and subscribers on the second, so every message crosses
// between replicas; deliveries per second of broker CPU (all replicas'
// processes counted) and publish-to-delivery latency.
func runBenchCluster(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench-cluster", "dev bench-cluster --dsn POSTGRES_URL [--replicas 3] [--pairs N] [--duration D] [--qos 0,1] [--latency N]")
	dsn := fs.String("dsn", "", "PostgreSQL for the replicas (a fresh schema is created in it and dropped afterwards)")
	replicas := fs.Int("replicas", 3, "replicas in the cluster (at least 2)")
	pairs := fs.Int("pairs", 4, "publisher/subscriber pairs")
	duration := fs.Duration("duration", 10*time.Second, "length of each throughput run")
	qosList := fs.String("qos", "0,1", "QoS levels to run")
	payload := fs.Int("payload", 100, "payload bytes")
	latencyN := fs.Int("latency", 500, "messages of each latency run, one every 10ms (0 skips them)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if !strings.HasPrefix(*dsn, "postgres://") && !strings.HasPrefix(*dsn, "postgresql://") {
		return usagef("--dsn: want a postgres:// URL")
	}
	if *replicas < 2 {
		return usagef("--replicas: want at least 2")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	schemaDSN, drop, err := benchSchema(ctx, *dsn)
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "gatehouse-bench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	routes, err := loopbackAddrs(*replicas)
	if err != nil {
		return err
	}
	cluster := loadtest.Target{Name: fmt.Sprintf("%d replicas", *replicas)}
	for i := range *replicas {
		more := []string{"--dsn", schemaDSN, "--master-key", filepath.Join(dir, "master.key"), "--cluster-name", "replica-" + strconv.Itoa(i),
			"--cluster-listen", routes[i], "--cluster-routes", strings.Join(routes, ",")}
		if i > 0 {
			more = append(more, "--no-seed")
		}
		t, stop, err := startBenchTarget(ctx, self, "gatehouse", *pairs, more...)
		if err != nil {
			return fmt.Errorf("start replica %d: %w", i, err)
		}
		defer stop()
		switch i {
		case 0:
			cluster.Addr, cluster.PID, cluster.Publishers, cluster.Subscribers = t.Addr, t.PID, t.Publishers, t.Subscribers
		case 1:
			cluster.SubAddr = t.Addr
			cluster.PIDs = append(cluster.PIDs, t.PID)
		default:
			cluster.PIDs = append(cluster.PIDs, t.PID)
		}
	}
	single, stop, err := startBenchTarget(ctx, self, "gatehouse", *pairs)
	if err != nil {
		return fmt.Errorf("start one replica: %w", err)
	}
	defer stop()
	single.Name = "1 replica"
	targets := []loadtest.Target{single, cluster}
	for i := range targets {
		targets[i].Topic = func(i int) string { return "bench/" + strconv.Itoa(i) }
	}
	fmt.Fprintf(env.Stdout, "# gatehouse dev bench-cluster: %d replicas (embedded NATS, PostgreSQL; publishers on replica-0, subscribers on replica-1) vs 1 replica (SQLite); %d pairs, %d-byte payload, %s per run\n",
		*replicas, *pairs, *payload, *duration)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	qs := splitList(*qosList)
	if *latencyN > 0 {
		fmt.Fprintln(tw, "latency\tsetup\tp50\tp99\tmax\treceived")
		for _, q := range qs {
			qos, err := strconv.Atoi(q)
			if err != nil || qos < 0 || qos > 1 {
				return usagef("--qos: want 0 and/or 1")
			}
			for _, t := range targets {
				l, err := loadtest.RunLatency(ctx, t, byte(qos), *latencyN, 10*time.Millisecond)
				if err != nil {
					return fmt.Errorf("%s: %w", t.Name, err)
				}
				fmt.Fprintf(tw, "qos%d\t%s\t%v\t%v\t%v\t%d/%d\n", qos, t.Name, l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond), l.Received, l.Sent)
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "run\tsetup\tdelivered/s\tbroker CPU s\tmsgs per broker core-s\tvs 1 replica\terrors")
	if err := throughputRows(ctx, tw, targets, []string{single.Name}, *qosList, loadtest.Throughput{Pairs: *pairs, Payload: *payload, Duration: *duration}); err != nil {
		return err
	}
	return tw.Flush()
}

// benchSchema creates a fresh schema in the PostgreSQL at dsn and returns
// a DSN that selects it, and a function that drops it.
func benchSchema(ctx context.Context, dsn string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, usagef("--dsn: %v", err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	schema := "bench_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	}, nil
}

// loopbackAddrs returns n loopback addresses free a moment ago.
func loopbackAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}
