package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	c := Default()
	file := "dataDir: /var/lib/gh\nhttp:\n  addr: 0.0.0.0:9000\n  maxBodyBytes: 4096\nlog:\n  level: debug\n"
	if err := c.DecodeFile(strings.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEHOUSE_HTTP_ADDR": "127.0.0.1:9100", "GATEHOUSE_OAUTH_ACCESS_TOKEN_TTL": "15m",
		"GATEHOUSE_LIMITS_TOKEN_PER_CLIENT": "5/m", "GATEHOUSE_HTTP_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.0/24"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("log.level", "warn"); err != nil {
		t.Fatal(err)
	}
	c.Finish()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"dataDir from file", c.DataDir, "/var/lib/gh"},
		{"addr from env over file", c.HTTP.Addr, "127.0.0.1:9100"},
		{"maxBody from file", c.HTTP.MaxBodyBytes, int64(4096)},
		{"level from flag over file", c.Log.Level, "warn"},
		{"ttl from env", c.OAuth.AccessTokenTTL, 15 * time.Minute},
		{"default kept", c.Log.Format, "text"},
		{"derived dsn", c.Store.DSN, "sqlite:/var/lib/gh/gatehouse.db"},
		{"derived external URL", c.HTTP.ExternalURL, "http://127.0.0.1:9100"},
		{"derived mutual-TLS URL", c.HTTP.TLSExternalURL, "https://127.0.0.1:8443"},
		{"limit from env", c.Limits.TokenPerClient, "5/m"},
		{"trusted proxies from env", strings.Join(c.HTTP.TrustedProxies.Strings(), " "), "10.0.0.0/8 192.168.1.0/24"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	c.Finish()
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v, want nil", err)
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		set  [2]string
		want []string // every substring must appear in the error
	}{
		{name: "unknown key", file: "http:\n  adr: x\n", want: []string{"field adr not found"}},
		{name: "wrong type", file: "http:\n  maxBodyBytes: lots\n", want: []string{"line 2", "lots"}},
		{name: "bad env int", env: map[string]string{"GATEHOUSE_HTTP_MAX_BODY_BYTES": "big"}, want: []string{"GATEHOUSE_HTTP_MAX_BODY_BYTES", "not an integer"}},
		{name: "bad env duration", env: map[string]string{"GATEHOUSE_OAUTH_DEVICE_CODE_TTL": "soon"}, want: []string{"GATEHOUSE_OAUTH_DEVICE_CODE_TTL"}},
		{name: "unknown flag key", set: [2]string{"http.port", "1"}, want: []string{"unknown setting"}},
		{name: "every problem at once", file: "log:\n  level: loud\n  format: xml\noauth:\n  algorithm: none\nhttp:\n  addr: nowhere\n",
			want: []string{"log.level", "log.format", "oauth.algorithm", "http.addr"}},
		{name: "hs256 needs secret", file: "oauth:\n  algorithm: HS256\n", want: []string{"hs256Secret"}},
		{name: "bad dsn", file: "store:\n  dsn: mysql://x\n", want: []string{"store.dsn"}},
		{name: "rabbitmq management url with a password", env: map[string]string{"GATEHOUSE_AUTHORIZER_RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672"}, want: []string{"authorizer.rabbitmqManagementUrl"}},
		{name: "rabbitmq management url not http", file: "authorizer:\n  rabbitmqManagementUrl: amqp://127.0.0.1\n", want: []string{"authorizer.rabbitmqManagementUrl"}},
		{name: "import limit below body limit", file: "http:\n  maxBodyBytes: 4096\n  maxImportBytes: 2048\n", want: []string{"http.maxImportBytes"}},
		{name: "import limit over 1 GiB", file: "http:\n  maxImportBytes: 2147483648\n", want: []string{"http.maxImportBytes"}},
		{name: "keep-alive cap below 5s", file: "mqtt:\n  maxKeepAlive: 2s\n", want: []string{"mqtt.maxKeepAlive"}},
		{name: "keep-alive cap not whole seconds", file: "mqtt:\n  maxKeepAlive: 1500ms\n", want: []string{"mqtt.maxKeepAlive"}},
		{name: "denied QoS 0 publish neither drop nor disconnect", env: map[string]string{"GATEHOUSE_MQTT_DENIED_QOS0_PUBLISH": "ignore"}, want: []string{"mqtt.deniedQos0Publish"}},
		{name: "denied QoS 0 publish misspelt", file: "mqtt:\n  deniedQos0Publish: Drop\n", want: []string{"mqtt.deniedQos0Publish", `want "disconnect" or "drop"`}},
		{name: "console idle longer than session", env: map[string]string{"GATEHOUSE_CONSOLE_SESSION_TTL": "1h", "GATEHOUSE_CONSOLE_IDLE_TIMEOUT": "2h"}, want: []string{"console.idleTimeout"}},
		{name: "console session too short", file: "console:\n  sessionTTL: 10s\n", want: []string{"console.sessionTTL"}},
		{name: "no connect timeout", env: map[string]string{"GATEHOUSE_MQTT_CONNECT_TIMEOUT": "0s"}, want: []string{"mqtt.connectTimeout"}},
		{name: "body timeout below header timeout", file: "http:\n  readHeaderTimeout: 20s\n  readTimeout: 5s\n", want: []string{"http.readTimeout"}},
		{name: "negative topic limits", file: "mqtt:\n  maxTopicBytes: -1\n  maxTopicLevels: -1\n", want: []string{"mqtt.maxTopicBytes", "mqtt.maxTopicLevels"}},
		{name: "negative pending connections", set: [2]string{"limits.pendingConnectionsPerIP", "-1"}, want: []string{"limits.pendingConnectionsPerIP"}},
		{name: "retention too short", file: "events:\n  retention: 10m\n", want: []string{"events.retention"}},
		{name: "denial window too long", env: map[string]string{"GATEHOUSE_EVENTS_DENIAL_WINDOW": "2h"}, want: []string{"events.denialWindow"}},
		{name: "anonymous listener beyond loopback", file: "mqtt:\n  anonymousAddr: 0.0.0.0:1885\n  anonymousPolicy: interop\n", want: []string{"mqtt.anonymousAddr", "not a loopback", "anonymousAllowNonLoopback"}},
		{name: "anonymous listener on every interface", env: map[string]string{"GATEHOUSE_MQTT_ANONYMOUS_ADDR": ":1885", "GATEHOUSE_MQTT_ANONYMOUS_POLICY": "interop"}, want: []string{"mqtt.anonymousAddr", "not a loopback"}},
		{name: "anonymous listener without policy", set: [2]string{"mqtt.anonymousAddr", "127.0.0.1:1885"}, want: []string{"mqtt.anonymousPolicy"}},
		{name: "anonymous listener bad address", file: "mqtt:\n  anonymousAddr: localhost\n  anonymousPolicy: interop\n", want: []string{"mqtt.anonymousAddr"}},
		{name: "external issuer without audience, leeway too long", file: "oauth:\n  externalIssuers:\n    - issuer: https://idp\n      jwksURL: https://idp/jwks\n      leeway: 1h\n",
			want: []string{"oauth.externalIssuers[0]: audience", "oauth.externalIssuers[0]: leeway"}},
		{name: "bad limits", file: "limits:\n  tokenPerIP: lots\n  connectPerIP: 5\n  connectionsPerThing: -1\nmqtt:\n  maxPacketSize: 100\n  maxMessageSize: 200\n",
			want: []string{"limits.tokenPerIP", "limits.connectPerIP", "limits.connectionsPerThing", "mqtt.maxMessageSize"}},
		{name: "trusted proxy not a prefix", file: "http:\n  trustedProxies: [10.0.0.1]\n", want: []string{"line 2", `"10.0.0.1" is not a CIDR prefix`}},
		{name: "every bad prefix in the file at once", file: "limits:\n  exemptSources:\n    - 10.1.2.3\n    - 192.0.2.0/28\nauthorizer:\n  allowedSources: [nowhere]\n",
			want: []string{"line 3", `"10.1.2.3" is not a CIDR prefix`, "line 6", `"nowhere" is not a CIDR prefix`}},
		{name: "allowed source from env not a prefix", env: map[string]string{"GATEHOUSE_AUTHORIZER_ALLOWED_SOURCES": "127.0.0.0/8, 10.0.0.300/8"},
			want: []string{"GATEHOUSE_AUTHORIZER_ALLOWED_SOURCES", `"10.0.0.300/8" is not a CIDR prefix`}},
		{name: "exempt source flag not a prefix", set: [2]string{"limits.exemptSources", "192.0.2.1"}, want: []string{"limits.exemptSources", `"192.0.2.1" is not a CIDR prefix`}},
		{name: "cluster url and embedded", file: "cluster:\n  nats:\n    url: nats://n:4222\n    embedded:\n      listen: 127.0.0.1:6222\n      name: a\n", want: []string{"cluster.nats: set url"}},
		{name: "cluster bad url", set: [2]string{"cluster.nats.url", "http://n"}, want: []string{"cluster.nats.url"}},
		{name: "cluster routes without listen", file: "cluster:\n  nats:\n    embedded:\n      routes: [127.0.0.1:6222]\n", want: []string{"need listen"}},
		{name: "cluster embedded without name", set: [2]string{"cluster.nats.embedded.listen", "127.0.0.1:6222"}, want: []string{"cluster.nats.embedded.name"}},
		{name: "cluster routes open beyond loopback without password", file: "cluster:\n  nats:\n    embedded:\n      listen: 0.0.0.0:6222\n      name: a\n", want: []string{"cluster.nats.embedded.routePassword"}},
		{name: "cluster more replicas than servers", env: map[string]string{"GATEHOUSE_CLUSTER_NATS_EMBEDDED_LISTEN": "127.0.0.1:6222", "GATEHOUSE_CLUSTER_NATS_EMBEDDED_NAME": "a", "GATEHOUSE_CLUSTER_NATS_REPLICAS": "3"},
			want: []string{"cluster.nats.replicas: 3 is more"}},
		{name: "cluster replicas out of range", set: [2]string{"cluster.nats.replicas", "0"}, want: []string{"cluster.nats.replicas: 0"}},
		{name: "cluster embedded without routes", file: "cluster:\n  nats:\n    embedded:\n      listen: 127.0.0.1:6222\n      name: a\n", want: []string{"cluster.nats.embedded.routes"}},
		{name: "cluster bad route", file: "cluster:\n  nats:\n    embedded:\n      listen: 127.0.0.1:6222\n      name: a\n      routes: [nowhere]\n", want: []string{"cluster.nats.embedded.routes"}},
		{name: "exempt source is everyone", env: map[string]string{"GATEHOUSE_LIMITS_EXEMPT_SOURCES": "192.0.2.0/28, 0.0.0.0/0"}, want: []string{"limits.exemptSources", `"0.0.0.0/0" exempts every address`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			err := c.DecodeFile(strings.NewReader(tc.file))
			if err == nil {
				err = c.ApplyEnv(func(k string) string { return tc.env[k] })
			}
			if err == nil && tc.set[0] != "" {
				err = c.Set(tc.set[0], tc.set[1])
			}
			if err == nil {
				c.Finish()
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("got no error, want one mentioning %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestAnonymousListenerAccepted(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"off by default", ""},
		{"IPv4 loopback", "mqtt:\n  anonymousAddr: 127.0.0.1:1885\n  anonymousPolicy: interop\n"},
		{"IPv6 loopback", "mqtt:\n  anonymousAddr: \"[::1]:0\"\n  anonymousPolicy: interop\n"},
		{"localhost", "mqtt:\n  anonymousAddr: localhost:1885\n  anonymousPolicy: interop\n"},
		{"beyond loopback when allowed", "mqtt:\n  anonymousAddr: 0.0.0.0:1885\n  anonymousPolicy: interop\n  anonymousAllowNonLoopback: true\n"},
		{"embedded NATS cluster", "cluster:\n  nats:\n    replicas: 3\n    embedded:\n      listen: 0.0.0.0:6222\n      name: a\n      routePassword: s3cret\n      routes: [a:6222, b:6222, nats-route://c:6222]\n"},
		{"external NATS", "cluster:\n  nats:\n    url: nats://n1:4222, tls://n2:4222\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			if err := c.DecodeFile(strings.NewReader(tc.file)); err != nil {
				t.Fatal(err)
			}
			c.Finish()
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

// notSecret are the settings whose names suggest a secret but which hold
// none, with the reason.
var notSecret = map[string]string{
	"secrets.masterKeyFile":          "a path; the key is in the file",
	"secrets.previousMasterKeyFiles": "paths",
	"limits.tokenPerIP":              "a rate",
	"limits.tokenPerClient":          "a rate",
}

// looksSecret matches setting names that suggest a secret.
var looksSecret = regexp.MustCompile(`(?i)secret|passw|key|token|dsn|credential|private`)

// secretFields walks the Config type and returns the dotted paths of the
// fields tagged secret, failing for a string field whose name looks like a
// secret but which is neither tagged nor listed in notSecret.
func secretFields(t *testing.T, typ reflect.Type, prefix string) map[string]string {
	t.Helper()
	found := map[string]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		path := prefix + key
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if tag := f.Tag.Get("secret"); tag != "" {
			found[path] = tag
			continue
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
			for p, tag := range secretFields(t, ft, path+".") {
				found[p] = tag
			}
			continue
		}
		isText := ft.Kind() == reflect.String || ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String
		if isText && looksSecret.MatchString(f.Name) && notSecret[path] == "" {
			t.Errorf("setting %s looks like a secret: tag it secret:\"true\" (or secret:\"dsn\") or list it in notSecret", path)
		}
	}
	return found
}

// TestRedactedMasksEverySecret: `gatehouse config` (Config.Redacted) masks
// every secret setting: each is filled with sentinels, none of which may
// appear in the output, and the configuration itself keeps its values.
func TestRedactedMasksEverySecret(t *testing.T) {
	fields := secretFields(t, reflect.TypeFor[Config](), "")
	for _, want := range []string{"store.dsn", "oauth.hs256Secret", "authorizer.keys"} {
		if fields[want] == "" {
			t.Errorf("%s is not tagged secret; secret fields: %v", want, fields)
		}
	}
	sentinels := []string{"sentinel-user-pass", "sentinel-query-pass", "sentinel-ssl-pass", "sentinel-hs256-0123456789abcdef01234", "sentinel-adapter-key-1", "sentinel-adapter-key-2",
		"sentinel-nats-pass-1", "sentinel-nats-pass-2", "sentinel-route-pass", "sentinel-rabbitmq-pass"}
	c := Default()
	set := map[string]string{
		"store.dsn":                             "postgres://gh:sentinel-user-pass@db:5432/gh?sslmode=verify-full&password=sentinel-query-pass&sslpassword=sentinel-ssl-pass",
		"oauth.hs256Secret":                     "sentinel-hs256-0123456789abcdef01234",
		"authorizer.keys":                       "sentinel-adapter-key-1,sentinel-adapter-key-2",
		"cluster.nats.url":                      "nats://gh:sentinel-nats-pass-1@nats-1:4222,nats://gh:sentinel-nats-pass-2@nats-2:4222",
		"cluster.nats.embedded.routePassword":   "sentinel-route-pass",
		"authorizer.rabbitmqManagementPassword": "sentinel-rabbitmq-pass",
	}
	for path := range fields {
		val, ok := set[path]
		if !ok {
			t.Errorf("secret setting %s has no sentinel in this test: add one", path)
			continue
		}
		if err := c.Set(path, val); err != nil {
			t.Fatal(err)
		}
	}
	out := c.Redacted()
	for _, s := range sentinels {
		if strings.Contains(out, s) {
			t.Errorf("Redacted() shows %s:\n%s", s, out)
		}
	}
	for _, want := range []string{"db:5432/gh", "sslmode=verify-full", "keys:\n    - xxxxx\n    - xxxxx"} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted() lost %q:\n%s", want, out)
		}
	}
	if got := strings.Join(c.Authorizer.Keys, ","); got != set["authorizer.keys"] {
		t.Errorf("Redacted() changed the configuration's keys to %s", got)
	}
}

func TestEnvVars(t *testing.T) {
	got := strings.Join(EnvVars(), " ")
	for _, want := range []string{"GATEHOUSE_DATA_DIR", "GATEHOUSE_HTTP_EXTERNAL_URL", "GATEHOUSE_OAUTH_HS256_SECRET", "GATEHOUSE_STORE_DSN", "GATEHOUSE_HTTP_ADDR", "GATEHOUSE_OAUTH_ALGORITHM"} {
		if !strings.Contains(got, want) {
			t.Errorf("EnvVars() = %s, missing %s", got, want)
		}
	}
}

// TestLimitsOff: an unquoted YAML off turns a limit off (yaml.v3 keeps it
// a string) and validates.
func TestLimitsOff(t *testing.T) {
	c := Default()
	if err := c.DecodeFile(strings.NewReader("limits:\n  tokenPerIP: off\n  connectPerIP: 0\n")); err != nil {
		t.Fatal(err)
	}
	c.Finish()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Limits.TokenPerIP+" "+c.Limits.ConnectPerIP, "off 0"; got != want {
		t.Errorf("limits = %q, want %q", got, want)
	}
}
