package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// TestOAuthMetadataMTLS reads the binary's authorization server metadata
// as a client library would, on the plain listener and on the mutual-TLS
// one: the mtls_endpoint_aliases point at the listener that really takes
// tls_client_auth (RFC 8705 section 5), certificate-bound tokens are
// advertised, authorization responses carry iss (RFC 9207), and both
// listeners serve the same document.
func TestOAuthMetadataMTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	if s.HTTPS == "" {
		t.Fatalf("banner lacks https:\n%s", s.Stdout())
	}
	get := func(c *http.Client, u string) []byte {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", u, resp.StatusCode, b)
		}
		return b
	}
	plain := get(http.DefaultClient, s.URL+"/.well-known/oauth-authorization-server")
	var doc struct {
		Methods     []string          `json:"token_endpoint_auth_methods_supported"`
		Aliases     map[string]string `json:"mtls_endpoint_aliases"`
		Bound       bool              `json:"tls_client_certificate_bound_access_tokens"`
		IssParamter bool              `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.Unmarshal(plain, &doc); err != nil {
		t.Fatal(err)
	}
	base := "https://" + s.HTTPS
	want := map[string]string{"token_endpoint": base + "/oauth2/token", "introspection_endpoint": base + "/oauth2/introspect",
		"revocation_endpoint": base + "/oauth2/revoke", "device_authorization_endpoint": base + "/oauth2/device/code"}
	if !reflect.DeepEqual(doc.Aliases, want) {
		t.Errorf("mtls_endpoint_aliases = %v, want %v", doc.Aliases, want)
	}
	if !doc.Bound || !doc.IssParamter {
		t.Errorf("tls_client_certificate_bound_access_tokens = %v, authorization_response_iss_parameter_supported = %v; want both true", doc.Bound, doc.IssParamter)
	}
	has := false
	for _, m := range doc.Methods {
		has = has || m == "tls_client_auth"
	}
	if !has {
		t.Errorf("token_endpoint_auth_methods_supported = %v, want tls_client_auth", doc.Methods)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(get(http.DefaultClient, s.URL+"/ca")) {
		t.Fatal("GET /ca is not PEM")
	}
	tlsClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}}
	if over := get(tlsClient, base+"/.well-known/oauth-authorization-server"); string(over) != string(plain) {
		t.Errorf("the mutual-TLS listener serves another document:\n%s\nwant:\n%s", over, plain)
	}
}
