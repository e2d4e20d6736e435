// Package broker is Gatehouse's embedded MQTT broker: mochi-mqtt with one
// authentication hook and one authorization hook that ask Gatehouse, on
// every CONNECT, SUBSCRIBE, PUBLISH (wills and retained messages included)
// and every delivery, what AWS-IoT-style policy allows.
//
// It exists to close the holes mochi leaves open when used naively: its
// bundled auth hooks are never installed (their ACL matches topic prefixes
// and hooks are OR-ed), wills and resumed sessions are checked here, HTTPS
// publishes are authorized before they are injected, and live connections
// follow changes (token expiry, disabled things, new policy versions)
// within seconds. Decisions use a policy set compiled and bound once per
// connection, so a publish check costs a map lookup and a pattern match.
//
// $gatehouse/, $SYS/ and the event mirror's prefix are reserved to the
// server whatever a policy says (reserved.go): features open single topics
// there to the sessions they define them for (ReservedGrant). Wills are
// authorized when they are sent, delayed ones included (will.go).
//
// Config.AnonymousAddr adds a listener that skips authentication, for
// running third-party MQTT conformance and interoperability suites (which
// cannot present credentials) against the broker; see docs/interop.md. It
// is never on by default. Its clients are the principal "anonymous", bound
// to the fixed Config.AnonymousPolicy, and every authorization decision
// (connect, will, publish, retained publish, subscribe, delivery) still goes
// through that policy exactly as for authenticated clients.
package broker
