package broker_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// cvmPolicy is the seed's device policy (registration gateway, seed 002).
const cvmPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["iot:Connect"],"Resource":["client/${iot:Connection.Thing.ThingName}"]},
 {"Effect":"Allow","Action":["iot:Publish"],"Resource":["topic/tlm/*/${iot:Connection.Thing.ThingName}/d2c"]},
 {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":["topicfilter/cmd/*/${iot:Connection.Thing.ThingName}/c2d"]},
 {"Effect":"Allow","Action":["iot:Receive"],"Resource":["topic/cmd/*/${iot:Connection.Thing.ThingName}/c2d"]}]}`

type tlsFixture struct {
	t      *testing.T
	store  *store.Store
	certs  *certs.Service
	broker *broker.Broker
	roots  *x509.CertPool
	token  string
	admin  context.Context
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	env := testenv.Core(t)
	ctx, s, reg, log := env.Ctx, env.Store, env.Registry, env.Events
	svc := env.Certs()
	tlsCfg, err := svc.ServerTLSConfig(ctx, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{
		Authn:    authn.New(authn.Config{Registry: reg, Store: s, Certificates: svc}),
		Registry: reg, Events: log, TLSAddr: "127.0.0.1:0", TLSConfig: tlsCfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	env.Go(b.Run)

	admin := env.As("test")
	if _, err := reg.CreatePolicy(admin, registry.NewPolicy{Name: "cvm", Document: []byte(cvmPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThingType(admin, registry.ThingTypeSpec{Name: "CvmGenericType", DefaultPolicies: []string{"cvm"},
		AuthMethods: []string{authn.MethodCertificate}}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.CreateRegistrationToken(admin, certs.NewRegistrationToken{ThingType: "CvmGenericType", MaxUses: 10})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := svc.CA(ctx)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	return &tlsFixture{t: t, store: s, certs: svc, broker: b, roots: roots, token: tok, admin: admin}
}

// register registers a device through the gateway with a CSR and returns
// its TLS certificate and the certificate id.
func (f *tlsFixture) register(name string) (tls.Certificate, string) {
	f.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	reg, err := f.certs.Register(context.Background(), f.token, certs.RegisterRequest{ThingName: name, Version: "1", CSR: csr})
	if err != nil {
		f.t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(reg.CertificatePEM))
	return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}, reg.Certificate.Fingerprint
}

// connect opens MQTT 5 over TLS with the client certificate (if any) and
// no username or password; it returns the CONNACK reason code.
func (f *tlsFixture) connect(clientID string, cert *tls.Certificate) (*client, byte) {
	f.t.Helper()
	cfg := &tls.Config{RootCAs: f.roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", f.broker.Addr("mqtts"), cfg)
	if err != nil {
		f.t.Fatalf("TLS dial: %v", err)
	}
	// tls.Conn is not safe for paho's concurrent writers.
	c := newClient(packets.NewThreadSafeConn(conn))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if ca == nil {
		conn.Close()
		return nil, 0xff
	}
	if err == nil {
		f.t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return c, ca.ReasonCode
}

func TestMTLSConnectAndPolicies(t *testing.T) {
	f := newTLSFixture(t)
	dev1, _ := f.register("dev-1")
	dev2, _ := f.register("dev-2")
	tests := []struct {
		name     string
		clientID string
		cert     *tls.Certificate
		want     byte
	}{
		{"own certificate, own client id", "dev-1", &dev1, 0},
		{"client id of another thing", "dev-2", &dev1, 0x87},
		{"no client certificate", "dev-1", nil, 0x86},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, code := f.connect(tc.clientID, tc.cert)
			if code != tc.want {
				t.Errorf("CONNACK = %#x, want %#x", code, tc.want)
			}
			if c != nil && code == 0 {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		})
	}
	c1, code := f.connect("dev-1", &dev1)
	if code != 0 {
		t.Fatalf("connect dev-1 = %#x", code)
	}
	c2, code := f.connect("dev-2", &dev2)
	if code != 0 {
		t.Fatalf("connect dev-2 = %#x", code)
	}
	if got := subscribe(t, c2, "cmd/+/dev-2/c2d"); got != 1 {
		t.Errorf("SUBACK own commands = %#x", got)
	}
	if got := subscribe(t, c2, "cmd/+/dev-1/c2d"); got != 0x87 {
		t.Errorf("SUBACK other's commands = %#x, want 0x87", got)
	}
	pubs := []struct {
		topic string
		want  byte
	}{
		{"tlm/temp/dev-1/d2c", 0},
		{"tlm/temp/dev-2/d2c", 0x87},
		{"cmd/reboot/dev-2/c2d", 0x87},
	}
	for _, tc := range pubs {
		if got := publish(t, c1, tc.topic, 1, false); got != tc.want {
			t.Errorf("PUBACK %s = %#x, want %#x", tc.topic, got, tc.want)
		}
	}
}

func TestMTLSRevocationDisconnects(t *testing.T) {
	f := newTLSFixture(t)
	dev1, id1 := f.register("dev-1")
	dev2, id2 := f.register("dev-2")
	c1, code := f.connect("dev-1", &dev1)
	if code != 0 {
		t.Fatalf("connect = %#x", code)
	}
	c2, code := f.connect("dev-2", &dev2)
	if code != 0 {
		t.Fatalf("connect = %#x", code)
	}
	if _, err := f.certs.RevokeCertificate(f.admin, id1, 1); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, c1, 0x87, "client was not disconnected")
	if _, code := f.connect("dev-1", &dev1); code != 0x86 {
		t.Errorf("reconnect with revoked certificate: CONNACK %#x, want 0x86", code)
	}
	if _, err := f.certs.DeactivateCertificate(f.admin, id2); err != nil {
		t.Fatal(err)
	}
	waitDisconnect(t, c2, 0x87, "client was not disconnected")
	if _, code := f.connect("dev-2", &dev2); code != 0x87 {
		t.Errorf("reconnect with inactive certificate: CONNACK %#x, want 0x87", code)
	}
	if _, err := f.certs.ActivateCertificate(f.admin, id2); err != nil {
		t.Fatal(err)
	}
	if _, code := f.connect("dev-2", &dev2); code != 0 {
		t.Errorf("reconnect after activation: CONNACK %#x, want 0", code)
	}
}

// A device holding a manufacturer certificate is registered on its first
// connection: ACTIVE by configuration lets it in at once, PENDING_ACTIVATION
// waits for an operator.
func TestMTLSManufacturerJIT(t *testing.T) {
	f := newTLSFixture(t)
	now := time.Now()
	mfg := func(cn string) (*x509.Certificate, crypto.Signer) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	device := func(ca *x509.Certificate, caKey crypto.Signer, cn string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, SerialNumber: "SN-" + cn},
			NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	acme, acmeKey := mfg("Acme CA")
	slow, slowKey := mfg("Slow CA")
	for _, m := range []struct {
		name   string
		ca     *x509.Certificate
		status string
	}{{"acme", acme, store.CertActive}, {"slow", slow, store.CertPendingActivation}} {
		if _, err := f.certs.AddManufacturerCA(f.admin, certs.NewManufacturerCA{Name: m.name, CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.ca.Raw})),
			AutoRegister: true, JITStatus: m.status, ThingType: "CvmGenericType"}); err != nil {
			t.Fatal(err)
		}
	}
	a7 := device(acme, acmeKey, "acme-7")
	c, code := f.connect("acme-7", &a7)
	if code != 0 {
		t.Fatalf("JIT ACTIVE connect = %#x", code)
	}
	if got := publish(t, c, "tlm/temp/acme-7/d2c", 1, false); got != 0 {
		t.Errorf("publish after JIT = %#x", got)
	}
	if th, err := f.store.GetThing(context.Background(), "acme-7"); err != nil || th.ThingType != "CvmGenericType" {
		t.Errorf("JIT thing = %+v, %v", th, err)
	}
	s1 := device(slow, slowKey, "slow-1")
	if _, code := f.connect("slow-1", &s1); code != 0x87 {
		t.Errorf("JIT PENDING connect = %#x, want 0x87", code)
	}
	pending, _ := f.store.ListCertificates(context.Background(), store.CertificateFilter{CA: "slow"})
	if len(pending) != 1 || pending[0].Status != store.CertPendingActivation {
		t.Fatalf("pending certificates = %+v", pending)
	}
	if _, err := f.certs.ActivateCertificate(f.admin, pending[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, code := f.connect("slow-1", &s1); code != 0 {
		t.Errorf("connect after activation = %#x", code)
	}
	evs, _ := f.store.ListEvents(context.Background(), store.EventFilter{Type: "certificate.registered"})
	if len(evs) != 2 {
		t.Errorf("certificate.registered events = %d, want 2", len(evs))
	}
	// A certificate from an unknown CA is refused and registers nothing.
	rogue, rogueKey := mfg("Rogue CA")
	r1 := device(rogue, rogueKey, "rogue-1")
	if _, code := f.connect("rogue-1", &r1); code != 0x86 {
		t.Errorf("unknown CA connect = %#x, want 0x86", code)
	}
	if _, err := f.store.GetThing(context.Background(), "rogue-1"); err == nil {
		t.Error("a device of an unknown CA was registered")
	}
}
