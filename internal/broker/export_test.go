package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// AddTestHook adds h to the broker's mochi server after Gatehouse's own,
// for a test that holds mochi at a chosen point (TestTakeoverKeepsTheNewConnection).
func (b *Broker) AddTestHook(h mqtt.Hook) error { return b.server.AddHook(h, nil) }

// TestClient is the client registered under clientID, or nil.
func (b *Broker) TestClient(clientID string) *mqtt.Client {
	cl, _ := b.server.Clients.Get(clientID)
	return cl
}
