package broker

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

var rebindSessions = flag.Int("rebind.sessions", 100_000, "live sessions for BenchmarkRebindPolicyEdit")

// benchPolicy is a typical device policy, with thing variables to bind.
const benchPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/things/${iot:Connection.Thing.ThingName}/*","topic/commands/*"]},
 {"Effect":"Allow","Action":"iot:Subscribe","Resource":["topicfilter/things/${iot:Connection.Thing.ThingName}/*","topicfilter/commands/#"]},
 {"Effect":"Deny","Action":["iot:Publish","iot:Receive"],"Resource":"topic/*/firmware"}]}`

// count reads a counter.
func count(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// cpuTime is the CPU time the process has used: on a shared machine a
// steadier figure than the elapsed time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRebindPolicyEdit drives the hook directly with
// -rebind.sessions live sessions (inline clients, no sockets: the re-bind
// path never touches the network) of things of one type, and measures,
// per policy edit that concerns all of them (a new default version of the
// type's policy), the time until every session is re-bound (s/edit), and
// the latency of a token revocation recorded while that re-bind runs,
// until its session is disconnected (ms/revocation), and the CPU time the
// process used per edit (cpu-s/edit, all of the process: the database
// too).
func BenchmarkRebindPolicyEdit(b *testing.B) {
	env := testenv.New(b)
	admin := env.As("bench")
	if _, err := env.Registry.CreatePolicy(admin, registry.NewPolicy{Name: "device", Document: []byte(benchPolicy)}); err != nil {
		b.Fatal(err)
	}
	if _, err := env.Registry.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"device"}}); err != nil {
		b.Fatal(err)
	}
	env.Things(admin, "sensor", "t-0")
	br, err := New(Config{Authn: env.Authn, Registry: env.Registry, Events: env.Events})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.RegisterMetrics(prometheus.NewRegistry()); err != nil {
		b.Fatal(err)
	}
	env.Go(br.Run)
	tmpl, err := env.Registry.ResolvePolicies(admin, registry.Subject{ThingName: "t-0", Scopes: []string{"mqtt"}}, br.cfg.Policy)
	if err != nil {
		b.Fatal(err)
	}
	n := *rebindSessions
	sessions := make([]*session, n)
	for i := range n {
		name := fmt.Sprintf("t-%d", i)
		id := &authn.Identity{Method: "token", ThingName: name, Principal: "thing:" + name, CredentialID: "jti-" + name,
			Subject: registry.Subject{ThingName: name, Scopes: []string{"mqtt"}}, ExpiresAt: time.Now().Add(time.Hour)}
		s := &session{cl: br.server.NewClient(nil, "local", name, true), id: id, clientID: name, pending: map[string]struct{}{}, connectedAt: time.Now()}
		res := *tmpl
		res.Thing = &store.Thing{Name: name, ThingType: "sensor", State: store.StateEnabled}
		br.hook.bindTo(s, &res)
		br.hook.remember(s.cl, s)
		sessions[i] = s
	}
	recompiled := br.metrics.rebound.WithLabelValues("recompiled")
	ctx := context.Background()
	var edits, revocations, cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		doc := strings.Replace(benchPolicy, "commands/*", fmt.Sprintf("commands/%d/*", i), 1)
		before := count(recompiled)
		start, cpuStart := time.Now(), cpuTime()
		if _, err := env.Registry.CreatePolicyVersion(admin, "device", 0, []byte(doc), true); err != nil {
			b.Fatal(err)
		}
		if i >= 3 {
			// A policy keeps five versions: drop the oldest.
			if err := env.Registry.DeletePolicyVersion(admin, "device", int64(i-2)); err != nil {
				b.Fatal(err)
			}
		}
		edited, err := env.Events.LatestID(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// Revoke one session's token once the re-bind is under way.
		for count(recompiled) == before {
			time.Sleep(100 * time.Microsecond) // timed region: polling the re-bind's start
		}
		victim := sessions[(i*7919+1)%n]
		revoked := time.Now()
		if err := env.Store.InTx(ctx, func(tx *store.Tx) error {
			_, err := env.Events.Record(ctx, tx, "token.revoked", "thing/"+victim.id.ThingName, map[string]any{"jti": victim.id.CredentialID})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		for victim.cl.StopTime() == 0 {
			time.Sleep(100 * time.Microsecond) // timed region: polling the disconnect
		}
		revocations += time.Since(revoked)
		if count(recompiled) >= before+float64(n-1) {
			b.Logf("edit %d: the re-bind was over before the revocation was applied", i)
		}
		for br.Applied() < edited {
			time.Sleep(100 * time.Microsecond) // timed region: polling the re-bind's end
		}
		edits += time.Since(start)
		cpu += cpuTime() - cpuStart
		br.hook.forget(victim.cl)
	}
	b.ReportMetric(edits.Seconds()/float64(b.N), "s/edit")
	b.ReportMetric(float64(revocations.Microseconds())/1000/float64(b.N), "ms/revocation")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/edit")
	b.ReportMetric(0, "ns/op")
}
