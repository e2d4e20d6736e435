package oauth_test

import (
	"slices"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// TestDeviceApprovalGoesThroughRegistry: approving a thing's device code
// on the /device page makes the approver its owner through the registry:
// the user's policies, resolved (and cached) before the approval, name
// the thing right after it, without waiting for the cache to expire.
func TestDeviceApprovalGoesThroughRegistry(t *testing.T) {
	e := newEnv(t, storetestSQLite(t))
	ctx := oidcContext(t, e)
	owned := func() []string {
		t.Helper()
		res, err := e.registry.ResolvePolicies(t.Context(), registry.Subject{UserName: "alice"}, policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.User == nil {
			t.Fatal("resolved policies of alice have no user")
		}
		return res.User.Things["owner"]
	}
	if got := owned(); slices.Contains(got, "sensor-1") {
		t.Fatalf("alice owns %v before approving", got)
	}
	cfg, auth := e.deviceConfig("sensor-1", "publish")
	da, err := cfg.DeviceAuth(ctx, auth...)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	e.approve(da.VerificationURIComplete, "alice", "correct horse", true)
	if got := owned(); !slices.Contains(got, "sensor-1") {
		t.Errorf("right after approving, alice's policies relate her as owner to %v, want sensor-1", got)
	}
}
