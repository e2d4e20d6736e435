// Command gatehouse-mosquitto is Gatehouse as a Mosquitto 2.x plugin
// (plugin API version 5): Mosquitto loads it with `plugin
// /path/gatehouse-mosquitto.so` and it authenticates every CONNECT and
// decides every publish, subscribe and delivery with Gatehouse's own code
// (internal/mosqauth) on the server's store, read-only.
//
// It is a C shared library built with cgo against Mosquitto's headers
// (Debian: mosquitto-dev, libssl-dev):
//
//	make mosquitto-plugin   # bin/gatehouse-mosquitto.so
//
// which is go build -buildmode=c-shared -tags mosquitto. Without the
// mosquitto tag (or without cgo) this package builds as a small program
// that only says so, so go build ./... and go vet ./... need neither cgo
// nor Mosquitto's headers. Configuration and what is supported:
// docs/brokers.md.
package main
