package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/thing"
)

// browserTools finds node, Chromium and the installed browser test
// dependencies, skipping the test without them unless
// GATEHOUSE_TEST_BROWSER_REQUIRED=1 (CI), where their absence fails it.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: drives Chromium through the whole console")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		missingBrowserTool(t, fmt.Sprintf(format, args...))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no Chromium at %s (apt-get install chromium, or set CHROMIUM)", chromium)
	}
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("browser test dependencies are not installed (npm ci --prefix e2e/browser)")
	}
	return node, chromium
}

// missingBrowserTool skips the test for want of a browser-test tool (node,
// Chromium, the npm packages), or fails it under
// GATEHOUSE_TEST_BROWSER_REQUIRED=1 (CI).
func missingBrowserTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("GATEHOUSE_TEST_BROWSER_REQUIRED") == "1" {
		t.Fatal(msg + " (GATEHOUSE_TEST_BROWSER_REQUIRED=1)")
	}
	t.Skip(msg)
}

// TestConsoleBrowser drives the web console in a real Chromium
// (e2e/browser/console.test.mjs): sign in, create a thing type and a thing,
// edit a policy (inline validation error, then the simulator's decision
// changes), claim a real lobby device from a photo of its QR code (and read
// it with the camera) and watch it arrive, approve a device-flow code at
// /device, see a user's and an operator's restricted views, and follow live
// events. This side prepares the server and the devices and checks the
// results through the API.
func TestConsoleBrowser(t *testing.T) {
	node, chromium := browserTools(t)
	s := startServer(t, "--data-dir", t.TempDir())
	dir := t.TempDir()

	// The policy the browser edits: only connecting, at first.
	s.admin(t, "POST", "/api/v1/policies", `{"name":"lamp-policy","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}]}}`, 201)

	// A lobby device, set up as in TestSeed004Lobby, knocking.
	caPEM, device, _, fp := manufacturer(t, "meter-9")
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"here","kind":"local","thingType":"meter","config":"report every 60s"}`, 201)
	qrPNG := filepath.Join(dir, "qr.png")
	status, body := curl(t, "GET", s.URL+"/api/v1/lobby/devices/"+fp+"/qr.png", s.Token, "")
	if status != 200 || !strings.HasPrefix(body, "\x89PNG") {
		t.Fatalf("GET qr.png = %d", status)
	}
	if err := os.WriteFile(qrPNG, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cameraY4M := filepath.Join(dir, "qr.y4m")
	if err := writeY4M(cameraY4M, []byte(body)); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	status, chain := curl(t, "GET", s.URL+"/ca", "", "")
	if status != 200 || !roots.AppendCertsFromPEM([]byte(chain)) {
		t.Fatalf("GET /ca = %d %q", status, chain)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{device}, RootCAs: roots, ServerName: "127.0.0.1"}
	assigned := make(chan []byte, 1)
	connect := func(clientID string) (*paho.Client, error) {
		conn, err := tls.Dial("tcp", s.MQTTS, tlsCfg)
		if err != nil {
			return nil, err
		}
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case assigned <- pr.Packet.Payload:
				default:
				}
				return true, nil
			}}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
		if ca == nil {
			return nil, fmt.Errorf("connect %s: %w", clientID, err)
		}
		if ca.ReasonCode != 0 {
			return nil, fmt.Errorf("connect %s: reason %#x", clientID, ca.ReasonCode)
		}
		return c, nil
	}
	lobbyClient, err := connect(fp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := lobbyClient.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$gatehouse/lobby/" + fp + "/assignment", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lobbyClient.Publish(ctx, &paho.Publish{Topic: "$gatehouse/lobby/" + fp + "/knock", QoS: 1, Payload: []byte(`{"state":"factory default"}`)}); err != nil {
		t.Fatal(err)
	}
	waitLobbyState(t, s, fp, "inlobby")

	// The device, once the browser has claimed it, receives its assignment
	// and goes to its target as its thing (staying connected).
	runCtx, stopDevice := context.WithCancel(t.Context())
	defer stopDevice()
	var (
		wg        sync.WaitGroup
		deviceErr error
		thingConn *paho.Client
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case raw := <-assigned:
			a, err := thing.VerifyLobbyMessage(raw, fp, []string{"127.0.0.1"}, roots, time.Now())
			if err != nil || a.ThingName != "meter-9" {
				deviceErr = fmt.Errorf("assignment = %+v (%v)", a, err)
				return
			}
		case <-runCtx.Done():
			deviceErr = fmt.Errorf("no lobby assignment: the browser did not claim the device")
			return
		}
		_ = lobbyClient.Disconnect(&paho.Disconnect{})
		thingConn, deviceErr = connect("meter-9")
		if deviceErr != nil {
			return
		}
		pctx, cancel := context.WithTimeout(runCtx, 10*time.Second)
		defer cancel()
		if pr, err := thingConn.Publish(pctx, &paho.Publish{Topic: "meters/meter-9/kwh", QoS: 1, Payload: []byte("7")}); err != nil || pr.ReasonCode != 0 {
			deviceErr = fmt.Errorf("publish at the target: %v %v", pr, err)
		}
	}()
	t.Cleanup(func() {
		if thingConn != nil {
			_ = thingConn.Disconnect(&paho.Disconnect{})
		}
	})

	// A device-flow request of a thing whose approver becomes its owner.
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"tv","scopes":["publish"],"scopeDescriptions":{"publish":"Show what is playing"},"approverRelation":"owner"}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"tv-1","thingType":"tv"}`, 201)
	secret := s.admin(t, "POST", "/api/v1/things/tv-1/secret", "", 201)["clientSecret"].(string)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery","roles":["user"]}`, 201)
	s.admin(t, "POST", "/api/v1/users", `{"username":"olga","password":"operator staple","roles":["operator"]}`, 201)
	status, da := postForm(t, s.URL+"/oauth2/device/code", url.Values{"client_id": {"tv-1"}, "client_secret": {secret}, "scope": {"publish"}})
	if status != 200 || da["user_code"] == nil {
		t.Fatalf("device code = %d %v", status, da)
	}

	shots := os.Getenv("SCREENSHOT_DIR")
	if shots == "" {
		shots, _ = filepath.Abs(filepath.Join("browser", "artifacts"))
	}
	nctx, ncancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, filepath.Join("browser", "console.test.mjs"))
	cmd.Env = append(os.Environ(),
		"BASE_URL="+s.URL, "ADMIN_USER=admin", "ADMIN_PASSWORD="+s.Pass, "POLICY=lamp-policy",
		"QR_PNG="+qrPNG, "QR_PAYLOAD=GH1:"+fp, "LOBBY_TARGET=here", "CAMERA_Y4M="+cameraY4M,
		"USER_CODE="+da["user_code"].(string), "DEVICE_THING=tv-1", "USER_NAME=alice", "USER_PASSWORD=correct horse battery",
		"OPERATOR_NAME=olga", "OPERATOR_PASSWORD=operator staple",
		"SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	stopDevice()
	wg.Wait()
	t.Logf("browser scenarios (screenshots in %s):\n%s", shots, out.String())
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}
	if deviceErr != nil {
		t.Errorf("lobby device: %v", deviceErr)
	}

	// What the browser did, seen through the API.
	if th := s.admin(t, "GET", "/api/v1/things/lamp-1", "", 200); th["thingType"] != "lamp" || jsonString(th["attributes"]) != `{"floor":"3","site":"berlin"}` {
		t.Errorf("lamp-1 = %v", th)
	}
	if status, _ := curl(t, "GET", s.URL+"/api/v1/things/lamp-2", s.Token, ""); status != 404 {
		t.Errorf("GET lamp-2 after the browser deleted it = %d, want 404", status)
	}
	if p := s.admin(t, "GET", "/api/v1/policies/lamp-policy", "", 200); !strings.Contains(jsonString(p["document"]), "iot:Publish") {
		t.Errorf("lamp-policy = %v", p)
	}
	if dev := waitLobbyState(t, s, fp, "arrived"); dev["target"] != "here" || !strings.Contains(jsonString(dev), `"actor":"user:admin"`) {
		t.Errorf("lobby device = %v", dev)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}, "client_id": {"tv-1"}, "client_secret": {secret}}
	var tok map[string]any
	for i := 0; ; i++ {
		var code int
		code, tok = postForm(t, s.URL+"/oauth2/token", poll)
		if code == 200 {
			break
		}
		if i == 10 || (tok["error"] != "slow_down" && tok["error"] != "authorization_pending") {
			t.Fatalf("token poll after the browser's approval = %d %v", code, tok)
		}
		time.Sleep(time.Second) // the interval the server asks for (device flow under test)
	}
	if tok["access_token"] == nil {
		t.Errorf("no access token after approval: %v", tok)
	}
	if rels := s.admin(t, "GET", "/api/v1/relationships?object=tv-1", "", 200); !strings.Contains(jsonString(rels), `"subject":"alice"`) {
		t.Errorf("approval did not make alice owner of tv-1: %v", rels)
	}
}

// writeY4M writes a short Y4M video (what Chromium's fake camera plays)
// showing the PNG centred on white, in grey.
func writeY4M(path string, pngData []byte) error {
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		return fmt.Errorf("decode QR PNG: %w", err)
	}
	const w, h = 640, 480
	b := img.Bounds()
	if b.Dx() > w || b.Dy() > h {
		return fmt.Errorf("QR PNG is %dx%d, larger than the %dx%d frame", b.Dx(), b.Dy(), w, h)
	}
	luma := bytes.Repeat([]byte{255}, w*h)
	ox, oy := (w-b.Dx())/2, (h-b.Dy())/2
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			luma[(oy+y-b.Min.Y)*w+ox+x-b.Min.X] = byte((299*r + 587*g + 114*bl) / 1000 >> 8)
		}
	}
	chroma := bytes.Repeat([]byte{128}, w*h/4)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", w, h)
	for range 10 {
		buf.WriteString("FRAME\n")
		buf.Write(luma)
		buf.Write(chroma)
		buf.Write(chroma)
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}
