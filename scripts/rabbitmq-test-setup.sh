#!/bin/sh
# Prepare a local RabbitMQ for internal/authorizer's end-to-end test
# (TestRabbitMQEndToEnd): the MQTT plugin on 127.0.0.1:$PORT (1883 is often
# Mosquitto's), no anonymous MQTT logins, the HTTP auth backend plugin, and
# the management plugin (HTTP API on 127.0.0.1:15672, guest/guest), through
# which Gatehouse closes the connections of revoked or expired credentials.
# The test itself points the HTTP backend at its own server at runtime and
# restores RabbitMQ's auth settings afterwards. Safe to run repeatedly.
#
#   RABBITMQ_MQTT_PORT   MQTT port (default 11883; the test reads
#                        GATEHOUSE_TEST_RABBITMQ_MQTT, default 127.0.0.1:11883)
#   RABBITMQ_CONF        config file (default /etc/rabbitmq/rabbitmq.conf)
set -eu

PORT=${RABBITMQ_MQTT_PORT:-11883}
CONF=${RABBITMQ_CONF:-/etc/rabbitmq/rabbitmq.conf}

command -v rabbitmqctl >/dev/null || { echo "rabbitmqctl not found: install rabbitmq-server" >&2; exit 1; }

if ! rabbitmqctl -q status >/dev/null 2>&1; then
	rabbitmq-server -detached
fi
rabbitmqctl -q await_startup --timeout 60 >/dev/null

# Persist the settings for the next boot (a running node does not re-read
# its config file, so they are also applied at runtime below).
mkdir -p "$(dirname "$CONF")"
touch "$CONF"
if ! grep -q '^mqtt.listeners.tcp.default' "$CONF"; then
	printf '%s\n' "# internal/authorizer e2e tests (scripts/rabbitmq-test-setup.sh)" \
		"mqtt.listeners.tcp.default = 127.0.0.1:$PORT" "mqtt.allow_anonymous = false" >>"$CONF"
fi

rabbitmqctl -q eval "application:load(rabbitmq_mqtt),
  application:set_env(rabbitmq_mqtt, tcp_listeners, [{\"127.0.0.1\", $PORT}]),
  application:set_env(rabbitmq_mqtt, allow_anonymous, false)." >/dev/null
rabbitmq-plugins -q enable rabbitmq_auth_backend_http rabbitmq_mqtt rabbitmq_management >/dev/null
rabbitmqctl -q eval 'application:ensure_all_started(rabbitmq_mqtt).' >/dev/null

listening() {
	rabbitmqctl -q eval "case gen_tcp:connect({127,0,0,1}, $1, []) of {ok, S} -> gen_tcp:close(S), ok; E -> E end." | grep -qx ok
}
for _ in $(seq 1 30); do
	if listening "$PORT" && listening 15672; then
		echo "RabbitMQ MQTT listening on 127.0.0.1:$PORT, management API on 127.0.0.1:15672"
		exit 0
	fi
	sleep 1
done
echo "RabbitMQ MQTT (127.0.0.1:$PORT) or its management API (127.0.0.1:15672) is not listening" >&2
exit 1
