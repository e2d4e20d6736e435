package authorizer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// writeRabbit answers rabbitmq_auth_backend_http: "allow [tags]" or "deny".
func writeRabbit(w http.ResponseWriter, allow bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if allow {
		_, _ = io.WriteString(w, "allow")
		return
	}
	_, _ = io.WriteString(w, "deny")
}

// rabbitClientID is the MQTT client id RabbitMQ sent, if any: newer
// versions send client_id to the user path and a variable_map to the
// topic path (rendered as variable_map.client_id).
func rabbitClientID(r *http.Request) string {
	if v := r.Form.Get("client_id"); v != "" {
		return v
	}
	return r.Form.Get("variable_map.client_id")
}

func (a *Adapters) rabbitForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return false
	}
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		// Parameter names only: values include passwords.
		a.log.Debug("rabbitmq request", "path", r.URL.Path, "params", slices.Sorted(maps.Keys(r.Form)))
	}
	return true
}

// rabbitUser authenticates a connection: the password is the access token.
func (a *Adapters) rabbitUser(w http.ResponseWriter, r *http.Request) {
	if !a.rabbitForm(w, r) {
		return
	}
	username, password, clientID := r.Form.Get("username"), r.Form.Get("password"), rabbitClientID(r)
	if v := r.Form.Get("vhost"); v != "" && !a.vhosts[v] {
		a.log.Info("rabbitmq user denied", "username", logName(username), "why", "vhost not allowed")
		writeRabbit(w, false)
		return
	}
	if password == "" {
		writeRabbit(w, false)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	id, err := a.cfg.Authn.Authenticate(ctx, authn.Credentials{ClientID: clientID, Username: username, Password: []byte(password)})
	if err != nil {
		if !errors.Is(err, authn.ErrBadCredentials) && !errors.Is(err, authn.ErrNotAuthorized) {
			a.log.Error("rabbitmq user", "username", logName(username), "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		a.log.Info("rabbitmq user denied", "username", logName(username), "why", err)
		writeRabbit(w, false)
		return
	}
	thingAs := clientID
	if thingAs == "" {
		thingAs = username
	}
	b, err := a.bind(ctx, id.Subject, id, clientID, thingAs, netip.Addr{})
	if err != nil {
		a.log.Info("rabbitmq user denied", "username", logName(username), "principal", id.Principal, "why", err)
		writeRabbit(w, false)
		return
	}
	if clientID != "" && !b.Allowed(policy.ActionConnect, clientID) {
		a.log.Info("rabbitmq user denied", "username", logName(username), "client", truncate(clientID), "why", "iot:Connect denied")
		writeRabbit(w, false)
		return
	}
	s := a.newSession(id, clientID, netip.Addr{})
	err = a.putSession(ctx, brokerRabbitMQ, "", username, s)
	if err == nil && clientID != "" {
		err = a.putSession(ctx, brokerRabbitMQ, clientID, username, s)
	}
	if err != nil {
		a.log.Error("rabbitmq user", "username", logName(username), "err", err)
		status := http.StatusInternalServerError
		if errors.Is(err, errTooManySessions) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, "session not stored", status)
		return
	}
	a.log.Debug("rabbitmq user allowed", "username", logName(username), "principal", id.Principal)
	writeRabbit(w, true)
}

// rabbitSession finds the session of a username (and client id, if sent)
// and checks that its credential may still act; nil (after answering
// "deny", or 500 when the store fails) if not.
func (a *Adapters) rabbitSession(w http.ResponseWriter, r *http.Request, username, clientID string) *session {
	ctx := r.Context()
	var (
		s   *session
		err error
	)
	if clientID != "" {
		s, err = a.session(ctx, brokerRabbitMQ, clientID, username)
	}
	if s == nil && err == nil {
		s, err = a.session(ctx, brokerRabbitMQ, "", username)
	}
	if err == nil && s == nil {
		err = errNoSession
	} else if err == nil {
		err = a.check(ctx, s)
	}
	switch {
	case err == nil:
		return s
	case errors.Is(err, errNoSession), errors.Is(err, authn.ErrNotAuthorized):
		a.log.Debug("rabbitmq request denied", "path", r.URL.Path, "username", logName(username), "why", err)
		writeRabbit(w, false)
	default:
		a.log.Error("rabbitmq request", "path", r.URL.Path, "username", logName(username), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
	return nil
}

// rabbitVHost allows the configured vhosts to authenticated users.
func (a *Adapters) rabbitVHost(w http.ResponseWriter, r *http.Request) {
	if !a.rabbitForm(w, r) {
		return
	}
	if a.rabbitSession(w, r, r.Form.Get("username"), rabbitClientID(r)) != nil {
		writeRabbit(w, a.vhosts[r.Form.Get("vhost")])
	}
}

// rabbitResource allows what the MQTT plugin needs and nothing else: read
// and write on its topic exchange, and its own queues
// (mqtt-subscription-<client id>qos<n>, mqtt-will-<client id>), where the
// client id is the one RabbitMQ sent or, when it sent none, the username.
func (a *Adapters) rabbitResource(w http.ResponseWriter, r *http.Request) {
	if !a.rabbitForm(w, r) {
		return
	}
	f := r.Form
	username := f.Get("username")
	s := a.rabbitSession(w, r, username, rabbitClientID(r))
	if s == nil {
		return
	}
	if !a.vhosts[f.Get("vhost")] {
		writeRabbit(w, false)
		return
	}
	name, perm := f.Get("name"), f.Get("permission")
	ok := false
	switch f.Get("resource") {
	case "exchange":
		ok = name == a.cfg.RabbitMQExchange && (perm == "read" || perm == "write")
	case "queue":
		cid := s.clientID
		if cid == "" {
			cid = rabbitClientID(r)
		}
		if cid == "" {
			cid = username
		}
		ok = isMQTTQueue(name, cid)
	}
	if !ok {
		a.log.Debug("rabbitmq resource denied", "username", logName(username), "resource", f.Get("resource"), "name", truncate(name), "permission", perm)
	}
	writeRabbit(w, ok)
}

// isMQTTQueue tells whether name is one of the MQTT plugin's queues for
// clientID.
func isMQTTQueue(name, clientID string) bool {
	if rest, ok := strings.CutPrefix(name, "mqtt-subscription-"+clientID+"qos"); ok {
		return rest == "0" || rest == "1" || rest == "2"
	}
	return name == "mqtt-will-"+clientID
}

// rabbitTopic decides a topic-exchange publish (write) or a binding made
// for an MQTT SUBSCRIBE (read) by the session's policies.
func (a *Adapters) rabbitTopic(w http.ResponseWriter, r *http.Request) {
	if !a.rabbitForm(w, r) {
		return
	}
	f := r.Form
	username, clientID := f.Get("username"), rabbitClientID(r)
	s := a.rabbitSession(w, r, username, clientID)
	if s == nil {
		return
	}
	if !a.vhosts[f.Get("vhost")] || f.Get("name") != a.cfg.RabbitMQExchange {
		writeRabbit(w, false)
		return
	}
	if clientID == "" {
		clientID = s.clientID
	}
	thingAs := clientID
	if thingAs == "" {
		thingAs = username
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := a.bind(ctx, s.id.Subject, s.id, clientID, thingAs, s.sourceIP)
	if err != nil {
		a.log.Info("rabbitmq topic denied", "username", logName(username), "why", err)
		writeRabbit(w, false)
		return
	}
	topic := MQTTTopic(f.Get("routing_key"))
	ok := false
	switch f.Get("permission") {
	case "write":
		ok = PublishAllowed(b, topic, false)
	case "read":
		ok = SubscribeAllowed(b, topic)
	}
	if !ok {
		a.log.Debug("rabbitmq topic denied", "username", logName(username), "client", truncate(clientID), "permission", f.Get("permission"), "topic", truncate(topic))
	}
	writeRabbit(w, ok)
}

// MQTTTopic maps an AMQP routing key made by RabbitMQ's MQTT plugin back to
// the MQTT topic or filter: '.' <-> '/' and '*' -> '+' ('#' is the same in
// both).
func MQTTTopic(routingKey string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		case '*':
			return '+'
		}
		return r
	}, routingKey)
}

// AMQPRoutingKey is the inverse of MQTTTopic.
func AMQPRoutingKey(topic string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		case '+':
			return '*'
		}
		return r
	}, topic)
}
