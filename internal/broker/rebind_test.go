package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// extraPolicy lets a thing publish to extra/<its name>.
const extraPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/extra/${iot:Connection.Thing.ThingName}"}]}`

// rebound reads gatehouse_mqtt_sessions_rebound_total{how}.
func (f *fixture) rebound(t *testing.T, how string) int {
	t.Helper()
	v, _ := counter(t, f.metrics, "gatehouse_mqtt_sessions_rebound_total", "how", how)
	return int(v)
}

// TestRebindOnlyAffected: a change re-binds only the live sessions it
// concerns, and each the cheapest way that is exact. A policy attached to
// nobody re-binds nobody; attaching it to one thing recompiles that
// thing's session only, and takes effect; a new default version of the
// type's policy recompiles both sessions; detaching re-authorizes the one
// session concerned, and the grant goes away; an attribute change
// re-authorizes that thing's session.
func TestRebindOnlyAffected(t *testing.T) {
	f := newFixture(t, time.Hour)
	s1 := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
	admin := f.env.As("test")
	f.caughtUp(t) // the fixture's own changes may reach the sessions
	want := map[string]int{"recompiled": f.rebound(t, "recompiled"), "refreshed": f.rebound(t, "refreshed")}
	check := func(step string) {
		t.Helper()
		f.caughtUp(t)
		for how, n := range want {
			if got := f.rebound(t, how); got != n {
				t.Errorf("after %s: sessions %s = %d, want %d", step, how, got, n)
			}
		}
	}

	if _, err := f.reg.CreatePolicy(admin, registry.NewPolicy{Name: "extra", Document: []byte(extraPolicy)}); err != nil {
		t.Fatal(err)
	}
	check("creating a policy attached to nobody")
	if got := publish(t, s1, "extra/s-1", 1, false); got == 0 {
		t.Fatal("publish to extra/s-1 allowed before the policy was attached")
	}

	if _, err := f.reg.AttachPolicy(admin, "extra", store.TargetThing, "s-1"); err != nil {
		t.Fatal(err)
	}
	want["recompiled"]++
	check("attaching it to s-1")
	if got := publish(t, s1, "extra/s-1", 1, false); got != 0 {
		t.Errorf("publish to extra/s-1 after the attachment = %#x, want 0", got)
	}

	noTemp := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}`, `"Resource":["topic/*/firmware","topic/things/*/temp"]}`, 1)
	if _, err := f.reg.CreatePolicyVersion(admin, "telemetry", 0, []byte(noTemp), false); err != nil {
		t.Fatal(err)
	}
	check("a policy version that is not the default")
	if _, err := f.reg.CreatePolicyVersion(admin, "telemetry", 0, []byte(noTemp), true); err != nil {
		t.Fatal(err)
	}
	want["recompiled"] += 2
	check("a new default version of the type's policy")
	if got := publish(t, s1, "things/s-1/temp", 1, false); got == 0 {
		t.Error("publish to things/s-1/temp allowed after the new default version denied it")
	}
	if got := publish(t, s1, "extra/s-1", 1, false); got != 0 {
		t.Errorf("publish to extra/s-1 after recompiling = %#x, want 0 (the attachment kept)", got)
	}

	if err := f.reg.DetachPolicy(admin, "extra", store.TargetThing, "s-1"); err != nil {
		t.Fatal(err)
	}
	want["refreshed"]++
	check("detaching it from s-1")
	if got := publish(t, s1, "extra/s-1", 1, false); got == 0 {
		t.Error("publish to extra/s-1 still allowed after the detachment")
	}

	v := "blue"
	if _, err := f.reg.UpdateThing(admin, "s-2", 0, registry.ThingPatch{Attributes: map[string]*string{"colour": &v}}); err != nil {
		t.Fatal(err)
	}
	want["refreshed"]++
	check("updating s-2")
}
