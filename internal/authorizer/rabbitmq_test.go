package authorizer_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/authorizer"
)

func TestTopicMapping(t *testing.T) {
	for _, c := range []struct{ amqp, mqtt string }{
		{"things.s-1.temp", "things/s-1/temp"},
		{"things.*.temp", "things/+/temp"},
		{"things.s-1.#", "things/s-1/#"},
		{"#", "#"},
		{"a/b.c", "a.b/c"}, // MQTT '.' travels as '/' (RabbitMQ >= 3.12)
		{".leading", "/leading"},
	} {
		if got := authorizer.MQTTTopic(c.amqp); got != c.mqtt {
			t.Errorf("MQTTTopic(%q) = %q, want %q", c.amqp, got, c.mqtt)
		}
		if got := authorizer.AMQPRoutingKey(c.mqtt); got != c.amqp {
			t.Errorf("AMQPRoutingKey(%q) = %q, want %q", c.mqtt, got, c.amqp)
		}
	}
}

func TestRabbitMQ(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("s-1")
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	steps := []struct {
		name string
		path string
		form url.Values
		want string
	}{
		// Before authentication nothing is allowed.
		{"vhost before login", "vhost", form("username", "s-1", "vhost", "/", "ip", "127.0.0.1"), "deny"},
		{"topic before login", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-1.t"), "deny"},
		{"bad token", "user", form("username", "s-1", "password", "nope"), "deny"},
		{"other thing's name", "user", form("username", "s-2", "password", tok), "deny"},
		{"no password", "user", form("username", "s-1"), "deny"},
		{"client id the policy refuses", "user", form("username", "s-1", "password", tok, "client_id", "x", "vhost", "/"), "deny"},
		{"login", "user", form("username", "s-1", "password", tok), "allow"},
		{"login with client id (>= 3.11)", "user", form("username", "s-1", "password", tok, "client_id", "s-1", "vhost", "/"), "allow"},
		{"login to unknown vhost", "user", form("username", "s-1", "password", tok, "vhost", "other"), "deny"},
		{"vhost", "vhost", form("username", "s-1", "vhost", "/", "ip", "127.0.0.1"), "allow"},
		{"other vhost", "vhost", form("username", "s-1", "vhost", "prod", "ip", "127.0.0.1"), "deny"},
		{"exchange write", "resource", form("username", "s-1", "vhost", "/", "resource", "exchange", "name", "amq.topic", "permission", "write"), "allow"},
		{"exchange read", "resource", form("username", "s-1", "vhost", "/", "resource", "exchange", "name", "amq.topic", "permission", "read"), "allow"},
		{"exchange configure", "resource", form("username", "s-1", "vhost", "/", "resource", "exchange", "name", "amq.topic", "permission", "configure"), "deny"},
		{"other exchange", "resource", form("username", "s-1", "vhost", "/", "resource", "exchange", "name", "amq.direct", "permission", "write"), "deny"},
		{"own subscription queue", "resource", form("username", "s-1", "vhost", "/", "resource", "queue", "name", "mqtt-subscription-s-1qos1", "permission", "configure"), "allow"},
		{"own will queue", "resource", form("username", "s-1", "vhost", "/", "resource", "queue", "name", "mqtt-will-s-1", "permission", "configure"), "allow"},
		{"someone else's queue", "resource", form("username", "s-1", "vhost", "/", "resource", "queue", "name", "mqtt-subscription-s-2qos1", "permission", "read"), "deny"},
		{"arbitrary queue", "resource", form("username", "s-1", "vhost", "/", "resource", "queue", "name", "orders", "permission", "read"), "deny"},
		{"publish own topic", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-1.temp"), "allow"},
		{"publish own topic with 3.13 variable map", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-1.temp", "variable_map.client_id", "s-1", "variable_map.username", "s-1", "variable_map.vhost", "/"), "allow"},
		{"publish other's topic", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-2.temp"), "deny"},
		{"publish firmware", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-1.firmware"), "deny"},
		{"publish wildcard", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-1.*"), "deny"},
		{"publish on other exchange", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "x", "permission", "write", "routing_key", "things.s-1.temp"), "deny"},
		{"subscribe own '#'", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "things.s-1.#"), "allow"},
		{"subscribe own '+' ('*')", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "things.s-1.*"), "allow"},
		{"subscribe commands", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "commands.#"), "allow"},
		{"subscribe everything", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "#"), "deny"},
		{"subscribe literal firmware (no receive)", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "things.s-1.firmware"), "deny"},
		{"subscribe other's", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "read", "routing_key", "things.*.temp"), "deny"},
		{"unknown permission", "topic", form("username", "s-1", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "configure", "routing_key", "things.s-1.temp"), "deny"},
		{"another user has no session", "topic", form("username", "s-2", "vhost", "/", "resource", "topic", "name", "amq.topic", "permission", "write", "routing_key", "things.s-2.temp"), "deny"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			status, body := f.postForm("/authorizer/rabbitmq/"+s.path, s.form)
			if status != http.StatusOK || body != s.want {
				t.Fatalf("%d %q, want 200 %q", status, body, s.want)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.http.URL+"/authorizer/rabbitmq/vhost?username=s-1&vhost=%2F&ip=127.0.0.1", nil)
		req.Header.Set(authorizer.KeyHeader, testKey)
		if status, body := f.do(req); status != 200 || body != "allow" {
			t.Fatalf("%d %q", status, body)
		}
	})
}
