package thing

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
