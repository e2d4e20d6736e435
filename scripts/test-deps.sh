#!/usr/bin/env bash
# test-deps.sh provides everything `make test` uses on this machine: it
# installs (apt-get, npm) and starts what is missing, and changes nothing that
# is already in place, so it is safe to run again and again. `make test` runs
# it first and .ci/run runs `make test`, so what CI sets up and what a
# developer sets up cannot drift.
#
# What it provides, on Debian (apt-get needs root, or password-less sudo):
#   PostgreSQL     at 127.0.0.1:5432 with a "test" database (package postgresql;
#                  started with pg_ctlcluster). Where no password-less login
#                  works from 127.0.0.1, one pg_hba.conf line lets the user
#                  postgres into the database test, from 127.0.0.1 only.
#                  GATEHOUSE_TEST_POSTGRES= (empty) skips PostgreSQL; another
#                  URL is only checked, never managed.
#   Mosquitto's command-line clients (mosquitto-clients), curl, jq, openssl,
#                  the AWS CLI v2 (awscli), HAProxy (haproxy).
#   Mosquitto      the broker (mosquitto; its service is left as it is) and the
#                  headers the plugin is built with (mosquitto-dev,
#                  libmosquitto-dev, libssl-dev, gcc), for e2e/mosquitto_test.go.
#   Chromium (/usr/bin/chromium, or $CHROMIUM), Node.js and npm, and the
#                  console browser tests' packages and the AWS IoT Device SDK of the
#                  fleet provisioning test (npm ci --prefix e2e/browser).
#                  GATEHOUSE_TEST_BROWSER_REQUIRED=0 skips them.
#   RabbitMQ       (rabbitmq-server) with its MQTT, HTTP-auth and management plugins
#                  (scripts/rabbitmq-test-setup.sh).
#                  GATEHOUSE_TEST_RABBITMQ_REQUIRED=0 skips it.
#
# When something is missing and cannot be installed, it stops with one line
# naming it and how to get it. `make test-short` needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-deps: $*"; }
fail() {
	echo "test-deps: $*" >&2
	exit 1
}

# root runs a command as root: directly, or through password-less sudo.
root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 127
	fi
}
can_root() { [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }

apt_updated=
# need WHAT PACKAGE...: install Debian packages for WHAT, or stop with one line.
need() {
	local what=$1
	shift
	command -v apt-get >/dev/null 2>&1 || fail "$what is missing and this machine has no apt-get: install $* yourself (or run make test-short)"
	can_root || fail "$what is missing and apt-get needs root or password-less sudo: install $* (or run make test-short)"
	if [ -z "$apt_updated" ]; then
		root apt-get update -qq >/dev/null || fail "apt-get update failed, so $what cannot be installed"
		apt_updated=1
	fi
	say "installing $* for $what"
	root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
		fail "apt-get install $* failed: $what is needed by the tests"
}

# Command-line tools the end-to-end tests run.
have() { command -v "$1" >/dev/null 2>&1; }
have mosquitto_pub || need "mosquitto_pub/mosquitto_sub" mosquitto-clients
have curl || need curl curl
have jq || need jq jq
have openssl || need openssl openssl
# The Mosquitto plugin (cmd/gatehouse-mosquitto, cgo) and the broker that
# loads it in e2e/mosquitto_test.go.
[ -x /usr/sbin/mosquitto ] || need "the Mosquitto broker" mosquitto
[ -f /usr/include/mosquitto_plugin.h ] && [ -f /usr/include/mosquitto_broker.h ] && [ -f /usr/include/mosquitto.h ] ||
	need "Mosquitto's plugin headers" mosquitto-dev libmosquitto-dev
[ -f /usr/include/openssl/x509.h ] || need "OpenSSL's headers (the plugin reads client certificates)" libssl-dev
have gcc || need "a C compiler (cgo, for the Mosquitto plugin)" gcc
# The AWS CLI v2 (Debian's awscli is 2.x) runs the seeds' aws iot commands
# against /aws-iot (e2e/dropin_test.go).
have aws && aws --version 2>&1 | grep -q '^aws-cli/2\.' || [ -x /usr/bin/aws ] || need "the AWS CLI" awscli
# HAProxy in front of replicas (e2e/haproxy_test.go starts its own process
# with the configuration docs/deploy.md shows; Debian's service, which has no
# listeners, is not used).
have haproxy || [ -x /usr/sbin/haproxy ] || need HAProxy haproxy

# PostgreSQL.
default_pg="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
pg_dsn=${GATEHOUSE_TEST_POSTGRES-$default_pg}
if [ -z "$pg_dsn" ]; then
	say "GATEHOUSE_TEST_POSTGRES is empty: the PostgreSQL suites will skip"
elif [ "$pg_dsn" != "$default_pg" ]; then
	have psql || need "psql (to check GATEHOUSE_TEST_POSTGRES)" postgresql-client
	psql "$pg_dsn" -Atqc 'select 1' >/dev/null 2>&1 ||
		fail "PostgreSQL at GATEHOUSE_TEST_POSTGRES=$pg_dsn does not answer; start it, or unset the variable to use a local one"
else
	have pg_isready || need PostgreSQL postgresql
	pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
	if ! pg_ready; then
		can_root || fail "PostgreSQL is not running on 127.0.0.1:5432 and starting it needs root or sudo (or run make test-short)"
		say "starting PostgreSQL"
		for v in $(ls /etc/postgresql 2>/dev/null); do
			root pg_ctlcluster --skip-systemctl-redirect "$v" main start >/dev/null 2>&1 || true
		done
		for _ in $(seq 1 30); do
			pg_ready && break
			sleep 1
		done
		pg_ready || fail "PostgreSQL does not answer on 127.0.0.1:5432 after pg_ctlcluster start (see /var/log/postgresql)"
	fi
	# As the postgres OS user over the local socket (peer or trust auth).
	as_pg() { root runuser -u postgres -- psql -Atq "$@"; }
	if ! psql "$pg_dsn" -Atqc 'select 1' >/dev/null 2>&1; then
		can_root || fail "cannot log in to $pg_dsn and fixing it needs root or sudo"
		if [ "$(as_pg -d postgres -c "select 1 from pg_database where datname = 'test'")" != 1 ]; then
			say "creating the PostgreSQL database test"
			as_pg -d postgres -c 'create database test' >/dev/null
		fi
		if ! psql "$pg_dsn" -Atqc 'select 1' >/dev/null 2>&1; then
			hba=$(as_pg -d postgres -c 'show hba_file')
			say "letting postgres into the database test from 127.0.0.1 without a password ($hba)"
			root sed -i '1i host test postgres 127.0.0.1/32 trust # gatehouse tests (scripts/test-deps.sh)' "$hba"
			as_pg -d postgres -c 'select pg_reload_conf()' >/dev/null
		fi
		psql "$pg_dsn" -Atqc 'select 1' >/dev/null 2>&1 || fail "cannot log in to $pg_dsn after creating the database"
	fi
fi

# Chromium, Node.js and the browser tests' packages.
if [ "${GATEHOUSE_TEST_BROWSER_REQUIRED:-1}" = 0 ]; then
	say "GATEHOUSE_TEST_BROWSER_REQUIRED=0: the console browser tests will skip"
else
	if [ -n "${CHROMIUM:-}" ]; then
		[ -x "$CHROMIUM" ] || fail "CHROMIUM=$CHROMIUM is not an executable"
	elif [ ! -x /usr/bin/chromium ]; then
		need Chromium chromium
	fi
	have node && have npm || need "Node.js and npm" nodejs npm
	lock=e2e/browser/package-lock.json
	installed=e2e/browser/node_modules/.package-lock.json
	if [ ! -f e2e/browser/node_modules/playwright-core/package.json ] || [ "$lock" -nt "$installed" ]; then
		say "installing the browser tests' npm packages (npm ci --prefix e2e/browser)"
		npm ci --prefix e2e/browser --no-audit --no-fund --prefer-offline >/dev/null ||
			fail "npm ci --prefix e2e/browser failed: the console browser tests need playwright-core, the fleet provisioning test aws-iot-device-sdk-v2"
	fi
fi

# RabbitMQ with its MQTT, HTTP auth and management plugins.
if [ "${GATEHOUSE_TEST_RABBITMQ_REQUIRED:-1}" = 0 ]; then
	say "GATEHOUSE_TEST_RABBITMQ_REQUIRED=0: the RabbitMQ adapter test will skip"
else
	have rabbitmqctl || need RabbitMQ rabbitmq-server
	if (exec 3<>/dev/tcp/127.0.0.1/"${RABBITMQ_MQTT_PORT:-11883}") 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
		: # set up already: its MQTT listener and management API answer
	else
		can_root || fail "RabbitMQ's MQTT listener is not set up and that needs root or sudo (or set GATEHOUSE_TEST_RABBITMQ_REQUIRED=0)"
		root bash scripts/rabbitmq-test-setup.sh >/dev/null ||
			fail "RabbitMQ's MQTT, HTTP auth and management plugins could not be set up (run scripts/rabbitmq-test-setup.sh to see why)"
	fi
fi

say "ready"
