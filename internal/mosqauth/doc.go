// Package mosqauth is Gatehouse's authentication and authorization for a
// Mosquitto broker, in-process: the pure-Go half of the Mosquitto plugin
// (cmd/gatehouse-mosquitto holds the cgo glue). It opens the server's
// store read-only and builds the same authn, registry and policy code the
// embedded broker uses; Plugin authenticates a CONNECT, decides every ACL
// check against the client's bound policy, follows the event log as a
// replica does, and queues the client ids Mosquitto must disconnect, which
// the glue kicks on Mosquitto's thread at each tick.
package mosqauth
