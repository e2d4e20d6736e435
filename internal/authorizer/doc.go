// Package authorizer lets existing MQTT brokers ask Gatehouse who a device
// is and what it may do, so a fleet can keep (or scale out on) EMQX or
// RabbitMQ while Gatehouse stays the one place for identities and
// AWS-IoT-style policies. The AWS IoT custom-authorizer Lambda lives in
// cmd/gatehouse-aws-authorizer; it runs without a database.
//
// Every decision goes through the same code as the embedded broker:
// credentials through the authn package, policies through
// registry.ResolvePolicies and policy.Bound, with thing policy variables
// resolved only when the MQTT client id is the thing's name.
//
// # EMQX (v5 HTTP authentication and HTTP authorization)
//
//	POST /authorizer/emqx/authn  {"clientid","username","password","peerhost"}
//	  -> 200 {"result":"allow","is_superuser":false,"expire_at":<token exp>}
//	  -> 200 {"result":"deny"}   bad credentials, disabled thing, iot:Connect denied
//	  -> 200 {"result":"ignore"} no password at all (let the next authenticator try)
//	POST /authorizer/emqx/authz  {"clientid","username","topic","action","retain"}
//	  -> 200 {"result":"allow"|"deny"}
//
// GET with the same fields as query parameters works too. EMQX authz
// requests carry no password, so an allowed authn request leaves a session
// in the store (store.AdapterSession), keyed by client id and username and
// expiring with the credential (EMQX disconnects the client at
// expire_at): whichever replica EMQX's authz calls reach, and after a
// restart, it finds the session there (and keeps what it read for a
// second: a publish per call would otherwise be a query), and on every
// call checks that the
// token is not revoked (within 2 s of a revocation on another replica)
// and the thing still enabled. Authz answers deny for a client without a
// session, unless Config.ResolveByThingName, which, on a miss, trusts that
// EMQX only asks for clients it authenticated and evaluates the thing's
// policies when the client id is the username and names an enabled thing
// (policies attached to token scopes are then not applied).
// Publish checks iot:Publish (and iot:RetainPublish when "retain" is
// true); subscribe checks iot:Subscribe on the filter and, for a literal
// filter, iot:Receive. EMQX does not ask per delivery, so iot:Receive
// cannot be enforced for wildcard subscriptions.
//
// # RabbitMQ (rabbitmq_auth_backend_http with rabbitmq_mqtt)
//
//	/authorizer/rabbitmq/user      username, password [, client_id, vhost] -> "allow" | "deny"
//	/authorizer/rabbitmq/vhost     username, vhost, ip                     -> "allow" | "deny"
//	/authorizer/rabbitmq/resource  username, vhost, resource, name, permission
//	/authorizer/rabbitmq/topic     username, vhost, resource, name, permission, routing_key
//	                               [, variable_map.client_id | client_id]
//
// Answers are text/plain. Parameters come as a form body (http_method =
// post, recommended) or as a query (get). The MQTT plugin maps MQTT topics
// to AMQP routing keys ('/' <-> '.', '+' <-> '*'); the topic endpoint maps
// them back and checks iot:Publish for write and iot:Subscribe (plus
// iot:Receive for literal filters) for read, which RabbitMQ asks at
// SUBSCRIBE. Resources: only the MQTT exchange (amq.topic by default) for
// read/write and the plugin's own queues (mqtt-subscription-<client id>qos<n>,
// mqtt-will-<client id>) are allowed, on the configured vhosts.
// RabbitMQ 3.10.8 (tested here) sends client_id to /user, /vhost and
// /resource and variable_map.client_id to /topic, so iot:Connect is checked
// at /user and ${iot:ClientId} resolves; for a broker that sends no client
// id, iot:Connect is skipped and thing variables resolve only when the
// username is the thing's name. A /user success leaves a session in the
// store (keyed by username, and by client id when sent) that the later
// checks need, on any replica; each check also rechecks revocation and the
// thing's state. RabbitMQ asks topic permissions only at publish and
// subscribe time (and caches the last few answers per connection), and its
// HTTP backend cannot end a connection: with Config.RabbitMQManagement
// set, Run closes it through the management API when its token is revoked,
// its thing or person disabled or deleted, or its credential expires
// (within about a second, on whichever replica deletes the session from
// the store first). Without it, a connection outlives its credential until
// the client reconnects. Policy changes apply only to later checks.
// Set mqtt.allow_anonymous = false, or anonymous MQTT clients
// log in as RabbitMQ's default user through the next backend.
//
// A non-200 answer (500 for a store failure, 503 when MaxSessions
// unexpired sessions exist) is "ignore" to EMQX (the next authenticator in its chain decides)
// and an error to RabbitMQ (the login tries the next backend; an
// authorization check fails).
//
// # Protection
//
// Every request must carry the shared secret in the X-Gatehouse-Adapter-Key
// header (EMQX: the authenticator's "headers") or, for RabbitMQ, which
// cannot send headers, in the adapter_key query parameter of the configured
// URLs (use http_method = post so the query survives), or come from an
// address in Config.AllowedSources. With neither configured, every request
// is refused. A refusal is a 200 answer the broker takes as one
// ({"result":"deny"} for EMQX, which takes a 4xx for "ignore" and then, with
// its default authorization.no_match = allow, allows; "deny" for RabbitMQ).
package authorizer
