// Package e2e drives the built gatehouse binary as a user would: it starts
// `gatehouse serve`, talks to it with plain HTTP and with the binary's own
// client commands, and stops it with a signal. It exists to catch what unit
// tests of single packages cannot: wiring, flags, the start-up banner,
// restarts and shutdown.
package e2e
