package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/simulate"
)

func TestSimulateFlags(t *testing.T) {
	run := runSimulate
	for _, args := range [][]string{
		{"--token", "x", "--things", "0"},
		{"--token", "x", "--rate", "-1"},
		{"--token", "x", "--auth", "psk"},
		{"--things", "3"}, // no admin token
	} {
		var out bytes.Buffer
		env := &Env{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &out}
		if err := run(context.Background(), env, args); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

func TestPrintSimulateSummary(t *testing.T) {
	s := &simulate.Summary{Server: "http://127.0.0.1:8080", Auth: "cert", Prefix: "sim-x", Things: 2, Started: 2, RatePerSec: 1,
		PublishInterval: "1s", Registered: 2, Connected: 1, Messages: 5, Errors: 1, MessagesPerSec: 2.5,
		ErrorsByKind: map[string]int64{simulate.OpConnect: 1},
		Retries:      7, RetriesByOp: map[string]int64{"register": 5, "mqtt connect": 2}, DelayedDevices: 2, MaxDeviceDelaySeconds: 4.5, RetryWaitSeconds: 8.25,
		FirstErrorByKind: map[string]string{simulate.OpConnect: "refused"},
		Latencies: map[string]simulate.Latency{simulate.OpRegister: {Count: 2, P50Ms: 3, P99Ms: 4},
			simulate.OpPublish: {Count: 5, P50Ms: 1, P99Ms: 2}}}
	var b bytes.Buffer
	if err := printSimulateSummary(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 things (cert auth", "register", "publish", "connect", "first: refused",
		"7 retries", "(mqtt connect 2, register 5), not errors; 2 devices delayed, by 4.5s at most, 8.2s in all"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "token ") {
		t.Errorf("summary lists the unused token operation:\n%s", b.String())
	}
	b.Reset()
	printProgress(&b, simulate.Progress{Elapsed: 3 * time.Second, Up: 7, MessagesPerSec: 12, Retries: 3})
	if got := b.String(); !strings.Contains(got, "up 7") || !strings.Contains(got, "msg/s 12") || !strings.Contains(got, "retries 3") {
		t.Errorf("progress line = %q", got)
	}
}
