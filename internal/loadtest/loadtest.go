// Package loadtest drives MQTT brokers with real clients to measure them:
// publish/deliver throughput with paired publishers and subscribers, and
// CONNECT rates. It exists so that `gatehouse dev bench` can put Gatehouse's
// broker, plain mochi-mqtt and Mosquitto side by side in one run with the
// same load, and report each broker's CPU per message rather than wall
// time alone (the load generator shares the machine).
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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
	// PID is the broker's process, whose CPU time is measured; 0 skips it.
	PID int
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
		sc, err := connect(ctx, t.Addr, t.Subscribers[i], func() { delivered.Add(1) })
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
	cpu0, _ := cpuTime(t.PID)
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
	cpu1, _ := cpuTime(t.PID)
	res.BrokerCPU = cpu1 - cpu0
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
	cpu0, _ := cpuTime(t.PID)
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
	cpu1, _ := cpuTime(t.PID)
	res.BrokerCPU = cpu1 - cpu0
	res.Delivered, res.Errors = ok.Load(), errs.Load()
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
