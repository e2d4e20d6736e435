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
	rebound  *prometheus.CounterVec // how: recompiled, refreshed
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

func (m *metrics) rebind(how string) {
	if m.rebound != nil {
		m.rebound.WithLabelValues(how).Inc()
	}
}

func (m *metrics) kick() {
	if m.kicked != nil {
		m.kicked.Inc()
	}
}

// RegisterMetrics exports the broker's counters to reg: CONNECTs accepted
// and refused, denials by action, clients disconnected by Gatehouse, sessions re-bound, and
// mochi's own gauges and totals (connected clients, messages received, sent
// and dropped, in-flight, retained, subscriptions), and the connection
// events the full event queue dropped. Call it before Run.
func (b *Broker) RegisterMetrics(reg prometheus.Registerer) error {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_connects_total", Help: "MQTT CONNECTs by result (accepted, refused)."}, []string{"result"}),
		denied:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_denied_total", Help: "Policy denials by action (iot:Publish, iot:Subscribe, iot:RetainPublish, iot:Connect)."}, []string{"action"}),
		kicked:   prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_mqtt_kicked_total", Help: "Clients disconnected by Gatehouse (revocation, expiry, policy change)."}),
		rebound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_mqtt_sessions_rebound_total",
			Help: "Sessions re-bound after a change by how: recompiled (new policy documents or attachments, subject unchanged) or refreshed (re-authorized and resolved)."}, []string{"how"}),
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
	cs := []prometheus.Collector{m.connects, m.denied, m.kicked, m.rebound}
	if b.batch != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_mqtt_events_dropped_total",
			Help: "Connection and denial events not written because 4096 were already waiting."},
			func() float64 { return float64(b.batch.Dropped()) }))
	}
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
