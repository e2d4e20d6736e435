package lobby_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/certs"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/lobby"
	"github.com/gatehouse-iot/gatehouse/internal/pki"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
	"github.com/gatehouse-iot/gatehouse/thing"
)

const devicePolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/things/${iot:Connection.Thing.ThingName}/*"}]}`

type fixture struct {
	t      *testing.T
	store  *store.Store
	certs  *certs.Service
	lobby  *lobby.Service
	broker *broker.Broker
	roots  *x509.CertPool
	admin  context.Context
	mfg    *x509.Certificate
	mfgKey crypto.Signer
	reg    *registry.Service
	log    *events.Log
	sealer *seal.Sealer
}

func newFixture(t *testing.T, dsn string, withBroker bool) *fixture {
	t.Helper()
	env := testenv.Core(t, testenv.DSN(dsn))
	ctx, s, reg, log, sealer := env.Ctx, env.Store, env.Registry, env.Events, env.Sealer
	cs := env.Certs()
	tlsCfg, err := cs.ServerTLSConfig(ctx, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := lobby.New(lobby.Config{Store: s, Registry: reg, Certs: cs, Events: log, LocalEndpoint: "mqtts://localhost:8883", Sealer: sealer,
		Signer: func() (*tls.Certificate, error) { return tlsCfg.GetCertificate(&tls.ClientHelloInfo{}) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.EnsurePolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.EnsurePolicy(ctx); err != nil {
		t.Fatalf("EnsurePolicy twice: %v", err)
	}
	f := &fixture{t: t, store: s, certs: cs, lobby: lb, admin: events.WithActor(ctx, "user:op"), reg: reg, log: log, sealer: sealer}
	if _, err := reg.CreatePolicy(f.admin, registry.NewPolicy{Name: "device", Document: []byte(devicePolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateThingType(f.admin, registry.ThingTypeSpec{Name: "meter", DefaultPolicies: []string{"device"}, AuthMethods: []string{authn.MethodCertificate}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Devices CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, mk.Public(), mk)
	f.mfg, _ = x509.ParseCertificate(der)
	f.mfgKey = mk
	if _, err := cs.AddManufacturerCA(f.admin, certs.NewManufacturerCA{Name: "acme", CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		JITStatus: store.CertActive}); err != nil {
		t.Fatal(err)
	}
	for _, tg := range []store.LobbyTarget{
		{Name: "here", Kind: store.LobbyTargetLocal, ThingType: "meter", Config: "default config"},
		{Name: "eu", Kind: store.LobbyTargetMQTT, Endpoint: "mqtts://eu.example:8883", Config: "eu config"},
	} {
		if _, err := lb.CreateTarget(f.admin, tg); err != nil {
			t.Fatal(err)
		}
	}
	if !withBroker {
		return f
	}
	b, err := broker.New(broker.Config{Authn: lb.Authenticator(authn.New(authn.Config{Registry: reg, Store: s, Certificates: cs})),
		Registry: reg, Events: log, TLSAddr: "127.0.0.1:0", TLSConfig: tlsCfg, Reserved: []broker.ReservedGrant{lobby.ReservedGrant, lobby.AWSReservedGrant},
		ReservedTopics: []broker.ReservedSpace{lobby.AWSReservedTopic}})
	if err != nil {
		t.Fatal(err)
	}
	f.broker = b
	env.Go(b.Run)
	env.Go(func(ctx context.Context) error { return lb.Run(ctx, b) })
	ca, _ := cs.CA(ctx)
	f.roots = x509.NewCertPool()
	f.roots.AddCert(ca.Root())
	return f
}

// device makes a manufacturer-signed device certificate.
func (f *fixture) device(cn string) (tls.Certificate, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.mfg, key.Public(), f.mfgKey)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pki.FingerprintDER(der)
}

type client struct {
	*paho.Client
	mu  sync.Mutex
	got []*paho.Publish
}

func (c *client) waitFor(t *testing.T, topic string, match func([]byte) bool) []byte {
	t.Helper()
	var got []byte
	testenv.Eventually(t, 10*time.Second, "a matching message on "+topic, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, m := range c.got {
			if m.Topic == topic && match(m.Payload) {
				got = m.Payload
				return true
			}
		}
		return false
	})
	return got
}

func (f *fixture) connect(clientID string, cert tls.Certificate) (*client, byte) {
	f.t.Helper()
	conn, err := tls.Dial("tcp", f.broker.Addr("mqtts"), &tls.Config{RootCAs: f.roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
	if err != nil {
		f.t.Fatal(err)
	}
	c := &client{}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got = append(c.got, pr.Packet)
			c.mu.Unlock()
			return true, nil
		}}})
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

func subscribe(t *testing.T, c *client, filter string) byte {
	t.Helper()
	sa, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

func publish(t *testing.T, c *client, topic string, payload []byte) byte {
	t.Helper()
	pr, err := c.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if pr == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

func (f *fixture) waitState(fp, want string) *lobby.Device {
	f.t.Helper()
	var (
		d   *lobby.Device
		err error
	)
	testenv.Eventually(f.t, 10*time.Second, "device "+fp[:8]+" in state "+want, func() bool {
		d, err = f.lobby.Get(context.Background(), fp)
		return err == nil && d.State == want
	})
	return d
}

// The whole flow over MQTT: knock -> inlobby, claim -> commissioned ->
// assignment delivered -> device logs in at the target -> arrived; lobby
// sessions are confined to their topics; factory reset returns it.
func TestLobbyOverMQTT(t *testing.T) {
	f := newFixture(t, storetest.SQLiteDSN(t), true)
	cert, fp := f.device("meter-1")
	other, otherFP := f.device("meter-2")

	connects := []struct {
		name     string
		clientID string
		cert     tls.Certificate
		want     byte
	}{
		// (Its common name as client id opens an AWS protocol lobby
		// session: TestAWSLobbyOverMQTT.)
		{"unknown cert, another client id", "meter-x", cert, 0x86},
		{"another device's fingerprint", otherFP, cert, 0x86},
	}
	for _, tc := range connects {
		if _, got := f.connect(tc.clientID, tc.cert); got != tc.want {
			t.Errorf("%s: CONNACK = %#x, want %#x", tc.name, got, tc.want)
		}
	}
	c, code := f.connect(fp, cert)
	if code != 0 {
		t.Fatalf("lobby connect = %#x", code)
	}
	f.waitState(fp, store.LobbyKnocking)
	if got := subscribe(t, c, lobby.AssignmentTopic(fp)); got != 1 {
		t.Errorf("SUBACK own assignment = %#x, want 1", got)
	}
	denied := []struct{ sub, pub string }{
		{lobby.AssignmentTopic(otherFP), lobby.KnockTopic(otherFP)},
		{"things/#", "things/meter-1/x"},
		{"$gatehouse/lobby/+/assignment", "$gatehouse/lobby/" + fp + "/assignment"},
	}
	for _, d := range denied {
		if got := subscribe(t, c, d.sub); got < 0x80 {
			t.Errorf("SUBACK %s = %#x, want a refusal", d.sub, got)
		}
	}
	if got := publish(t, c, lobby.KnockTopic(fp), []byte(`{"state":"factory default","config":"default"}`)); got != 0 {
		t.Fatalf("PUBACK knock = %#x", got)
	}
	f.waitState(fp, store.LobbyInLobby)
	for _, d := range denied {
		if got := publish(t, c, d.pub, []byte(`{}`)); got != 0x87 {
			t.Errorf("PUBACK %s = %#x, want 0x87", d.pub, got)
		}
	}

	if _, err := f.lobby.Claim(f.admin, lobby.ClaimRequest{Device: lobby.QRPayload(fp), Target: "here"}); err != nil {
		t.Fatal(err)
	}
	payload := c.waitFor(t, lobby.AssignmentTopic(fp), func(b []byte) bool {
		a, err := thing.VerifyLobbyMessage(b, fp, []string{"localhost"}, f.roots, time.Now())
		return err == nil && a.Endpoint != ""
	})
	a, err := thing.VerifyLobbyMessage(payload, fp, []string{"localhost"}, f.roots, time.Now())
	if err != nil || a.Endpoint != "mqtts://localhost:8883" || a.Config != "default config" ||
		a.ThingName != "meter-1" || !strings.Contains(a.CAChain, "BEGIN CERTIFICATE") {
		t.Errorf("assignment = %s (%v)", payload, err)
	}
	f.waitState(fp, store.LobbyCommissioned)
	_ = c.Disconnect(&paho.Disconnect{})

	// The device goes to its target: this Gatehouse, as its thing.
	d, code := f.connect("meter-1", cert)
	if code != 0 {
		t.Fatalf("target connect = %#x", code)
	}
	if got := publish(t, d, "things/meter-1/tlm", []byte(`{}`)); got != 0 {
		t.Errorf("PUBACK at target = %#x", got)
	}
	got := f.waitState(fp, store.LobbyArrived)
	var states []string
	for _, h := range got.History {
		states = append(states, h.To)
	}
	if want := "knocking inlobby claimed commissioned arrived"; strings.Join(states, " ") != want {
		t.Errorf("history = %v, want %s", states, want)
	}

	// Factory reset: its certificate is deactivated here, it is
	// disconnected and may open a lobby session again.
	if _, err := f.lobby.FactoryReset(f.admin, fp); err != nil {
		t.Fatal(err)
	}
	f.waitState(fp, store.LobbyInLobby)
	// As its thing it is refused: a device that came over the native
	// protocol is not an AWS protocol lobby session, even with its CN as
	// client id, so it hears the refusal and goes back to the lobby.
	if _, code := f.connect("meter-1", cert); code != 0x87 {
		t.Errorf("target connect after reset = %#x, want 0x87", code)
	}
	if _, code := f.connect(fp, cert); code != 0 {
		t.Errorf("lobby connect after reset = %#x, want 0", code)
	}

	// A rejected device may not open a lobby session.
	if _, code := f.connect(otherFP, other); code != 0 {
		t.Fatalf("lobby connect meter-2 = %#x", code)
	}
	if _, err := f.lobby.Reject(f.admin, otherFP, "not ours"); err != nil {
		t.Fatal(err)
	}
	if _, code := f.connect(otherFP, other); code != 0x87 {
		t.Errorf("rejected device connect = %#x, want 0x87", code)
	}
}

// The ledger on both drivers: pre-claim before the first knock, claims to
// an MQTT target, state errors, reject, reset, pagination.
func TestLedger(t *testing.T) {
	for _, drv := range storetest.Drivers() {
		t.Run(drv.Name, func(t *testing.T) {
			f := newFixture(t, drv.DSN(t), false)
			ctx := f.admin
			cert, fp := f.device("meter-9")
			leaf, _ := x509.ParseCertificate(cert.Certificate[0])
			dev := &certs.ManufacturerDevice{Fingerprint: fp, CA: "acme", CommonName: "meter-9", Leaf: leaf}

			// Pre-claim by a colon-separated fingerprint, before it is seen.
			var colons []string
			for i := 0; i < len(fp); i += 2 {
				colons = append(colons, strings.ToUpper(fp[i:i+2]))
			}
			pre, err := f.lobby.PreClaim(ctx, lobby.ClaimRequest{Device: strings.Join(colons, ":"), Target: "eu", Config: "site=7"})
			if err != nil || pre.State != store.LobbyClaimed || pre.CertificatePEM != "" {
				t.Fatalf("PreClaim = %+v, %v", pre, err)
			}
			seen, err := f.lobby.Seen(ctx, dev)
			if err != nil || seen.State != store.LobbyCommissioned || !strings.Contains(seen.Assignment, "eu.example") || !strings.Contains(seen.Assignment, "site=7") {
				t.Fatalf("Seen after pre-claim = %+v, %v", seen, err)
			}
			again, err := f.lobby.Seen(ctx, dev)
			if err != nil || again.CommissionedClaim != 1 || again.Claims != 1 {
				t.Errorf("second Seen = %+v, %v; want commissioned once", again, err)
			}

			_, fp2 := f.device("meter-10")
			tests := []struct {
				name string
				err  error
				want error
			}{
				{"claim unknown target", errOf(f.lobby.Claim(ctx, lobby.ClaimRequest{Device: fp, Target: "nowhere"})), store.ErrNotFound},
				{"claim commissioned device", errOf(f.lobby.Claim(ctx, lobby.ClaimRequest{Device: fp, Target: "here"})), lobby.ErrState},
				{"knock unknown device", errOf(f.lobby.Knock(ctx, fp2, "", "")), store.ErrNotFound},
				{"reset device never claimed", errOf(f.lobby.FactoryReset(ctx, fp2)), store.ErrNotFound},
				{"garbage id", errOf(f.lobby.Get(ctx, "GH1:xyz")), lobby.ErrInvalid},
			}
			for _, tc := range tests {
				if !errors.Is(tc.err, tc.want) {
					t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
				}
			}
			// Reroute to this Gatehouse registers it locally, once.
			rr, err := f.lobby.Reroute(ctx, lobby.ClaimRequest{Device: fp, Target: "here", ThingName: "meter-nine"})
			if err != nil || rr.State != store.LobbyCommissioned || rr.Claims != 2 {
				t.Fatalf("Reroute = %+v, %v", rr, err)
			}
			if c, err := f.store.GetCertificate(ctx, fp); err != nil || c.ThingName != "meter-nine" || c.Status != store.CertActive {
				t.Errorf("local certificate = %+v, %v", c, err)
			}
			if _, err := f.lobby.FactoryReset(ctx, fp); err != nil {
				t.Fatal(err)
			}
			if c, _ := f.store.GetCertificate(ctx, fp); c == nil || c.Status != store.CertInactive {
				t.Errorf("certificate after reset = %+v, want INACTIVE", c)
			}
			if _, err := f.lobby.Claim(ctx, lobby.ClaimRequest{Device: fp, Target: "here"}); err != nil {
				t.Fatalf("claim after reset: %v", err)
			}
			if c, _ := f.store.GetCertificate(ctx, fp); c == nil || c.Status != store.CertActive || c.ThingName != "meter-nine" {
				t.Errorf("certificate after second claim = %+v", c)
			}
			if _, err := f.lobby.Reject(ctx, fp2, "unknown vendor"); err != nil {
				t.Fatal(err)
			}
			list, err := f.lobby.List(ctx, store.LobbyFilter{State: store.LobbyRejected})
			if err != nil || len(list) != 1 || list[0].Fingerprint != fp2 {
				t.Errorf("List(rejected) = %+v, %v", list, err)
			}
			full, err := f.lobby.Get(ctx, fp)
			if err != nil {
				t.Fatal(err)
			}
			var states []string
			for _, h := range full.History {
				states = append(states, h.To)
			}
			if want := "claimed commissioned claimed commissioned inlobby claimed commissioned"; strings.Join(states, " ") != want {
				t.Errorf("history = %v, want %s", states, want)
			}
			evs, _ := f.store.ListEvents(ctx, store.EventFilter{Type: "lobby."})
			if len(evs) < 9 {
				t.Errorf("lobby events = %d, want at least 9", len(evs))
			}
		})
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestQR(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{lobby.QRPayload(fp), fp, true},
		{"gh1:" + strings.ToUpper(fp), fp, true},
		{fp, fp, true},
		{"sha256:" + fp, fp, true},
		{"GH1:" + fp[:10], "", false},
		{"GH2:" + fp, "", false},
	}
	for _, tc := range tests {
		got, err := lobby.ParseQR(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseQR(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	png, err := lobby.QRPNG(fp)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("QRPNG = %d bytes, %v", len(png), err)
	}
	svg, err := lobby.QRSVG(fp)
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("M")) {
		t.Errorf("QRSVG = %.40s, %v", svg, err)
	}
}

// TestGatehouseTargets checks the settings of gatehouse targets (another
// Gatehouse) and that their API token is only kept sealed.
func TestGatehouseTargets(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/g.db", false)
	ctx := f.admin
	ok := store.LobbyTarget{Name: "peer", Kind: store.LobbyTargetGatehouse, APIURL: "https://peer.example/", APIToken: "ghat_s3cret", ThingType: "meter"}
	tests := []struct {
		name string
		edit func(*store.LobbyTarget)
	}{
		{"no token", func(t *store.LobbyTarget) { t.APIToken = "" }},
		{"no URL", func(t *store.LobbyTarget) { t.APIURL = "" }},
		{"not http", func(t *store.LobbyTarget) { t.APIURL = "ftp://peer.example" }},
		{"URL with query", func(t *store.LobbyTarget) { t.APIURL = "https://peer.example/?a=1" }},
		{"no thing type", func(t *store.LobbyTarget) { t.ThingType = "" }},
		{"token with a space", func(t *store.LobbyTarget) { t.APIToken = "a b" }},
		{"endpoint not mqtts", func(t *store.LobbyTarget) { t.Endpoint = "mqtt://peer.example:1883" }},
		{"bad CA", func(t *store.LobbyTarget) { t.CAPEM = "not a pem" }},
		{"API token on a local target", func(t *store.LobbyTarget) { t.Kind = store.LobbyTargetLocal }},
	}
	for _, tc := range tests {
		in := ok
		tc.edit(&in)
		if _, err := f.lobby.CreateTarget(ctx, in); !errors.Is(err, lobby.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	if _, err := f.store.GetLobbyTarget(ctx, "peer"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused target was stored: %v", err)
	}
	got, err := f.lobby.CreateTarget(ctx, ok)
	if err != nil || got.APIToken != "" || got.APIURL != "https://peer.example" {
		t.Fatalf("CreateTarget = %+v, %v", got, err)
	}
	stored, err := f.store.GetLobbyTarget(ctx, "peer")
	if err != nil || len(stored.APITokenSealed) == 0 || bytes.Contains(stored.APITokenSealed, []byte("s3cret")) {
		t.Fatalf("stored target = %+v, %v; want the token sealed", stored, err)
	}
	// An update without a token keeps the sealed one; with one, reseals.
	upd := *stored
	upd.APITokenSealed, upd.Config = nil, "new"
	if _, err := f.lobby.UpdateTarget(ctx, "peer", 0, upd); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.store.GetLobbyTarget(ctx, "peer"); !bytes.Equal(again.APITokenSealed, stored.APITokenSealed) || again.Config != "new" {
		t.Errorf("after an update without token: %+v", again)
	}
	upd.APIToken = "ghat_other"
	if _, err := f.lobby.UpdateTarget(ctx, "peer", 0, upd); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.store.GetLobbyTarget(ctx, "peer"); bytes.Equal(again.APITokenSealed, stored.APITokenSealed) || len(again.APITokenSealed) == 0 {
		t.Errorf("after an update with a token the sealed token is unchanged")
	}
	// Without a sealer there are no gatehouse targets.
	bare, err := lobby.New(lobby.Config{Store: f.store, Registry: f.reg, Certs: f.certs, Events: f.log})
	if err != nil {
		t.Fatal(err)
	}
	ok.Name = "peer-2"
	if _, err := bare.CreateTarget(ctx, ok); !errors.Is(err, lobby.ErrInvalid) {
		t.Errorf("CreateTarget without a sealer: err = %v, want ErrInvalid", err)
	}
}

// TestReportedArrival: a device commissioned to a remote target reports
// its arrival with a knock; at a local target only the login counts.
func TestReportedArrival(t *testing.T) {
	f := newFixture(t, "sqlite:"+t.TempDir()+"/a.db", false)
	ctx := f.admin
	tests := []struct {
		cn, target, want string
	}{
		{"meter-1", "eu", store.LobbyArrived},
		{"meter-2", "here", store.LobbyCommissioned},
	}
	for _, tc := range tests {
		cert, fp := f.device(tc.cn)
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		if _, err := f.lobby.Seen(ctx, &certs.ManufacturerDevice{Fingerprint: fp, CA: "acme", CommonName: tc.cn, Leaf: leaf}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.lobby.Knock(ctx, fp, lobby.ArrivedState, ""); err != nil {
			t.Fatal(err)
		}
		if d, _ := f.store.GetLobbyDevice(ctx, fp); d.State != store.LobbyInLobby {
			t.Errorf("%s: an arrival report before any claim moved it to %s", tc.cn, d.State)
		}
		if _, err := f.lobby.Claim(ctx, lobby.ClaimRequest{Device: fp, Target: tc.target}); err != nil {
			t.Fatal(err)
		}
		d, err := f.lobby.Knock(ctx, fp, lobby.ArrivedState, "")
		if err != nil || d.State != tc.want {
			t.Errorf("%s at %s: after the report %+v, %v; want %s", tc.cn, tc.target, d, err, tc.want)
		}
	}
}
