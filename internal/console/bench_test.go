package console_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/console"
)

// BenchmarkAPIRequest compares GET /api/v1/things/{name} authenticated by
// a bearer API token and by a console session cookie (a session lookup and
// the user's current roles per request).
func BenchmarkAPIRequest(b *testing.B) {
	f := newFixture(b, options{})
	if r := f.bearer("POST", "/api/v1/things", `{"name":"pump-1"}`); r.status != http.StatusCreated {
		b.Fatal(r.raw)
	}
	s := f.login("ada", adminPass)
	for _, tc := range []struct {
		name string
		set  func(*http.Request)
	}{
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+f.token) }},
		{"session", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: console.CookieName, Value: s.cookie}) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := f.srv.Client()
			for b.Loop() {
				req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/things/pump-1", nil)
				tc.set(req)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
