package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

func testAdapterSessions(t *testing.T, s *store.Store) {
	ctx := t.Context()
	sessions := []*store.AdapterSession{
		{Broker: "emqx", ClientID: "s-1", Username: "s-1", CredentialID: "jti-1", ThingName: "s-1", Identity: []byte(`{"a":1}`), SourceIP: "10.0.0.1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		{Broker: "rabbitmq", ClientID: "", Username: "s-1", CredentialID: "jti-1", ThingName: "s-1", Identity: []byte(`{}`), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		{Broker: "rabbitmq", ClientID: "c-2", Username: "s-2", CredentialID: "jti-2", ThingName: "s-2", Identity: []byte(`{}`), CreatedAt: t0, ExpiresAt: t0.Add(-time.Minute)},
		{Broker: "rabbitmq", ClientID: "c-3", Username: "alice", CredentialID: "jti-3", UserName: "alice", Identity: []byte(`{}`), CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)},
	}
	for _, as := range sessions {
		if err := s.PutAdapterSession(ctx, as); err != nil {
			t.Fatalf("PutAdapterSession(%s/%s): %v", as.Broker, as.ClientID, err)
		}
	}
	got, err := s.AdapterSession(ctx, "emqx", "s-1", "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.CredentialID != "jti-1" || string(got.Identity) != `{"a":1}` || got.SourceIP != "10.0.0.1" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("AdapterSession = %+v", got)
	}
	// A new authentication of the same connection replaces the session.
	again := *sessions[0]
	again.CredentialID, again.ExpiresAt = "jti-9", t0.Add(3*time.Hour)
	if err := s.PutAdapterSession(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.AdapterSession(ctx, "emqx", "s-1", "s-1"); got == nil || got.CredentialID != "jti-9" || !got.ExpiresAt.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("after replace: %+v, want jti-9", got)
	}
	if _, err := s.AdapterSession(ctx, "rabbitmq", "s-1", "s-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown session: err = %v, want ErrNotFound", err)
	}
	if n, err := s.CountAdapterSessions(ctx, t0); err != nil || n != 3 {
		t.Errorf("CountAdapterSessions = %d, %v; want 3", n, err)
	}

	names := func(l []store.AdapterSession) []string {
		var out []string
		for _, a := range l {
			out = append(out, a.ClientID+"/"+a.Username)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.AdapterSessionFilter
		want []string
	}{
		{"expired", store.AdapterSessionFilter{Broker: "rabbitmq", ExpiredBy: t0}, []string{"c-2/s-2"}},
		{"by credential", store.AdapterSessionFilter{Broker: "rabbitmq", CredentialIDs: []string{"jti-1", "jti-3"}}, []string{"/s-1", "c-3/alice"}},
		{"by thing or user", store.AdapterSessionFilter{Broker: "rabbitmq", ThingNames: []string{"s-2"}, UserNames: []string{"alice"}}, []string{"c-2/s-2", "c-3/alice"}},
		{"other broker", store.AdapterSessionFilter{Broker: "emqx", CredentialIDs: []string{"jti-1"}}, nil},
		{"nothing asked", store.AdapterSessionFilter{Broker: "rabbitmq"}, nil},
		{"limit", store.AdapterSessionFilter{Broker: "rabbitmq", ThingNames: []string{"s-1", "s-2"}, Limit: 1}, []string{"c-2/s-2"}},
	} {
		l, err := s.AdapterSessions(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := names(l); !slices.Equal(got, tc.want) {
			t.Errorf("AdapterSessions %s = %v, want %v", tc.name, got, tc.want)
		}
	}

	if err := s.DeleteAdapterSession(ctx, "rabbitmq", "c-3", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAdapterSession(ctx, "rabbitmq", "c-3", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	if n, err := s.PurgeAdapterSessions(ctx, "rabbitmq", t0); err != nil || n != 1 {
		t.Errorf("PurgeAdapterSessions = %d, %v; want 1", n, err)
	}
	if _, err := s.AdapterSession(ctx, "rabbitmq", "c-2", "s-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purged session: err = %v, want ErrNotFound", err)
	}
}
