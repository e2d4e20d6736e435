package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	_ "modernc.org/sqlite" // reads the database between the crashes

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// fleetDevice is a device certificate of a manufacturer fleet.
type fleetDevice struct {
	cn, fp string
	cert   tls.Certificate
}

// manufacturerFleet makes one manufacturer CA and n device certificates.
func manufacturerFleet(t *testing.T, prefix string, n int) (string, []fleetDevice) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Crash Devices CA", Organization: []string{"Crash"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	var out []fleetDevice
	for i := range n {
		cn := fmt.Sprintf("%s-%03d", prefix, i)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: cn, Organization: []string{"Crash"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(der)
		out = append(out, fleetDevice{cn: cn, fp: hex.EncodeToString(sum[:]), cert: cert})
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), out
}

// knock puts a device in the lobby: a TLS session with its fingerprint as
// client id and a knock message.
func knock(t *testing.T, s *server, roots *x509.CertPool, d fleetDevice) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.MQTTS, &tls.Config{Certificates: []tls.Certificate{d.cert}, RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: d.fp, KeepAlive: 30, CleanStart: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("lobby connect %s: %v %v", d.cn, ca, err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "$gatehouse/lobby/" + d.fp + "/knock", QoS: 1, Payload: []byte(`{"state":"new"}`)}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
}

// TestCrashSafety kills the server with SIGKILL three times while
// registrations (POST /register), lobby claims and token requests run
// under load, restarts it on the same data directory each time and checks
// that the store opens and holds no half-done work: no registered or
// commissioned thing without its certificate, no certificate of a missing
// thing, no ledger entry in a state its history does not end in or
// commissioned without its thing and certificate; finally every operation
// works again.
func TestCrashSafety(t *testing.T) { testCrashSafety(t, "") }

// TestCrashSafetyPostgres is TestCrashSafety on PostgreSQL.
func TestCrashSafetyPostgres(t *testing.T) { testCrashSafety(t, storetest.PostgresDSN(t)) }

func testCrashSafety(t *testing.T, dsn string) {
	if testing.Short() {
		t.Skip("-short: kills the server under load three times")
	}
	dataDir := t.TempDir()
	// One client asks for tokens as fast as it can: its per-client limit
	// would answer most of them without touching the database.
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte("limits:\n  tokenPerClient: \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--data-dir", dataDir, "--external-url", "http://gatehouse.crash.test"}
	if dsn != "" {
		args = append(args, "--dsn", dsn)
	}
	openDB := func() *sql.DB {
		var db *sql.DB
		var err error
		if dsn == "" {
			db, err = sql.Open("sqlite", "file:"+filepath.Join(dataDir, "gatehouse.db")+"?mode=ro&_pragma=busy_timeout(10000)")
		} else {
			db, err = sql.Open("pgx", dsn)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	s := startServer(t, args...)
	admin := s.Token
	caPEM, devices := manufacturerFleet(t, "crash-lobby", 60)
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"crash","certificatePem":`+string(caJSON)+`}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","scopes":["read"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"here","kind":"local","thingType":"meter"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"crash-token","thingType":"meter"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/crash-token/secret", "", 201)["clientSecret"].(string)
	regTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":100000}`, 201)["token"].(string)
	_, chain := curl(t, "GET", s.URL+"/ca", "", "")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(chain))

	var next atomic.Int64 // names registrations uniquely across crashes
	claimed := 0
	for cycle := range 3 {
		// Devices knock before the load; the load claims them.
		batch := devices[cycle*15 : cycle*15+15]
		for _, d := range batch {
			knock(t, s, roots, d)
		}
		for _, d := range batch {
			waitLobbyState(t, s, d.fp, "inlobby")
		}
		var (
			wg                       sync.WaitGroup
			stop                     = make(chan struct{})
			registered, claims, toks atomic.Int64
		)
		worker := func(op func() bool, n *atomic.Int64) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if op() {
					n.Add(1)
				}
			}
		}
		client := &http.Client{Timeout: 5 * time.Second}
		post := func(path, auth, ctype, body string) int {
			req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", ctype)
			resp, err := client.Do(req)
			if err != nil {
				return 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		for range 3 {
			wg.Add(1)
			go worker(func() bool {
				name := fmt.Sprintf("crash-reg-%05d", next.Add(1))
				return post("/register", "DeviceToken "+regTok, "application/json", `{"thingName":"`+name+`","version":"1"}`) == 200
			}, &registered)
		}
		var claimNext atomic.Int64
		wg.Add(1)
		go worker(func() bool {
			i := int(claimNext.Add(1)) - 1
			if i >= len(batch) {
				time.Sleep(10 * time.Millisecond) // load pacing: every device claimed, idle until the kill
				return false
			}
			d := batch[i]
			return post("/api/v1/lobby/claims", "Bearer "+admin, "application/json", `{"device":"`+d.fp+`","target":"here","thingName":"`+d.cn+`"}`) == 200
		}, &claims)
		for range 2 {
			wg.Add(1)
			go worker(func() bool {
				form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"crash-token"}, "client_secret": {secret}}.Encode()
				return post("/oauth2/token", "", "application/x-www-form-urlencoded", form) == 200
			}, &toks)
		}
		// Kill in the middle of the load: after some of everything.
		testenv.Eventually(t, 30*time.Second, "the load under way (20 registrations, 5 claims, 20 tokens)", func() bool {
			return registered.Load() >= 20 && claims.Load() >= 5 && toks.Load() >= 20
		})
		if err := s.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.done
		close(stop)
		wg.Wait()
		claimed += int(claims.Load())
		t.Logf("cycle %d: killed after %d registrations, %d claims, %d tokens", cycle, registered.Load(), claims.Load(), toks.Load())

		s = startServer(t, args...)
		s.Token = admin
		checkNoHalfDoneWork(t, openDB())
	}

	// Everything works again.
	if code := s.cliPost(t, "/register", "DeviceToken "+regTok, `{"thingName":"crash-after","version":"1"}`); code != 200 {
		t.Errorf("register after the crashes = %d", code)
	}
	clientCredentials(t, s, "crash-token", secret, "read")
	last := devices[len(devices)-1]
	knock(t, s, roots, last)
	waitLobbyState(t, s, last.fp, "inlobby")
	s.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+last.fp+`","target":"here","thingName":"`+last.cn+`"}`, 200)
	waitLobbyState(t, s, last.fp, "commissioned")
	s.admin(t, "GET", "/api/v1/things/"+last.cn, "", 200)
	checkNoHalfDoneWork(t, openDB())
	// The checks looked at real work: every answered claim is commissioned.
	db := openDB()
	var commissioned, regs int
	_ = db.QueryRow(`SELECT count(*) FROM lobby_devices WHERE state = 'commissioned'`).Scan(&commissioned)
	_ = db.QueryRow(`SELECT count(*) FROM things WHERE name LIKE 'crash-reg-%'`).Scan(&regs)
	if commissioned < claimed+1 || regs < 60 {
		t.Errorf("%d commissioned devices and %d registered things; want at least %d and 60", commissioned, regs, claimed+1)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// cliPost posts a JSON body with an Authorization header.
func (s *server) cliPost(t *testing.T, path, auth, body string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkNoHalfDoneWork reads the database and reports states no
// transaction should ever leave behind.
func checkNoHalfDoneWork(t *testing.T, db *sql.DB) {
	t.Helper()
	checks := []struct{ name, query string }{
		{"registered or commissioned thing without a certificate",
			`SELECT name FROM things t WHERE (name LIKE 'crash-reg-%' OR name LIKE 'crash-lobby-%' OR name = 'crash-after')
			 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.thing_name = t.name)`},
		{"certificate of a missing thing",
			`SELECT fingerprint FROM certificates c WHERE thing_name <> '' AND NOT EXISTS (SELECT 1 FROM things t WHERE t.name = c.thing_name)`},
		{"ledger entry in an unknown state",
			`SELECT fingerprint FROM lobby_devices WHERE state NOT IN ('knocking','inlobby','claimed','commissioned','arrived','rejected','decommissioned')`},
		{"ledger state not where its history ends",
			`SELECT d.fingerprint FROM lobby_devices d WHERE d.state <> COALESCE((SELECT to_state FROM lobby_transitions h WHERE h.fingerprint = d.fingerprint ORDER BY id DESC LIMIT 1), '')`},
		{"commissioned ledger entry without its thing or certificate",
			`SELECT d.fingerprint FROM lobby_devices d WHERE d.state IN ('commissioned','arrived')
			 AND (NOT EXISTS (SELECT 1 FROM things t WHERE t.name = d.thing_name)
			   OR NOT EXISTS (SELECT 1 FROM certificates c WHERE c.fingerprint = d.fingerprint AND c.thing_name = d.thing_name))`},
		{"claimed device with a known certificate left uncommissioned",
			`SELECT fingerprint FROM lobby_devices WHERE state = 'claimed' AND certificate_pem <> '' AND commissioned_claim <> claims`},
	}
	for _, c := range checks {
		rows, err := db.Query(c.query)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var bad []string
		for rows.Next() {
			var k string
			_ = rows.Scan(&k)
			bad = append(bad, k)
		}
		rows.Close()
		if len(bad) > 0 {
			t.Errorf("%s: %v", c.name, bad)
		}
	}
}
