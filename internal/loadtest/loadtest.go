// Package loadtest drives MQTT brokers with real clients to measure them:
// publish/deliver throughput with paired publishers and subscribers, and
// CONNECT rates. It exists so that `gatehouse dev bench` can put Gatehouse's
// broker, plain mochi-mqtt and Mosquitto side by side in one run with the
// same load, and report each broker's CPU per message rather than wall
// time alone (the load generator shares the machine).
package loadtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Credential is how one client logs in.
type Credential struct {
	ClientID string `json:"clientId"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// Target is a broker under test.
type Target struct {
	Name string
	Addr string
	// SubAddr is where subscribers connect, when not Addr (another replica
	// of a cluster).
	SubAddr string
	// PID is the broker's process, whose CPU time is measured; 0 skips it.
	// PIDs are more processes of the same broker (a cluster's replicas),
	// whose CPU time counts too.
	PID  int
	PIDs []int
	// Publishers and Subscribers are the credentials the load uses; the
	// i-th publisher publishes to Topic(i), which the i-th subscriber
	// subscribes to.
	Publishers, Subscribers []Credential
	Topic                   func(i int) string
}

// Throughput configures a publish/deliver run.
type Throughput struct {
	Pairs    int
	QoS      byte
	Payload  int
	Duration time.Duration
	// Window bounds QoS 0 messages in flight per publisher, so a fast
	// publisher measures the broker, not its own queue overflow.
	Window int
}

// Result is what one run measured.
type Result struct {
	Target    string
	Sent      int64
	Delivered int64
	Elapsed   time.Duration
	// BrokerCPU is the broker process's user+system CPU time during the
	// run (0 when not measured).
	BrokerCPU time.Duration
	Errors    int64
}

// PerSecond is delivered messages per wall second.
func (r Result) PerSecond() float64 { return float64(r.Delivered) / r.Elapsed.Seconds() }

// PerCoreSecond is delivered messages per second of broker CPU.
func (r Result) PerCoreSecond() float64 {
	if r.BrokerCPU <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.BrokerCPU.Seconds()
}

func connect(ctx context.Context, addr string, c Credential, onMessage func()) (*paho.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: conn}
	if onMessage != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) { onMessage(); return true, nil }}
	}
	pc := paho.NewClient(cfg)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: c.ClientID, KeepAlive: 60, CleanStart: true}
	if c.Username != "" {
		cp.Username, cp.UsernameFlag = c.Username, true
	}
	if c.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(c.Password), true
	}
	ca, err := pc.Connect(cctx, cp)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", c.ClientID, err)
	}
	if ca.ReasonCode != 0 {
		return nil, fmt.Errorf("connect %s: reason %#x", c.ClientID, ca.ReasonCode)
	}
	return pc, nil
}

// RunThroughput runs cfg against t and returns what was delivered.
func RunThroughput(ctx context.Context, t Target, cfg Throughput) (Result, error) {
	if len(t.Publishers) < cfg.Pairs || len(t.Subscribers) < cfg.Pairs {
		return Result{}, fmt.Errorf("loadtest: %s has credentials for %d pairs, want %d", t.Name, min(len(t.Publishers), len(t.Subscribers)), cfg.Pairs)
	}
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	res := Result{Target: t.Name}
	var delivered atomic.Int64
	subs := make([]*paho.Client, cfg.Pairs)
	pubs := make([]*paho.Client, cfg.Pairs)
	defer func() {
		for _, c := range append(subs, pubs...) {
			if c != nil {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}
	}()
	for i := range cfg.Pairs {
		sc, err := connect(ctx, t.subAddr(), t.Subscribers[i], func() { delivered.Add(1) })
		if err != nil {
			return res, err
		}
		subs[i] = sc
		sa, err := sc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: t.Topic(i), QoS: cfg.QoS}}})
		if err != nil || sa.Reasons[0] > 2 {
			return res, fmt.Errorf("subscribe %s: %v %v", t.Topic(i), sa, err)
		}
		pc, err := connect(ctx, t.Addr, t.Publishers[i], nil)
		if err != nil {
			return res, err
		}
		pubs[i] = pc
	}
	payload := make([]byte, cfg.Payload)
	var sent, errs atomic.Int64
	cpu0 := t.cpu()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range cfg.Pairs {
		wg.Go(func() {
			topic := t.Topic(i)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if cfg.QoS == 0 {
					// Pace QoS 0 by what was delivered, so queues stay bounded.
					for sent.Load()-delivered.Load() > int64(cfg.Window*cfg.Pairs) && time.Now().Before(deadline) {
						time.Sleep(50 * time.Microsecond)
					}
				}
				if _, err := pubs[i].Publish(ctx, &paho.Publish{Topic: topic, QoS: cfg.QoS, Payload: payload}); err != nil {
					errs.Add(1)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	// Let in-flight messages land.
	settle := time.Now().Add(5 * time.Second)
	for delivered.Load() < sent.Load() && time.Now().Before(settle) {
		time.Sleep(5 * time.Millisecond)
	}
	res.Elapsed = time.Since(start)
	res.BrokerCPU = t.cpu() - cpu0
	res.Sent, res.Delivered, res.Errors = sent.Load(), delivered.Load(), errs.Load()
	return res, nil
}

// RunConnects opens and closes connections with creds (round robin) for d
// from conc goroutines and counts successful CONNACKs.
func RunConnects(ctx context.Context, t Target, creds []Credential, conc int, d time.Duration) (Result, error) {
	if len(creds) == 0 {
		return Result{}, errors.New("loadtest: no credentials")
	}
	res := Result{Target: t.Name}
	var ok, errs, next atomic.Int64
	cpu0 := t.cpu()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				c := creds[int(next.Add(1))%len(creds)]
				pc, err := connect(ctx, t.Addr, c, nil)
				if err != nil {
					errs.Add(1)
					continue
				}
				ok.Add(1)
				_ = pc.Disconnect(&paho.Disconnect{})
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.BrokerCPU = t.cpu() - cpu0
	res.Delivered, res.Errors = ok.Load(), errs.Load()
	return res, nil
}

func (t Target) subAddr() string {
	if t.SubAddr != "" {
		return t.SubAddr
	}
	return t.Addr
}

// cpu is the CPU time of the broker's processes so far.
func (t Target) cpu() time.Duration {
	var sum time.Duration
	for _, pid := range append([]int{t.PID}, t.PIDs...) {
		d, _ := cpuTime(pid)
		sum += d
	}
	return sum
}

// Latency is what a latency run measured: publish to delivery, by the
// subscriber's clock (publisher and subscriber share the machine).
type Latency struct {
	P50, P99, Max  time.Duration
	Received, Sent int
}

// RunLatency publishes count messages of QoS qos from the first publisher,
// one every interval, to the first subscriber (at SubAddr), and measures
// each one's time from publish to delivery. It first waits up to a minute
// for a QoS 1 message to get through (a cluster forms asynchronously).
func RunLatency(ctx context.Context, t Target, qos byte, count int, interval time.Duration) (Latency, error) {
	if len(t.Publishers) == 0 || len(t.Subscribers) == 0 {
		return Latency{}, errors.New("loadtest: no credentials")
	}
	type sample struct {
		seq  int64
		took time.Duration
	}
	got := make(chan sample, count+1024)
	sc, err := connect(ctx, t.subAddr(), t.Subscribers[0], nil)
	if err != nil {
		return Latency{}, err
	}
	defer sc.Disconnect(&paho.Disconnect{})
	sc.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		p := pr.Packet.Payload
		if len(p) >= 16 {
			seq, at := int64(binary.BigEndian.Uint64(p)), int64(binary.BigEndian.Uint64(p[8:]))
			select {
			case got <- sample{seq, time.Since(time.Unix(0, at))}:
			default:
			}
		}
		return true, nil
	})
	topic := t.Topic(0)
	if sa, err := sc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil || sa.Reasons[0] > 2 {
		return Latency{}, fmt.Errorf("subscribe %s: %v %v", topic, sa, err)
	}
	pc, err := connect(ctx, t.Addr, t.Publishers[0], nil)
	if err != nil {
		return Latency{}, err
	}
	defer pc.Disconnect(&paho.Disconnect{})
	publish := func(seq int64, q byte) error {
		p := make([]byte, 16)
		binary.BigEndian.PutUint64(p, uint64(seq))
		binary.BigEndian.PutUint64(p[8:], uint64(time.Now().UnixNano()))
		_, err := pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: q, Payload: p})
		return err
	}
	// Warm up: negative sequence numbers until one arrives.
	deadline := time.Now().Add(time.Minute)
	for warm := int64(-1); ; warm-- {
		if err := publish(warm, 1); err != nil {
			return Latency{}, err
		}
		select {
		case <-got:
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				return Latency{}, errors.New("loadtest: no message got through within a minute")
			}
			continue
		case <-ctx.Done():
			return Latency{}, ctx.Err()
		}
		break
	}
	// Pacing: the latency of a lone message, not of a queue.
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := range int64(count) {
		<-tick.C
		if err := publish(seq, qos); err != nil {
			return Latency{}, err
		}
	}
	var took []time.Duration
	drain := time.After(5 * time.Second)
	for len(took) < count {
		select {
		case s := <-got:
			if s.seq >= 0 {
				took = append(took, s.took)
			}
			continue
		case <-drain:
		}
		break
	}
	res := Latency{Sent: count, Received: len(took)}
	if len(took) == 0 {
		return res, errors.New("loadtest: nothing received")
	}
	slices.Sort(took)
	res.P50, res.P99, res.Max = took[len(took)/2], took[min(len(took)-1, len(took)*99/100)], took[len(took)-1]
	return res, nil
}

// cpuTime reads a process's user+system CPU time from /proc.
func cpuTime(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) start at ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("loadtest: malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("loadtest: short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, nil
}
