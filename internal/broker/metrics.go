package broker

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the broker's Prometheus series. The zero value (no
// registry) records nothing.
type metrics struct {
	connects *prometheus.CounterVec // result: accepted, refused
	denied   *prometheus.CounterVec // action: iot:Publish, ...
	kicked   prometheus.Counter
}

func (m *metrics) connect(result string) {
	if m.connects != nil {
		m.connects.WithLabelValues(result).Inc()
	}
}

func (m *metrics) deny(action string) {
	if m.denied != nil {
		m.denied.WithLabelValues(action).Inc()
	}
}

func (m *metrics) kick() {
	if m.kicked != nil {
		m.kicked.Inc()
	}
}

// RegisterMetrics exports the broker's counters to reg: CONNECTs accepted
// and refused, denials by action, clients disconnected by Gatehouse, and
// mochi's own gauges and totals (connected clients, messages received, sent
// and dropped, in-flight, retained, subscriptions). Call it before Run.
func (b *Broker) RegisterMetrics(reg prometheus.Registerer) error {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_connects_total", Help: "MQTT CONNECTs by result (accepted, refused)."}, []string{"result"}),
		denied:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_denied_total", Help: "Policy denials by action (iot:Publish, iot:Subscribe, iot:RetainPublish, iot:Connect)."}, []string{"action"}),
		kicked:   prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_mqtt_kicked_total", Help: "Clients disconnected by Gatehouse (revocation, expiry, policy change)."}),
	}
	info := b.server.Info
	gauges := []struct {
		name, help string
		v          *int64
		counter    bool
	}{
		{"gatehouse_mqtt_clients_connected", "Connected MQTT clients.", &info.ClientsConnected, false},
		{"gatehouse_mqtt_inflight_messages", "QoS 1/2 messages in flight.", &info.Inflight, false},
		{"gatehouse_mqtt_retained_messages", "Retained messages held.", &info.Retained, false},
		{"gatehouse_mqtt_subscriptions", "Active subscriptions.", &info.Subscriptions, false},
		{"gatehouse_mqtt_messages_received_total", "PUBLISH packets received.", &info.MessagesReceived, true},
		{"gatehouse_mqtt_messages_sent_total", "PUBLISH packets sent.", &info.MessagesSent, true},
		{"gatehouse_mqtt_messages_dropped_total", "Messages dropped to slow subscribers.", &info.MessagesDropped, true},
	}
	cs := []prometheus.Collector{m.connects, m.denied, m.kicked}
	for _, g := range gauges {
		v := g.v
		read := func() float64 { return float64(atomic.LoadInt64(v)) }
		if g.counter {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: g.name, Help: g.help}, read))
		} else {
			cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, read))
		}
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	b.metrics = m
	return nil
}
