package certs_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// cvmPolicy is the seed's multa_backend_policy_dev, without ARNs.
const cvmPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["iot:Connect"],"Resource":["client/${iot:Connection.Thing.ThingName}"]},
 {"Effect":"Allow","Action":["iot:Publish"],"Resource":["topic/tlm/*/${iot:Connection.Thing.ThingName}/d2c"]},
 {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":["topicfilter/cmd/*/${iot:Connection.Thing.ThingName}/c2d"]},
 {"Effect":"Allow","Action":["iot:Receive"],"Resource":["topic/cmd/*/${iot:Connection.Thing.ThingName}/c2d"]}]}`

type fixture struct {
	t      testing.TB
	store  *store.Store
	reg    *registry.Service
	log    *events.Log
	sealer *seal.Sealer
	svc    *certs.Service
	clock  *testenv.Clock
	admin  context.Context
}

// newFixture opens a fresh store of the driver's kind, with thing type
// CvmGenericType (schema creationDate, version; default policy
// multa_backend_policy_dev), and an initialised certificate service.
func newFixture(t testing.TB, dsn string, mutate ...func(*certs.Config)) *fixture {
	t.Helper()
	clk := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	env := testenv.Core(t, testenv.DSN(dsn), testenv.Now(clk.Now))
	ctx, s, reg, log, sealer := env.Ctx, env.Store, env.Registry, env.Events, env.Sealer
	f := &fixture{t: t, store: s, reg: reg, log: log, sealer: sealer, clock: clk, admin: events.WithActor(ctx, "test")}
	f.svc = f.newService(mutate...)
	if err := f.svc.EnsureCA(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreatePolicy(f.admin, registry.NewPolicy{Name: "multa_backend_policy_dev", Document: []byte(cvmPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThingType(f.admin, registry.ThingTypeSpec{Name: "CvmGenericType",
		AttributeSchema: []store.AttributeSpec{{Name: "creationDate"}, {Name: "version"}},
		DefaultPolicies: []string{"multa_backend_policy_dev"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) newService(mutate ...func(*certs.Config)) *certs.Service {
	f.t.Helper()
	cfg := certs.Config{Store: f.store, Registry: f.reg, Events: f.log, Sealer: f.sealer, Now: f.clock.Now,
		Endpoints: map[string]string{"mqtt": "mqtts://gatehouse.test:8883"}}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := certs.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

// token creates a registration token.
func (f *fixture) token(maxUses, expiresIn int64) (string, *store.RegistrationToken) {
	f.t.Helper()
	sec, tok, err := f.svc.CreateRegistrationToken(f.admin, certs.NewRegistrationToken{ThingType: "CvmGenericType", MaxUses: maxUses, ExpiresInSeconds: expiresIn})
	if err != nil {
		f.t.Fatal(err)
	}
	return sec, tok
}

// snapshot counts what a registration creates, to assert nothing was.
type snapshot struct {
	things, certs int64
	lastEvent     int64
	uses          map[string]int64
}

func (f *fixture) snapshot() snapshot {
	f.t.Helper()
	return f.snapshotWith(f.t)
}

// snapshotWith reports failures to tb (a fuzz target's own T).
func (f *fixture) snapshotWith(tb testing.TB) snapshot {
	tb.Helper()
	ctx := context.Background()
	things, err := f.store.CountThings(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := f.store.CountCertificates(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	last, err := f.store.LatestEventID(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	toks, err := f.store.ListRegistrationTokens(ctx, store.Page{Limit: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	uses := map[string]int64{}
	for _, t := range toks {
		uses[t.ID] = t.Uses
	}
	return snapshot{things: things, certs: n, lastEvent: last, uses: uses}
}

func (f *fixture) assertUnchanged(before snapshot) {
	f.t.Helper()
	after := f.snapshot()
	if after.things != before.things || after.certs != before.certs || after.lastEvent != before.lastEvent {
		f.t.Errorf("something was created: things %d -> %d, certificates %d -> %d, last event %d -> %d",
			before.things, after.things, before.certs, after.certs, before.lastEvent, after.lastEvent)
	}
	for id, u := range before.uses {
		if after.uses[id] != u {
			f.t.Errorf("token %s uses %d -> %d", id, u, after.uses[id])
		}
	}
}

func p256(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM makes a PEM CSR for cn with key.
func csrPEM(t testing.TB, key crypto.Signer, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// weakRSA is a 1024-bit RSA key, made once.
var weakRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

// mfgCA is a manufacturer's self-signed CA with its key.
type mfgCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newMfgCA(t testing.TB, cn string, notBefore, notAfter time.Time) *mfgCA {
	t.Helper()
	key := p256(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &mfgCA{cert: c, key: key}
}

func (m *mfgCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.cert.Raw}))
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 100}

// issue signs a device (or verification) certificate with subject and the
// given validity; the key is returned too.
func (m *mfgCA) issue(t testing.TB, subject pkix.Name, notBefore, notAfter time.Time, clientAuth bool) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := p256(t)
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(sn), Subject: subject, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature}
	if clientAuth {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.cert, key.Public(), m.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func forEachDriver(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) { fn(t, d.DSN(t)) })
	}
}
