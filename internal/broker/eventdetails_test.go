package broker

import (
	"encoding/json"
	"testing"
)

// TestConnectionEventDetails: the connection events' details structs
// encode exactly as the maps the broker wrote before them, so stored
// events, the $gatehouse/events mirror and consumers see the same text.
func TestConnectionEventDetails(t *testing.T) {
	tests := []struct {
		name    string
		details any
		was     map[string]any
	}{
		{"connected", &connectedDetails{ClientID: "dev-1", Remote: "10.0.0.1:5000", Listener: "mqtt", Method: "token", Thing: "dev-1", Policies: []string{"p1", "p2"}, Protocol: 5},
			map[string]any{"clientId": "dev-1", "remote": "10.0.0.1:5000", "listener": "mqtt", "method": "token", "thing": "dev-1", "policies": []string{"p1", "p2"}, "protocol": byte(5)}},
		{"connected, no policies, no thing", &connectedDetails{ClientID: "c<&>\"é", Remote: "[::1]:1", Listener: "anonymous", Method: "anonymous", Protocol: 4},
			map[string]any{"clientId": "c<&>\"é", "remote": "[::1]:1", "listener": "anonymous", "method": "anonymous", "thing": "", "policies": []string(nil), "protocol": byte(4)}},
		{"disconnected", &disconnectedDetails{ClientID: "dev-1", Reason: "client disconnected", SessionKept: true},
			map[string]any{"clientId": "dev-1", "reason": "client disconnected", "sessionKept": true}},
		{"disconnected, error", &disconnectedDetails{ClientID: "x", Reason: "read tcp: i/o timeout <EOF>"},
			map[string]any{"clientId": "x", "reason": "read tcp: i/o timeout <EOF>", "sessionKept": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.details)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tt.was)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("details = %s, want %s", got, want)
			}
		})
	}
}
