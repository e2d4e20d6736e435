// The C half of the Gatehouse Mosquitto plugin: the plugin entry points
// Mosquitto looks up, and the callbacks it registers, which hand each
// event to the exported Go functions in plugin.go.
#ifndef GATEHOUSE_MOSQUITTO_SHIM_H
#define GATEHOUSE_MOSQUITTO_SHIM_H

#include <stdint.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

// gh_log logs msg through Mosquitto's log (only on Mosquitto's thread).
void gh_log(int level, const char *msg);
// gh_cert_der writes the DER of the client's TLS certificate into buf
// (cap bytes) and returns its length, 0 when the client has none, or the
// length needed when cap is too small.
int gh_cert_der(struct mosquitto *client, unsigned char *buf, int cap);

// gh_want_tick makes the next Mosquitto tick reach Go (goTick); any thread
// may call it.
void gh_want_tick(void);
// gh_acl_invalidate drops every cached ACL answer (shim.c); any thread
// may call it.
void gh_acl_invalidate(void);

#endif
