package broker

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestClusterHookDecidesNothing: mochi ORs OnConnectAuthenticate and
// OnACLCheck across hooks, and a hook's OnConnect or OnWill could admit or
// rewrite what Gatehouse's refused; the cluster hook provides none of them,
// so installing it cannot open the broker.
func TestClusterHookDecidesNothing(t *testing.T) {
	h := &clusterHook{}
	for _, tc := range []struct {
		name string
		b    byte
	}{
		{"OnConnectAuthenticate", mqtt.OnConnectAuthenticate},
		{"OnACLCheck", mqtt.OnACLCheck},
		{"OnConnect", mqtt.OnConnect},
		{"OnWill", mqtt.OnWill},
		{"OnSubscribe", mqtt.OnSubscribe},
	} {
		if got := h.Provides(tc.b); got {
			t.Errorf("cluster hook Provides(%s) = %v, want false", tc.name, got)
		}
	}
}
