package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

func TestKeyRotationSQLite(t *testing.T) {
	t.Parallel()
	testKeyRotation(t, "")
}

func TestKeyRotationPostgres(t *testing.T) {
	t.Parallel()
	testKeyRotation(t, storetest.PostgresDSN(t))
}

// testKeyRotation: `keys rotate` makes a new signing key while tokens
// signed by the old one stay valid; `keys rotate-master` (server stopped)
// re-seals the signing and CA keys under a new master key and installs
// it, keeping the old key file; the server then starts with the new key,
// old tokens introspect as active, the old device certificate still
// authenticates over mutual TLS, new tokens and certificates are issued;
// the rotation refuses to run beside a running server, and a wrong master
// key makes the server fail at start with a message naming the key.
func testKeyRotation(t *testing.T, dsn string) {
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--external-url", "http://gatehouse.keys.test"}
	if dsn != "" {
		args = append(args, "--dsn", dsn)
	}
	offline := append([]string(nil), args[:2]...)
	if dsn != "" {
		offline = append(offline, "--dsn", dsn)
	}
	s := startServer(t, args...)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["read"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"meter-1","thingType":"meter"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":5}`, 201)["token"].(string)
	cert, roots := registerDevice(t, s, regTok, "meter-cert-1")
	first := clientCredentials(t, s, "meter-1", secret, "read")

	out, errOut, err := s.cli(t, "", "keys", "rotate")
	if err != nil || !strings.Contains(out, "rotated") {
		t.Fatalf("keys rotate: %v\n%s%s", err, out, errOut)
	}
	second := clientCredentials(t, s, "meter-1", secret, "read")
	if jwtKID(t, first) == jwtKID(t, second) {
		t.Error("keys rotate: the next token is signed with the same key")
	}
	if !introspect(t, s, "meter-1", secret, first) {
		t.Error("a token signed before keys rotate is no longer active")
	}

	newKey := filepath.Join(t.TempDir(), "new-master.key")
	if out, err := gatehouse(t, append([]string{"keys", "rotate-master", "--new-key-file", newKey}, offline...)...); err == nil || !strings.Contains(out, "stop every server") {
		t.Errorf("rotate-master beside a running server: err %v\n%s", err, out)
	}
	if _, err := os.Stat(newKey); err != nil {
		t.Fatalf("the refused rotation did not create the new key file (it should, before checking): %v", err)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	oldKey, _ := os.ReadFile(filepath.Join(dataDir, "master.key"))
	rotate := append([]string{"keys", "rotate-master", "--new-key-file", newKey}, offline...)
	if dsn != "" {
		// Other tests' servers may use the same PostgreSQL database.
		rotate = append(rotate, "--force")
	}
	out, err = gatehouse(t, rotate...)
	if err != nil || !strings.Contains(out, "re-sealed 4 values") {
		t.Fatalf("rotate-master (want 4 values: the CA and root keys, two signing keys): %v\n%s", err, out)
	}
	installed, _ := os.ReadFile(filepath.Join(dataDir, "master.key"))
	wantNew, _ := os.ReadFile(newKey)
	if !bytes.Equal(installed, wantNew) {
		t.Errorf("master.key after rotation is not the new key")
	}
	backups, _ := filepath.Glob(filepath.Join(dataDir, "master.key.old-*"))
	if len(backups) != 1 {
		t.Fatalf("old key backups = %v, want one", backups)
	}
	if kept, _ := os.ReadFile(backups[0]); !bytes.Equal(kept, oldKey) {
		t.Error("the kept old key is not the old key")
	}
	if out, err := gatehouse(t, append([]string{"keys", "rotate-master", "--new-key-file", newKey}, offline...)...); err == nil {
		t.Errorf("rotating to the key already installed succeeded:\n%s", out)
	}

	s2 := startServer(t, args...)
	s2.Token = s.Token
	for name, tok := range map[string]string{"first": first, "second": second} {
		if !introspect(t, s2, "meter-1", secret, tok) {
			t.Errorf("the %s token is not active after the master key rotation", name)
		}
	}
	third := clientCredentials(t, s2, "meter-1", secret, "read")
	if jwtKID(t, third) != jwtKID(t, second) {
		t.Error("after the master key rotation the server signs with another key than before (signing key lost?)")
	}
	// The old certificate still chains to the CA and authenticates.
	_, chain := curl(t, "GET", s2.URL+"/ca", "", "")
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(chain))
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the device certificate no longer verifies: %v", err)
	}
	mtls := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"}}}
	resp, err := mtls.PostForm("https://"+s2.HTTPS+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-cert-1"}})
	if err != nil {
		t.Fatalf("mutual TLS token request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("token over mutual TLS with the old certificate = %d %s", resp.StatusCode, body)
	}
	registerDevice(t, s2, regTok, "meter-cert-2") // the CA key opens under the new master key
	if err := s2.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// A wrong master key fails at start, clearly.
	if err := os.WriteFile(filepath.Join(dataDir, "master.key"), []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), binary, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--mqtts-addr", "127.0.0.1:0", "--https-addr", ""}, args...)...)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "master key") || !strings.Contains(string(msg), "master.key.old-") {
		t.Errorf("serve with a wrong master key: err %v, want a failure naming the master key and the kept old key:\n%s", err, msg)
	}
}

// registerDevice registers a thing through POST /register and returns its
// certificate (with the key) and the CA roots.
func registerDevice(t *testing.T, s *server, regTok, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/register", strings.NewReader(`{"thingName":"`+name+`","version":"1.0"}`))
	req.Header.Set("Authorization", "DeviceToken "+regTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg struct {
		CertificateData struct {
			PEM     string `json:"pem"`
			KeyPair struct {
				PrivateKey string `json:"private_key"`
			} `json:"key_pair"`
		} `json:"certificateData"`
		RootCA string `json:"rootCa"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != 200 {
		t.Fatalf("register %s = %d %v", name, resp.StatusCode, err)
	}
	cert, err := tls.X509KeyPair([]byte(reg.CertificateData.PEM), []byte(reg.CertificateData.KeyPair.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(reg.RootCA)) {
		t.Fatal("rootCa is not PEM")
	}
	return cert, roots
}

// TestKeyRotationOnline rotates the master key without stopping the
// service for the rotation itself: the server is restarted once with the
// new key as masterKeyFile and the old one in previousMasterKeyFiles, the
// rotation runs beside it (--online), and afterwards the server starts
// with the new key alone: old tokens are active, the old certificate
// authenticates, new tokens and certificates are issued.
func TestKeyRotationOnline(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	oldFile, newFile := filepath.Join(dataDir, "master.key"), filepath.Join(t.TempDir(), "new.key")
	base := []string{"--data-dir", dataDir, "--external-url", "http://gatehouse.keys.test"}
	s := startServer(t, base...)
	admin := s.Token
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["read"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"meter-1","thingType":"meter"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/meter-1/secret", "", 201)["clientSecret"].(string)
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":5}`, 201)["token"].(string)
	cert, roots := registerDevice(t, s, regTok, "meter-cert-1")
	first := clientCredentials(t, s, "meter-1", secret, "read")
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newFile, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "both.yaml")
	if err := os.WriteFile(both, []byte("secrets:\n  masterKeyFile: "+newFile+"\n  previousMasterKeyFiles: ["+oldFile+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, append([]string{"--config", both}, base...)...)
	s.Token = admin
	out, err := gatehouse(t, "keys", "rotate-master", "--online", "--data-dir", dataDir, "--master-key-file", oldFile, "--new-key-file", newFile)
	if err != nil || !strings.Contains(out, "re-sealed 3 values") {
		t.Fatalf("rotate-master --online beside the running server (want 3 values: CA, root, signing key): %v\n%s", err, out)
	}
	if out, errOut, err := s.cli(t, "", "keys", "rotate"); err != nil {
		t.Fatalf("keys rotate: %v %s %s", err, out, errOut)
	}
	second := clientCredentials(t, s, "meter-1", secret, "read")
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	only := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(only, []byte("secrets:\n  masterKeyFile: "+newFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, append([]string{"--config", only}, base...)...)
	s.Token = admin
	for name, tok := range map[string]string{"first": first, "second": second} {
		if !introspect(t, s, "meter-1", secret, tok) {
			t.Errorf("the %s token is not active with the new key alone", name)
		}
	}
	clientCredentials(t, s, "meter-1", secret, "read")
	mtls := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"}}}
	resp, err := mtls.PostForm("https://"+s.HTTPS+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"meter-cert-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("token over mutual TLS with the old certificate = %d", resp.StatusCode)
	}
	registerDevice(t, s, regTok, "meter-cert-2")
}
