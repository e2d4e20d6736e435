package broker

import (
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/gatehouse-iot/gatehouse/internal/live"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// Kinds of keys the session index knows besides store.TargetThing and
// store.TargetUser.
const (
	keyCredential  = "credential"  // a token's jti or a certificate's fingerprint (Identity.CredentialID)
	keyCertificate = "certificate" // the certificate a session stands on (live.CertificateOf)
)

// sessionIndex finds sessions by what ends them at once - their credential,
// their certificate, their thing, their person - so that a revocation or a
// disable touches only its own sessions, however many others are live.
type sessionIndex struct {
	mu sync.Mutex
	m  map[live.Key][]*session
}

// indexKeys are the keys a session is found by ("" names are skipped).
func indexKeys(s *session) [4]live.Key {
	return [4]live.Key{{Kind: keyCredential, Name: s.id.CredentialID}, {Kind: keyCertificate, Name: live.CertificateOf(s.id)},
		{Kind: store.TargetThing, Name: s.id.ThingName}, {Kind: store.TargetUser, Name: s.id.UserName}}
}

func (x *sessionIndex) add(s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[live.Key][]*session{}
	}
	for _, k := range indexKeys(s) {
		if k.Name != "" {
			x.m[k] = append(x.m[k], s)
		}
	}
}

func (x *sessionIndex) remove(s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, k := range indexKeys(s) {
		if k.Name == "" {
			continue
		}
		if l := slices.DeleteFunc(x.m[k], func(o *session) bool { return o == s }); len(l) > 0 {
			x.m[k] = l
		} else {
			delete(x.m, k)
		}
	}
}

// find returns the sessions found by k.
func (x *sessionIndex) find(k live.Key) []*session {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.m[k])
}

// remember makes s the session of cl.
func (h *hook) remember(cl *mqtt.Client, s *session) {
	h.sessions.Store(cl, s)
	h.index.add(s)
}

// forget drops cl's session.
func (h *hook) forget(cl *mqtt.Client) {
	if v, ok := h.sessions.LoadAndDelete(cl); ok {
		h.index.remove(v.(*session))
	}
}
