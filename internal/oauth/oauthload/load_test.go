package oauthload_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/oauth/oauthload"
)

// TestRun runs both clients against a token endpoint that checks the
// request and answers with a fixed length, chunked, or an error.
func TestRun(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		id, secret, ok := r.BasicAuth()
		// RFC 6749 section 2.3.1: both are form-encoded first.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		switch {
		case r.Method != "POST" || string(b) != "grant_type=client_credentials&scope=publish" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
			http.Error(w, "bad request", http.StatusBadRequest)
		case !ok || id != "thing 1" || secret != "s&cret":
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		case r.URL.Path == "/chunked":
			io.WriteString(w, `{"access_token":"`)
			w.(http.Flusher).Flush() // forces chunked encoding
			io.WriteString(w, strings.Repeat("a", 5000)+`"}`)
		default:
			io.WriteString(w, `{"access_token":"abc","token_type":"Bearer"}`)
		}
	}))
	defer hs.Close()
	tests := []struct {
		name       string
		path       string
		secret     string
		raw        bool
		wantErrors bool
	}{
		{"net/http", "/token", "s&cret", false, false},
		{"raw", "/token", "s&cret", true, false},
		{"raw, chunked", "/chunked", "s&cret", true, false},
		{"raw, refused", "/token", "wrong", true, true},
		{"net/http, refused", "/token", "wrong", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := oauthload.Run(t.Context(), oauthload.Config{TokenURL: hs.URL + tc.path, ClientID: "thing 1", ClientSecret: tc.secret,
				Scope: "publish", Concurrency: 2, Duration: 200 * time.Millisecond, Raw: tc.raw})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 {
				t.Fatalf("no requests: %s", res)
			}
			if got := res.Errors == res.Requests; got != tc.wantErrors || (!tc.wantErrors && res.Errors != 0) {
				t.Errorf("result %s; want every request to fail: %v", res, tc.wantErrors)
			}
		})
	}
	if _, err := oauthload.Run(t.Context(), oauthload.Config{TokenURL: "https://example.com/token", ClientID: "x", Raw: true}); err == nil {
		t.Error("raw mode accepted an https URL")
	}
}
