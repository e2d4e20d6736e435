package testenv_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestNew: the stack issues a token by client credentials over HTTP, with
// the chosen algorithm, and the authenticator accepts it for its thing
// only; on both store drivers.
func TestNew(t *testing.T) {
	for _, d := range storetest.Drivers() {
		for _, alg := range []string{"ES256", "EdDSA"} {
			t.Run(d.Name+"/"+alg, func(t *testing.T) {
				env := testenv.New(t, testenv.DSN(d.DSN(t)), testenv.Algorithm(alg), testenv.RunOAuth())
				admin := env.As("test")
				if _, err := env.Registry.CreateThingType(admin, registry.ThingTypeSpec{Name: "sensor", Scopes: []string{"mqtt"}}); err != nil {
					t.Fatal(err)
				}
				secrets := env.Things(admin, "sensor", "s-1", "s-2")
				tok := env.Token("s-1", secrets["s-1"], "mqtt")
				id, err := env.Authn.Authenticate(env.Ctx, authn.Credentials{ClientID: "s-1", Username: "s-1", Password: []byte(tok)})
				if err != nil || id.Subject.ThingName != "s-1" {
					t.Fatalf("Authenticate(s-1's token) = %+v, %v; want s-1", id, err)
				}
				if _, err := env.Authn.Authenticate(env.Ctx, authn.Credentials{ClientID: "s-2", Username: "s-2", Password: []byte(tok)}); !errors.Is(err, authn.ErrBadCredentials) && !errors.Is(err, authn.ErrNotAuthorized) {
					t.Errorf("s-1's token as s-2: err = %v, want a refusal", err)
				}
			})
		}
	}
}

// TestCoreClockAndCerts: the clock given reaches the registry, and Certs
// returns a service whose CA exists.
func TestCoreClockAndCerts(t *testing.T) {
	clk := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	env := testenv.Core(t, testenv.Now(clk.Now))
	th, err := env.Registry.CreateThing(env.As("test"), registry.NewThing{Name: "t-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := th.CreatedAt.UTC(), clk.Now(); !got.Equal(want) {
		t.Errorf("CreatedAt = %v, want %v", got, want)
	}
	clk.Advance(time.Hour)
	if got, want := clk.Now(), time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC); !got.Equal(want) {
		t.Errorf("after Advance: %v, want %v", got, want)
	}
	ca, err := env.Certs().CA(env.Ctx)
	if err != nil || ca.Root() == nil {
		t.Fatalf("CA = %v, %v", ca, err)
	}
}

// TestEventually: it returns as soon as the condition holds, after the
// condition held, and reports how long that took.
func TestEventually(t *testing.T) {
	start := time.Now()
	n := 0
	took := testenv.Eventually(t, 10*time.Second, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("polled %d times, want 3", n)
	}
	if took <= 0 || took > time.Since(start) {
		t.Errorf("took = %v, want in (0, %v]", took, time.Since(start))
	}
	if took := testenv.Eventually(t, time.Second, "true", func() bool { return true }); took > 100*time.Millisecond {
		t.Errorf("a condition that holds at once took %v", took)
	}
}

// failTB records Fatalf and stops the goroutine, as testing.T does.
type failTB struct {
	testing.TB
	msg string
}

func (f *failTB) Helper() {}
func (f *failTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestEventuallyFails: a condition that never holds fails the test after
// within, naming what was awaited and how long the test waited.
func TestEventuallyFails(t *testing.T) {
	f := &failTB{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		testenv.Eventually(f, 50*time.Millisecond, "the impossible", func() bool { return false })
	}()
	<-done
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("failed after %v, before within passed", waited)
	}
	if !strings.HasPrefix(f.msg, "the impossible: not within 50ms (waited ") {
		t.Errorf("failure = %q", f.msg)
	}
}
