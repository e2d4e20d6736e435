package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// TestConsoleOperations drives the console's operations pages in a real
// Chromium (e2e/browser/console-ops.test.mjs, issue #20 part A): the lobby
// (claim from a grainy photo, the form clearing, reroute, factory reset
// and decommission with a reason, targets of every kind edited and
// deleted, the waiting count on every page), events (opening on the
// latest, paging back, filters, details as key/value), a thing type's edit
// form, policies (attach picker, the JSON editor's line marks, a person in
// the simulator, built-in policies protected), the overview's counts and
// live connections, readable errors, one time format and page titles, each
// page at 1280x800 without sideways scrolling and without CSP violations.
// Screenshots land in $SCREENSHOT_DIR/ops (default
// e2e/browser/artifacts/ops, git-ignored), which CI keeps as artifacts.
// This side prepares the server and a real lobby device, and checks what
// the browser did through the API.
func TestConsoleOperations(t *testing.T) {
	node, chromium := browserTools(t)
	s := startServer(t, "--data-dir", t.TempDir())
	dir := t.TempDir()

	s.admin(t, "POST", "/api/v1/policies", `{"name":"meter-telemetry","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/meters/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"people-read","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/meters/#"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"meter","defaultPolicies":["meter-telemetry"]}`, 201)
	s.admin(t, "POST", "/api/v1/things", `{"name":"lamp-9"}`, 201)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery","roles":["user"]}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"here","kind":"local","thingType":"meter","config":"report every 60s"}`, 201)
	s.admin(t, "POST", "/api/v1/lobby/targets", `{"name":"there","kind":"local","thingType":"meter","config":"report every 10s"}`, 201)

	// Device A knocks for real (over mutual TLS with its manufacturer
	// certificate): the browser claims it from a grainy photo of its QR
	// code. B and C are pre-claimed: the browser reroutes and resets B and
	// decommissions C.
	caPEM, deviceA, _, fpA := manufacturer(t, "meter-a")
	caJSON, _ := json.Marshal(caPEM)
	s.admin(t, "POST", "/api/v1/manufacturer-cas", `{"name":"acme","certificatePem":`+string(caJSON)+`}`, 201)
	var fps []string
	for _, cn := range []string{"meter-b", "meter-c"} {
		_, _, _, fp := manufacturer(t, cn)
		s.admin(t, "POST", "/api/v1/lobby/preclaims", `{"device":"`+fp+`","target":"here","thingName":"`+cn+`"}`, 200)
		fps = append(fps, fp)
	}
	fpB, fpC := fps[0], fps[1]

	status, qr := curl(t, "GET", s.URL+"/api/v1/lobby/devices/"+fpA+"/qr.png", s.Token, "")
	if status != 200 {
		t.Fatalf("GET qr.png = %d", status)
	}
	grainy := filepath.Join(dir, "grainy.png")
	if err := writeGrainyPhoto(grainy, []byte(qr)); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	status, chain := curl(t, "GET", s.URL+"/ca", "", "")
	if status != 200 || !roots.AppendCertsFromPEM([]byte(chain)) {
		t.Fatalf("GET /ca = %d %q", status, chain)
	}
	conn, err := tls.Dial("tcp", s.MQTTS, &tls.Config{Certificates: []tls.Certificate{deviceA}, RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lobbyClient := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if ca, err := lobbyClient.Connect(ctx, &paho.Connect{ClientID: fpA, KeepAlive: 30, CleanStart: true}); ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("lobby connect: %v %v", ca, err)
	}
	t.Cleanup(func() { _ = lobbyClient.Disconnect(&paho.Disconnect{}) })
	if _, err := lobbyClient.Publish(ctx, &paho.Publish{Topic: "$gatehouse/lobby/" + fpA + "/knock", QoS: 1, Payload: []byte(`{"state":"factory default"}`)}); err != nil {
		t.Fatal(err)
	}
	waitLobbyState(t, s, fpA, "inlobby")

	shots := os.Getenv("SCREENSHOT_DIR")
	if shots == "" {
		shots = filepath.Join("browser", "artifacts")
	}
	shots, _ = filepath.Abs(filepath.Join(shots, "ops"))
	nctx, ncancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, "--test", "--test-reporter=spec", filepath.Join("browser", "console-ops.test.mjs"))
	cmd.Env = append(os.Environ(),
		"BASE_URL="+s.URL, "ADMIN_USER=admin", "ADMIN_PASSWORD="+s.Pass,
		"GRAINY_PNG="+grainy, "DEVICE_A="+fpA, "DEVICE_B="+fpB, "DEVICE_C="+fpC, "CA_PEM="+chain,
		"SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("browser scenarios (screenshots in %s):\n%s", shots, out.String())
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}

	// What the browser did, seen through the API.
	if a := s.admin(t, "GET", "/api/v1/lobby/devices/"+fpA, "", 200); a["state"] == "inlobby" || a["thingName"] != "meter-a1" || a["target"] != "here" {
		t.Errorf("device A after the claim = %v", a)
	}
	if b := s.admin(t, "GET", "/api/v1/lobby/devices/"+fpB, "", 200); (b["state"] != "inlobby" && b["state"] != "knocking") ||
		!strings.Contains(jsonString(b["history"]), `"to":"claimed"`) || !strings.Contains(jsonString(b["history"]), "back to the shelf") {
		t.Errorf("device B after reroute and factory reset = %v", b)
	}
	if c := s.admin(t, "GET", "/api/v1/lobby/devices/"+fpC, "", 200); c["state"] != "decommissioned" || !strings.Contains(jsonString(c["history"]), "water damage") {
		t.Errorf("device C after decommissioning = %v", c)
	}
	evs := s.admin(t, "GET", "/api/v1/events?type=lobby.rerouted&subject=lobby/"+fpB, "", 200)
	if !strings.Contains(jsonString(evs), "there") {
		t.Errorf("no reroute of B to there: %v", evs)
	}
	targets := jsonString(s.admin(t, "GET", "/api/v1/lobby/targets", "", 200))
	if !strings.Contains(targets, `"name":"there"`) || !strings.Contains(targets, "report every 5s") || strings.Contains(targets, `"name":"plant"`) {
		t.Errorf("targets after edit and delete = %s", targets)
	}
	if tt := s.admin(t, "GET", "/api/v1/thing-types/meter", "", 200); jsonString(tt["scopes"]) != `["publish","telemetry"]` ||
		jsonString(tt["scopeDescriptions"]) != `{"publish":"Send its meter readings"}` ||
		!strings.Contains(jsonString(tt["attributeSchema"]), `{"name":"site","pattern":"[a-z]+","required":true}`) ||
		!strings.Contains(jsonString(tt["defaultPolicies"]), "people-read") || jsonString(tt["authMethods"]) != `["certificate"]` {
		t.Errorf("thing type meter after the edit = %v", tt)
	}
	if as := jsonString(s.admin(t, "GET", "/api/v1/policies/people-read/attachments", "", 200)); !strings.Contains(as, `"target":"alice"`) {
		t.Errorf("people-read attachments = %s, want alice", as)
	}
}

// writeGrainyPhoto writes the QR PNG as a phone photo of a label might
// look: enlarged 4x on a grey-white background, with strong per-pixel
// noise, so a decoder has to scale it down (averaging the grain) to read
// it.
func writeGrainyPhoto(path string, qrPNG []byte) error {
	qr, err := png.Decode(bytes.NewReader(qrPNG))
	if err != nil {
		return err
	}
	const scale, size = 4, 1400
	b := qr.Bounds()
	img := image.NewGray(image.Rect(0, 0, size, size))
	ox, oy := (size-b.Dx()*scale)/2, (size-b.Dy()*scale)/2
	rng := rand.New(rand.NewPCG(20, 1))
	for y := range size {
		for x := range size {
			v := 225.0
			qx, qy := (x-ox)/scale+b.Min.X, (y-oy)/scale+b.Min.Y
			if x >= ox && y >= oy && qx < b.Max.X && qy < b.Max.Y {
				r, g, bl, _ := qr.At(qx, qy).RGBA()
				v = 30 + 195*float64(r+g+bl)/(3*65535)
			}
			v += rng.NormFloat64() * 70
			img.SetGray(x, y, color.Gray{Y: uint8(min(255, max(0, v)))})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}
