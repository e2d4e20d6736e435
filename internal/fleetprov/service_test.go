package fleetprov_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/ratelimit"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

const sensorTemplate = `{"Parameters":{"Serial":{"Type":"String"}},
 "Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Sub":"sensor-${Serial}"},"AttributePayload":{"serial":{"Ref":"Serial"}}}},
  "certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"},"Status":"Active"}},
  "policy":{"Type":"AWS::IoT::Policy","Properties":{"PolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}}}},
 "DeviceConfiguration":{"serial":{"Ref":"Serial"}}}`

type fixture struct {
	env   *testenv.Env
	clock *testenv.Clock
	svc   *fleetprov.Service
}

func newFixture(t *testing.T, hook string) *fixture {
	t.Helper()
	clock := testenv.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	env := testenv.Core(t, testenv.Now(clock.Now))
	svc, err := fleetprov.New(fleetprov.Config{Store: env.Store, Registry: env.Registry, Certs: env.Certs(), Events: env.Events, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateTemplate(env.As("user:admin"), fleetprov.NewTemplate{Name: "sensors", Body: []byte(sensorTemplate), Enabled: true, PreProvisioningHook: hook}); err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, clock: clock, svc: svc}
}

var claimA = fleetprov.Claim{Principal: "certificate:aaaa", CredentialID: "aaaa", ClientID: "dev-1"}

func code(err error) string {
	var e *fleetprov.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestRegisterThing: a certificate created for a claim becomes a thing's,
// ACTIVE, with the template's policy, in one change whose events name the
// claim; its token is single use, bound to the claim and expires.
func TestRegisterThing(t *testing.T) {
	f := newFixture(t, "")
	ctx := f.env.Ctx
	created, err := f.svc.CreateCertificate(ctx, claimA, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.env.Store.GetCertificate(ctx, created.CertificateID); err != nil || c.Status != store.CertInactive || c.ThingName != "" {
		t.Fatalf("created certificate = %+v, %v; want INACTIVE of no thing", c, err)
	}
	if _, err := f.svc.RegisterThing(ctx, fleetprov.Claim{Principal: "certificate:bbbb", CredentialID: "bbbb", ClientID: "dev-1"}, "sensors", created.OwnershipToken, map[string]string{"Serial": "1"}); code(err) != fleetprov.CodeInvalidParameters {
		t.Errorf("RegisterThing by another claim: err = %v, want InvalidParameters", err)
	}
	if _, err := f.svc.RegisterThing(ctx, claimA, "sensors", created.OwnershipToken, nil); code(err) != fleetprov.CodeInvalidParameters {
		t.Errorf("RegisterThing without the Serial parameter: err = %v, want InvalidParameters", err)
	}
	before, _ := f.env.Events.LatestID(ctx)
	got, err := f.svc.RegisterThing(ctx, claimA, "sensors", created.OwnershipToken, map[string]string{"Serial": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ThingName != "sensor-1" || got.DeviceConfiguration["serial"] != "1" {
		t.Errorf("RegisterThing = %+v", got)
	}
	c, err := f.env.Store.GetCertificate(ctx, created.CertificateID)
	if err != nil || c.Status != store.CertActive || c.ThingName != "sensor-1" {
		t.Errorf("certificate after RegisterThing = %+v, %v; want ACTIVE of sensor-1", c, err)
	}
	if th, err := f.env.Store.GetThing(ctx, "sensor-1"); err != nil || th.Attributes["serial"] != "1" {
		t.Errorf("thing sensor-1 = %+v, %v", th, err)
	}
	evs, err := f.env.Store.ListEvents(ctx, store.EventFilter{AfterID: before})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.Actor != claimA.Principal {
			t.Errorf("event %s by %q, want %q", e.Type, e.Actor, claimA.Principal)
		}
	}
	for _, want := range []string{"thing.registered", "certificate.attached", "certificate.activated", "policy.created", "policy.attached", "provisioning_template.provisioned"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
	if _, err := f.svc.RegisterThing(ctx, claimA, "sensors", created.OwnershipToken, map[string]string{"Serial": "1"}); code(err) != fleetprov.CodeInvalidParameters {
		t.Errorf("RegisterThing with a used token: err = %v, want InvalidParameters", err)
	}

	late, err := f.svc.CreateCertificate(ctx, claimA, "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(fleetprov.DefaultOwnershipTokenTTL)
	if _, err := f.svc.RegisterThing(ctx, claimA, "sensors", late.OwnershipToken, map[string]string{"Serial": "2"}); code(err) != fleetprov.CodeInvalidParameters {
		t.Errorf("RegisterThing with an expired token: err = %v, want InvalidParameters", err)
	}
	if _, err := f.svc.RegisterThing(ctx, claimA, "nope", late.OwnershipToken, nil); code(err) != fleetprov.CodeNotFound {
		t.Errorf("RegisterThing with an unknown template: err = %v, want ResourceNotFound", err)
	}
	disabled := false
	if _, err := f.svc.UpdateTemplate(ctx, "sensors", 0, fleetprov.TemplatePatch{Enabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := f.svc.CreateCertificate(ctx, claimA, "")
	if _, err := f.svc.RegisterThing(ctx, claimA, "sensors", fresh.OwnershipToken, map[string]string{"Serial": "3"}); code(err) != fleetprov.CodeInvalidParameters {
		t.Errorf("RegisterThing with a disabled template: err = %v, want InvalidParameters", err)
	}
}

// TestPreProvisioningHook: the hook sees the request and may refuse it or
// override parameters; a hook that fails leaves the token usable.
func TestPreProvisioningHook(t *testing.T) {
	var failing atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ClaimCertificateID, CertificateID, TemplateName, ClientID string
			Parameters                                                map[string]string
		}
		if failing.Load() || json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		allow := in.Parameters["Serial"] != "stolen" && in.ClaimCertificateID == claimA.CredentialID && in.TemplateName == "sensors" && in.CertificateID != ""
		_ = json.NewEncoder(w).Encode(map[string]any{"allowProvisioning": allow, "parameterOverrides": map[string]string{"Serial": strings.ToUpper(in.Parameters["Serial"])}})
	}))
	t.Cleanup(hook.Close)
	f := newFixture(t, hook.URL)
	ctx := f.env.Ctx
	tests := []struct {
		serial, wantThing, wantCode string
	}{
		{"ab", "sensor-AB", ""},
		{"stolen", "", fleetprov.CodeUnauthorized},
	}
	for _, tc := range tests {
		c, err := f.svc.CreateCertificate(ctx, claimA, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.svc.RegisterThing(ctx, claimA, "sensors", c.OwnershipToken, map[string]string{"Serial": tc.serial})
		if code(err) != tc.wantCode || (err == nil && got.ThingName != tc.wantThing) {
			t.Errorf("RegisterThing(%s) = %+v, %v; want thing %q, code %q", tc.serial, got, err, tc.wantThing, tc.wantCode)
		}
	}
	c, _ := f.svc.CreateCertificate(ctx, claimA, "")
	failing.Store(true)
	if _, err := f.svc.RegisterThing(ctx, claimA, "sensors", c.OwnershipToken, map[string]string{"Serial": "cd"}); code(err) != fleetprov.CodeInternal {
		t.Errorf("RegisterThing with the hook down: err = %v, want InternalFailure", err)
	}
	failing.Store(false)
	if got, err := f.svc.RegisterThing(ctx, claimA, "sensors", c.OwnershipToken, map[string]string{"Serial": "cd"}); err != nil || got.ThingName != "sensor-CD" {
		t.Errorf("RegisterThing again once the hook is back = %+v, %v", got, err)
	}
}

// TestClaimPolicy: a claim may connect and use its template's provisioning
// topics, and nothing else.
func TestClaimPolicy(t *testing.T) {
	doc, err := policy.Parse(fleetprov.ClaimPolicy("sensors"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(policy.NamedDocument{Name: "claim", Document: doc})
	if err != nil {
		t.Fatal(err)
	}
	b := set.Bind(policy.Context{ClientID: "anything"})
	tests := []struct {
		action   policy.Action
		resource string
		want     bool
	}{
		{policy.ActionConnect, "anything", true},
		{policy.ActionPublish, "$aws/certificates/create/json", true},
		{policy.ActionPublish, "$aws/certificates/create-from-csr/cbor", true},
		{policy.ActionPublish, "$aws/provisioning-templates/sensors/provision/json", true},
		{policy.ActionSubscribe, "$aws/provisioning-templates/sensors/provision/json/accepted", true},
		{policy.ActionReceive, "$aws/certificates/create/json/rejected", true},
		{policy.ActionPublish, "$aws/provisioning-templates/other/provision/json", false},
		{policy.ActionSubscribe, "$aws/provisioning-templates/other/provision/json/accepted", false},
		{policy.ActionPublish, "telemetry/x", false},
		{policy.ActionSubscribe, "#", false},
		{policy.ActionPublish, "$aws/things/x/shadow/update", false},
	}
	for _, tc := range tests {
		if got := b.Allowed(tc.action, tc.resource); got != tc.want {
			t.Errorf("Allowed(%v, %q) = %v, want %v", tc.action, tc.resource, got, tc.want)
		}
	}
}

// TestCertificatesPerClaim: a claim gets at most limits.certificatesPerClaim
// certificates; another claim is not held back by it.
func TestCertificatesPerClaim(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	env := testenv.Core(t, testenv.Now(clock.Now))
	rate, err := ratelimit.ParseRate("2/h")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := fleetprov.New(fleetprov.Config{Store: env.Store, Registry: env.Registry, Certs: env.Certs(), Events: env.Events, Now: clock.Now,
		CertificatesPerClaim: ratelimit.New("certificatesPerClaim", rate, ratelimit.Options{Now: clock.Now})})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := svc.CreateCertificate(env.Ctx, claimA, ""); err != nil {
			t.Fatalf("certificate %d: %v", i+1, err)
		}
	}
	if _, err := svc.CreateCertificate(env.Ctx, claimA, ""); code(err) != fleetprov.CodeThrottling {
		t.Errorf("third certificate of the claim: err = %v, want Throttling", err)
	}
	if _, err := svc.CreateCertificate(env.Ctx, fleetprov.Claim{Principal: "certificate:bbbb", CredentialID: "bbbb", ClientID: "x"}, ""); err != nil {
		t.Errorf("another claim: %v", err)
	}
	clock.Advance(time.Hour)
	if _, err := svc.CreateCertificate(env.Ctx, claimA, ""); err != nil {
		t.Errorf("after the bucket refilled: %v", err)
	}
}
