//go:build cgo && mosquitto

package main

/*
#cgo LDFLAGS: -lcrypto
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/cgo"
	"strings"
	"time"
	"unsafe"

	"github.com/gatehouse-iot/gatehouse/internal/mosqauth"
)

// instance is one loaded plugin, reached from C through a cgo.Handle that
// Mosquitto passes back as the callbacks' userdata.
type instance struct {
	svc    *mosqauth.Services
	p      *mosqauth.Plugin
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	// lastYield is when a callback last yielded (pace), in the C half's
	// clock (gh_now: Unix nanoseconds, coarse); only Mosquitto's thread
	// reads or writes it.
	lastYield int64
}

// yieldEvery paces the callbacks' yields to the Go scheduler (pace).
const yieldEvery = int64(5 * time.Millisecond)

// pace yields Mosquitto's thread to the Go scheduler at most every
// yieldEvery while callbacks keep coming; now is gh_now. Between callbacks
// the thread keeps its Go P (in a "system call" as far as Go knows) and
// that P never schedules anything, so the runtime's monitor (sysmon) takes
// it for a goroutine running for over 10 ms: it retook the P at nearly
// every callback of a busy broker and then polled every 20 µs, 10-15% of
// the broker's CPU in a CONNECT storm (docs/benchmarks.md, 2026-12-07).
// Yielding runs the scheduler on that P, which is all sysmon looks at; it
// must come more often than every 10 ms (with the coarse clock's 4 ms
// steps here, every 5-8 ms). A yield hands the P over and back (two
// futex wake-ups): 2.3% of a CONNECT storm, against sysmon's 10-15%.
func (inst *instance) pace(now int64) {
	// (A clock set back yields at once rather than never.)
	if d := now - inst.lastYield; d >= yieldEvery || d < 0 {
		inst.lastYield = now
		runtime.Gosched()
	}
}

// maxCertDER bounds a client certificate copied out of OpenSSL.
const maxCertDER = 16 << 10

//export goInit
func goInit(opts *C.struct_mosquitto_opt, n C.int) C.uintptr_t {
	m := map[string]string{}
	for _, o := range unsafe.Slice(opts, int(n)) {
		m[C.GoString(o.key)] = C.GoString(o.value)
	}
	inst, err := start(m)
	if err != nil {
		msg := C.CString("refusing to start: " + err.Error())
		C.gh_log(C.MOSQ_LOG_ERR, msg)
		C.free(unsafe.Pointer(msg))
		return 0
	}
	msg := C.CString("plugin ready: authentication and authorization by Gatehouse")
	C.gh_log(C.MOSQ_LOG_NOTICE, msg)
	C.free(unsafe.Pointer(msg))
	return C.uintptr_t(cgo.NewHandle(inst))
}

// start loads the configuration, opens the services and starts following
// the event log.
func start(opts map[string]string) (*instance, error) {
	cfg, err := mosqauth.LoadConfig(opts)
	if err != nil {
		return nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("plugin_opt_log.level: %w", err)
	}
	// Logs go to standard error, not Mosquitto's log: the follower logs
	// from its own goroutine, and Mosquitto's logging is not thread-safe.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "gatehouse-mosquitto")
	// Libraries that log through the process default (zitadel/oidc, as
	// the plugin opens the authorization server's keys) follow the
	// configured handler and level, as under `gatehouse serve`.
	slog.SetDefault(log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := mosqauth.Open(ctx, cfg, log, func() { C.gh_want_tick() }, func() { C.gh_acl_invalidate() })
	if err != nil {
		return nil, err
	}
	follow, err := svc.Plugin.Follower(ctx)
	if err != nil {
		svc.Close()
		return nil, err
	}
	fctx, fcancel := context.WithCancel(context.Background())
	inst := &instance{svc: svc, p: svc.Plugin, log: log, cancel: fcancel, done: make(chan struct{})}
	go func() {
		defer close(inst.done)
		follow(fctx)
	}()
	return inst, nil
}

func get(h C.uintptr_t) *instance { return cgo.Handle(h).Value().(*instance) }

//export goCleanup
func goCleanup(h C.uintptr_t) {
	inst := get(h)
	inst.cancel()
	<-inst.done
	inst.svc.Close()
	cgo.Handle(h).Delete()
}

//export goBasicAuth
func goBasicAuth(h C.uintptr_t, client *C.struct_mosquitto, username, password *C.char, passwordLen C.size_t, now C.int64_t) C.int {
	inst := get(h)
	defer inst.pace(int64(now))
	c := mosqauth.Conn{ClientID: C.GoString(C.mosquitto_client_id(client)), Username: C.GoString(username),
		Address: C.GoString(C.mosquitto_client_address(client))}
	if password != nil {
		c.Password = C.GoBytes(unsafe.Pointer(password), C.int(passwordLen))
	}
	if cert, err := peerCertificate(client); err != nil {
		inst.log.Info("mqtt connect refused: client certificate", "client", c.ClientID, "err", err)
		return C.MOSQ_ERR_AUTH
	} else if cert != nil {
		c.PeerCertificates = []*x509.Certificate{cert}
	}
	if err := inst.p.Connect(context.Background(), mosqauth.Client(uintptr(unsafe.Pointer(client))), c); err != nil {
		// Refused whatever the reason: a store failure must not let a
		// client in.
		inst.log.Info("mqtt connect refused", "client", c.ClientID, "username", logName(c.Username), "err", err)
		return C.MOSQ_ERR_AUTH
	}
	return C.MOSQ_ERR_SUCCESS
}

// peerCertificate is the client's TLS certificate, or nil. Most clients
// have none: asking for the length first allocates nothing for them.
func peerCertificate(client *C.struct_mosquitto) (*x509.Certificate, error) {
	n := int(C.gh_cert_der(client, nil, 0))
	if n == 0 {
		return nil, nil
	}
	if n > maxCertDER {
		return nil, fmt.Errorf("certificate of %d bytes is over %d", n, maxCertDER)
	}
	buf := (*C.uchar)(C.malloc(C.size_t(n)))
	defer C.free(unsafe.Pointer(buf))
	if m := int(C.gh_cert_der(client, buf, C.int(n))); m != n {
		return nil, fmt.Errorf("certificate of %d bytes, then %d", n, m)
	}
	return x509.ParseCertificate(C.GoBytes(unsafe.Pointer(buf), C.int(n)))
}

// logName is a username fit for logs: a custom-authorizer username
// carries the token after "?".
func logName(u string) string {
	name, _, _ := strings.Cut(u, "?")
	if len(name) > 128 {
		name = name[:128] + "..."
	}
	return name
}

//export goACLCheck
func goACLCheck(h C.uintptr_t, client *C.struct_mosquitto, topic *C.char, topicLen C.size_t, access C.int, retain C.bool, now C.int64_t, until *C.int64_t) C.int {
	// The topic is read in place, not copied: Check keeps nothing of it
	// past the call, and Mosquitto keeps it alive until the call returns.
	// Every delivery is checked, so this is the plugin's hot path.
	// (The C half measures it: a call back into C from here costs more.)
	t := unsafe.String((*byte)(unsafe.Pointer(topic)), int(topicLen))
	inst := get(h)
	ok, exp := inst.p.CheckAt(mosqauth.Client(uintptr(unsafe.Pointer(client))), mosqauth.Access(access), t, bool(retain), time.Unix(0, int64(now)))
	// How long the C half may reuse the answer (shim.c, the ACL cache).
	*until = 0
	if !exp.IsZero() {
		*until = C.int64_t(exp.UnixNano())
	}
	inst.pace(int64(now))
	if ok {
		return C.MOSQ_ERR_SUCCESS
	}
	return C.MOSQ_ERR_ACL_DENIED
}

//export goTick
func goTick(h C.uintptr_t, now C.int64_t) {
	inst := get(h)
	defer inst.pace(int64(now))
	for _, id := range inst.p.Tick() {
		cid := C.CString(id)
		C.mosquitto_kick_client_by_clientid(cid, false)
		C.free(unsafe.Pointer(cid))
	}
}

//export goDisconnect
func goDisconnect(h C.uintptr_t, client *C.struct_mosquitto, now C.int64_t) {
	inst := get(h)
	inst.p.Disconnected(mosqauth.Client(uintptr(unsafe.Pointer(client))))
	inst.pace(int64(now))
}

func main() {}
