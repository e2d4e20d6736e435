package thing

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTopicMatches(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "x/y", true},
		{"a/b", "a/c", false},
		{"+/b", "a/b", true},
	}
	for _, tc := range tests {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestStateFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	th, err := New(Config{ServerURL: "http://127.0.0.1:1", Name: "dev-1", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := th.SetClientSecret("s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := th.Key(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{fileState, fileClientSecret, fileKey} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", f, got)
		}
	}
	again, err := New(Config{ServerURL: "http://127.0.0.1:1", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Name(); got != "dev-1" || !again.HasClientSecret() {
		t.Errorf("reloaded name %q secret %v, want dev-1 and a secret", got, again.HasClientSecret())
	}
	if _, err := New(Config{ServerURL: "http://127.0.0.1:1", Name: "other", StateDir: dir}); err == nil {
		t.Error("New with another name for the same state dir succeeded")
	}
}

// TestDeviceFlowSlowDown checks the polling rules against a scripted
// server: authorization_pending keeps the interval, slow_down adds 5 s.
func TestDeviceFlowSlowDown(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for polling intervals")
	}
	var polls atomic.Int32
	var last atomic.Int64
	var gaps []time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth2/device/code":
			json.NewEncoder(w).Encode(map[string]any{"device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": "http://x/device", "expires_in": 60, "interval": 1})
		case "/oauth2/token":
			now := time.Now().UnixNano()
			if prev := last.Swap(now); prev != 0 {
				gaps = append(gaps, time.Duration(now-prev))
			}
			switch polls.Add(1) {
			case 1:
				w.WriteHeader(400)
				json.NewEncoder(w).Encode(map[string]string{"error": "slow_down"})
			case 2:
				w.WriteHeader(400)
				json.NewEncoder(w).Encode(map[string]string{"error": "authorization_pending"})
			default:
				json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "token_type": "Bearer"})
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	th, err := New(Config{ServerURL: srv.URL, Name: "tv", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	th.SetClientSecret("s")
	tok, err := th.DeviceFlow(context.Background(), func(context.Context, DeviceCode) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at" || tok.RefreshToken != "rt" {
		t.Errorf("tokens = %+v", tok)
	}
	if len(gaps) != 2 || gaps[0] < 6*time.Second || gaps[1] < 6*time.Second {
		t.Errorf("gaps between polls = %v, want two of at least 6s (1s + slow_down 5s)", gaps)
	}
	// Access denied is reported as such.
	polls.Store(0)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/device/code" {
			json.NewEncoder(w).Encode(map[string]any{"device_code": "dc", "user_code": "X", "interval": 1})
			return
		}
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]string{"error": "access_denied"})
	})
	if _, err := th.DeviceFlow(context.Background(), nil); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("DeviceFlow after denial = %v, want ErrAccessDenied", err)
	}
}

// TestPublicClient: a public client (AuthNone, as the CLI's device-login)
// sends its client id and no credential, needs no state directory, and
// writes nothing.
func TestPublicClient(t *testing.T) {
	var forms []url.Values
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.ParseForm()
			mu.Lock()
			forms = append(forms, r.PostForm)
			mu.Unlock()
		}
		if _, _, ok := r.BasicAuth(); ok {
			t.Errorf("%s sent HTTP Basic credentials", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth2/device/code":
			json.NewEncoder(w).Encode(map[string]any{"device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": "http://x/device", "expires_in": 60, "interval": 1})
		case "/oauth2/token":
			json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "token_type": "Bearer", "scope": "openid"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	if _, err := New(Config{ServerURL: srv.URL, Name: "gatehouse-cli"}); err == nil {
		t.Error("New without StateDir and credentials from Config succeeded")
	}
	if _, err := New(Config{ServerURL: srv.URL, Auth: AuthNone}); err == nil {
		t.Error("New public client without a Name succeeded")
	}
	c, err := New(Config{ServerURL: srv.URL, Name: "gatehouse-cli", Auth: AuthNone, Scopes: []string{"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.DeviceFlow(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at" || tok.RefreshToken != "rt" {
		t.Errorf("tokens = %+v", tok)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range forms {
		if got := f.Get("client_id"); got != "gatehouse-cli" {
			t.Errorf("client_id = %q, want gatehouse-cli", got)
		}
		for _, k := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
			if f.Has(k) {
				t.Errorf("a public client sent %s", k)
			}
		}
	}
	if len(forms) != 2 || forms[0].Get("scope") != "openid" || forms[1].Get("device_code") != "dc" {
		t.Errorf("requests = %v, want the device code request with scope openid, then one token poll", forms)
	}
	c2, err := New(Config{ServerURL: srv.URL, Name: "gatehouse-cli", Auth: AuthNone, Endpoint: EndpointThings})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "DeviceFlow only") {
		t.Errorf("Token of a public client at the things endpoint = %v, want a refusal", err)
	}
}
