//go:build cgo && mosquitto

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/x509.h>
#include "shim.h"
#include "_cgo_export.h"

static mosquitto_plugin_id_t *gh_id;
static void *gh_userdata;

// gh_tick_wanted is set by gh_want_tick (any thread) and read and
// cleared on Mosquitto's thread; gh_last_tick is the CLOCK_MONOTONIC
// second of the last tick handed to Go (Mosquitto's thread only).
static int gh_tick_wanted;
static time_t gh_last_tick;

void gh_want_tick(void)
{
	__atomic_store_n(&gh_tick_wanted, 1, __ATOMIC_RELEASE);
}

// gh_now is CLOCK_REALTIME_COARSE in nanoseconds: no hardware clock read,
// a few milliseconds of resolution, enough for expiries and pacing.
static int64_t gh_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void gh_log(int level, const char *msg)
{
	mosquitto_log_printf(level, "gatehouse: %s", msg);
}

int gh_cert_der(struct mosquitto *client, unsigned char *buf, int cap)
{
	X509 *cert = mosquitto_client_certificate(client);
	if(cert == NULL){
		return 0;
	}
	int n = i2d_X509(cert, NULL);
	if(n > 0 && n <= cap){
		unsigned char *p = buf;
		n = i2d_X509(cert, &p);
	}
	X509_free(cert);
	return n < 0 ? 0 : n;
}

// The ACL cache: Go's recent answers to ACL checks, so that a delivery on a
// topic the client was already checked for is decided without crossing
// into Go (the crossing costs more than the decision). Direct-mapped,
// GH_ACL_SLOTS entries; an entry answers only a check of the same client,
// access, retain flag and topic (compared in full), decided at the current
// generation, before the session's credential expires. Go bumps the
// generation (gh_acl_invalidate, any thread) whenever a live session's
// answers change (re-bound or ended after a change read from the log).
// A client's own CONNECT and disconnect bump only its slot's epoch
// (gh_acl_epochs, by client address): its answers, and those of a later
// connection at the same address, start afresh, and the other clients'
// stay cached through a CONNECT storm. The tables are Mosquitto's
// thread's alone.
#define GH_ACL_SLOTS 4096
#define GH_ACL_TOPIC_MAX 128
#define GH_ACL_EPOCHS 1024

struct gh_acl_entry {
	struct mosquitto *client;
	uint64_t gen;
	uint32_t epoch;
	int64_t until;
	uint32_t hash;
	uint16_t len;
	uint8_t access;
	uint8_t retain;
	int result;
	char topic[GH_ACL_TOPIC_MAX];
};

static struct gh_acl_entry *gh_acl;
// gh_acl_gen starts at 1: an empty entry (gen 0) never matches.
static uint64_t gh_acl_gen = 1;

static uint32_t gh_acl_epochs[GH_ACL_EPOCHS];

void gh_acl_invalidate(void)
{
	__atomic_add_fetch(&gh_acl_gen, 1, __ATOMIC_ACQ_REL);
}

static uint32_t *gh_acl_epoch(const struct mosquitto *client)
{
	uint64_t h = (uint64_t)(uintptr_t)client * 0x9E3779B97F4A7C15ULL;
	return &gh_acl_epochs[(h >> 32) & (GH_ACL_EPOCHS - 1)];
}

// gh_acl_forget drops the cached answers of client (and of the few others
// sharing its epoch slot).
static void gh_acl_forget(const struct mosquitto *client)
{
	(*gh_acl_epoch(client))++;
}

// gh_acl_hash is FNV-1a over the topic, mixed with the client and access.
static uint32_t gh_acl_hash(const struct mosquitto *client, const char *topic, size_t len, int access, bool retain)
{
	uint64_t h = 14695981039346656037ULL;
	for(size_t i = 0; i < len; i++){
		h = (h ^ (unsigned char)topic[i]) * 1099511628211ULL;
	}
	h ^= (uint64_t)(uintptr_t)client * 0x9E3779B97F4A7C15ULL;
	h ^= ((uint64_t)access << 1 | (retain ? 1 : 0)) * 0xC2B2AE3D27D4EB4FULL;
	return (uint32_t)(h ^ (h >> 32));
}

static int gh_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	(void)event;
	gh_acl_forget(ed->client);
	return goBasicAuth((uintptr_t)userdata, ed->client, ed->username, ed->password,
			ed->password != NULL ? strlen(ed->password) : 0, gh_now());
}

static int gh_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	(void)event;
	size_t len = strlen(ed->topic);
	int64_t now = gh_now();
	// Read before Go decides: an invalidation meanwhile leaves the entry stale.
	uint64_t gen = __atomic_load_n(&gh_acl_gen, __ATOMIC_ACQUIRE);
	uint32_t epoch = *gh_acl_epoch(ed->client);
	struct gh_acl_entry *e = NULL;
	uint32_t h = 0;
	if(gh_acl != NULL && len <= GH_ACL_TOPIC_MAX){
		h = gh_acl_hash(ed->client, ed->topic, len, ed->access, ed->retain);
		e = &gh_acl[h & (GH_ACL_SLOTS - 1)];
		if(e->gen == gen && e->epoch == epoch && e->client == ed->client && e->hash == h && e->len == len
				&& e->access == ed->access && e->retain == (ed->retain ? 1 : 0)
				&& (e->until == 0 || now < e->until) && memcmp(e->topic, ed->topic, len) == 0){
			return e->result;
		}
	}
	int64_t until = 0;
	int rc = goACLCheck((uintptr_t)userdata, ed->client, (char *)ed->topic, len, ed->access, ed->retain, now, &until);
	if(e != NULL){
		e->client = ed->client;
		e->gen = gen;
		e->epoch = epoch;
		e->until = until;
		e->hash = h;
		e->len = (uint16_t)len;
		e->access = (uint8_t)ed->access;
		e->retain = ed->retain ? 1 : 0;
		e->result = rc;
		memcpy(e->topic, ed->topic, len);
	}
	return rc;
}

// gh_tick hands Mosquitto's tick to Go only when Go asked for one (kicks
// are queued) or a second has passed since the last (expiries, dropping
// disconnected sessions). Mosquitto ticks on every pass of its loop, two or
// three times per CONNECT under load: each would otherwise cross into Go
// (Mosquitto 2.0 leaves the tick's time fields empty, hence the clock).
static int gh_tick(int event, void *event_data, void *userdata)
{
	struct timespec now;
	(void)event;
	(void)event_data;
	int wanted = __atomic_exchange_n(&gh_tick_wanted, 0, __ATOMIC_ACQ_REL);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if(!wanted && now.tv_sec == gh_last_tick){
		return MOSQ_ERR_SUCCESS;
	}
	gh_last_tick = now.tv_sec;
	goTick((uintptr_t)userdata, gh_now());
	return MOSQ_ERR_SUCCESS;
}

static int gh_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	(void)event;
	gh_acl_forget(ed->client);
	goDisconnect((uintptr_t)userdata, ed->client, gh_now());
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5){
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	uintptr_t h = goInit(options, option_count);
	if(h == 0){
		return MOSQ_ERR_UNKNOWN;
	}
	// Without it (no memory), every check goes to Go.
	gh_acl = calloc(GH_ACL_SLOTS, sizeof(*gh_acl));
	gh_id = identifier;
	gh_userdata = (void *)h;
	*userdata = gh_userdata;
	if(mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, gh_basic_auth, NULL, gh_userdata)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, gh_acl_check, NULL, gh_userdata)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_TICK, gh_tick, NULL, gh_userdata)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, gh_disconnect, NULL, gh_userdata)){
		gh_log(MOSQ_LOG_ERR, "could not register the plugin's callbacks");
		return MOSQ_ERR_UNKNOWN;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	if(gh_id != NULL){
		mosquitto_callback_unregister(gh_id, MOSQ_EVT_BASIC_AUTH, gh_basic_auth, NULL);
		mosquitto_callback_unregister(gh_id, MOSQ_EVT_ACL_CHECK, gh_acl_check, NULL);
		mosquitto_callback_unregister(gh_id, MOSQ_EVT_TICK, gh_tick, NULL);
		mosquitto_callback_unregister(gh_id, MOSQ_EVT_DISCONNECT, gh_disconnect, NULL);
	}
	if(userdata != NULL){
		goCleanup((uintptr_t)userdata);
	}
	free(gh_acl);
	gh_acl = NULL;
	return MOSQ_ERR_SUCCESS;
}
