package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// haproxyConfig is the HAProxy configuration docs/deploy.md shows, for
// replicas at 10.0.0.11-13, with the addresses of rs and the balancer's
// listeners (HTTP, MQTT, MQTTS) put in.
func haproxyConfig(t *testing.T, rs []*server, http, mqtt, mqtts string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```haproxy\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("docs/deploy.md has no haproxy block")
	}
	r := []string{"bind :8080\n", "bind " + http + "\n", "bind :1883\n", "bind " + mqtt + "\n", "bind :8883\n", "bind " + mqtts + "\n"}
	for i, s := range rs {
		ip := fmt.Sprintf("10.0.0.%d", 11+i)
		r = append(r, ip+":8080 ", strings.TrimPrefix(s.URL, "http://")+" ", ip+":1883 ", s.MQTT+" ", ip+":8883 ", s.MQTTS+" ")
	}
	cfg := strings.NewReplacer(r...).Replace(block)
	if strings.Contains(cfg, "10.0.0.") || strings.Contains(cfg, "bind :") {
		t.Fatalf("the documented configuration has addresses this test does not replace:\n%s", cfg)
	}
	return cfg
}

// TestHAProxyInFront puts HAProxy, configured as docs/deploy.md shows, in
// front of three clustered replicas: the admin API and the token endpoint
// through it (HTTP, no affinity), devices over MQTT and MQTTS through it
// (TCP pass-through) landing on different replicas and reaching each
// other, and a device that reconnects landing on another replica.
func TestHAProxyInFront(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/haproxy")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy not installed (scripts/test-deps.sh installs it)")
		}
		t.Skip("haproxy not installed")
	}
	rs, _ := startClusterReplicas(t, 3, 0)
	addrs := routePorts(t, 3)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(t, rs, addrs[0], addrs[1], addrs[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", stderr.String())
		}
	})
	lb := &server{URL: "http://" + addrs[0], MQTT: addrs[1], MQTTS: addrs[2], Token: rs[0].Token}
	testenv.Eventually(t, 30*time.Second, "the balancer listens", func() bool {
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	if code, out := curl(t, "GET", lb.URL+"/readyz", "", ""); code != 200 {
		t.Fatalf("/readyz through the balancer = %d %s", code, out)
	}

	// Registry and tokens through the balancer: successive requests go to
	// different replicas.
	lb.admin(t, "POST", "/api/v1/policies", `{"name":"lb","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/lb/*"},
	  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/lb/*"}]}}`, 201)
	lb.admin(t, "POST", "/api/v1/thing-types", `{"name":"lbdev","scopes":["mqtt"],"defaultPolicies":["lb"]}`, 201)
	tokens := map[string]string{}
	for _, thing := range []string{"lb-1", "lb-2", "lb-3"} {
		lb.admin(t, "POST", "/api/v1/things", `{"name":"`+thing+`","thingType":"lbdev"}`, 201)
		secret := lb.admin(t, "POST", "/api/v1/things/"+thing+"/secret", "", 201)["clientSecret"].(string)
		tokens[thing] = clientCredentials(t, lb, thing, secret, "mqtt")
	}
	// replica names the replica a thing's one connection is on, asking
	// through the balancer (any replica lists the whole cluster's).
	replica := func(thing string) string {
		t.Helper()
		var name string
		testenv.Eventually(t, 10*time.Second, thing+" has one connection", func() bool {
			code, out := curl(t, "GET", lb.URL+"/api/v1/things/"+thing+"/connections", lb.Token, "")
			var cs struct {
				Items []struct {
					Replica string `json:"replica"`
				} `json:"items"`
			}
			if code != 200 || json.Unmarshal([]byte(out), &cs) != nil || len(cs.Items) != 1 {
				return false
			}
			name = cs.Items[0].Replica
			return true
		})
		return name
	}

	sub := clusterConnect(t, lb, "lb-1", tokens["lb-1"])
	sub.subscribe(t, "lb/#")
	pub := clusterConnect(t, lb, "lb-2", tokens["lb-2"])
	r1, r2 := replica("lb-1"), replica("lb-2")
	if r1 == r2 {
		t.Errorf("two devices through the balancer both on %s, want the second on the replica with fewer connections", r1)
	}
	pub.send(t, "lb/x", "across", 1, false)
	sub.expect(t, "QoS 1 through the balancer, across replicas", "lb/x", "across")

	// lb-2 reconnects: within three tries it lands on another replica, and
	// its messages still reach lb-1.
	last := r2
	for try := 0; last == r2; try++ {
		if try == 3 {
			t.Fatalf("lb-2 reconnected three times through the balancer, always to %s", r2)
		}
		_ = pub.c.Disconnect(&paho.Disconnect{})
		testenv.Eventually(t, 10*time.Second, "lb-2's connection gone", func() bool {
			code, out := curl(t, "GET", lb.URL+"/api/v1/things/lb-2/connections", lb.Token, "")
			return code == 200 && strings.Contains(out, `"items":[]`)
		})
		pub = clusterConnect(t, lb, "lb-2", tokens["lb-2"])
		last = replica("lb-2")
	}
	t.Logf("lb-1 on %s; lb-2 on %s, then after reconnecting on %s", r1, r2, last)
	pub.send(t, "lb/x", "after reconnect", 1, false)
	sub.expect(t, "QoS 1 after lb-2 reconnected elsewhere", "lb/x", "after reconnect")

	// MQTTS passes through: the server certificate is the replica's, from
	// the Gatehouse CA, and the token logs in over TLS.
	roots := x509.NewCertPool()
	if code, chain := curl(t, "GET", lb.URL+"/ca", "", ""); code != 200 || !roots.AppendCertsFromPEM([]byte(chain)) {
		t.Fatalf("GET /ca through the balancer = %d", code)
	}
	conn, err := tls.Dial("tcp", lb.MQTTS, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS through the balancer: %v", err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "lb-3", Username: "lb-3", UsernameFlag: true, Password: []byte(tokens["lb-3"]), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if ca == nil || ca.ReasonCode != 0 {
		t.Fatalf("MQTTS connect through the balancer: %v %v", ca, err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "lb/x", QoS: 1, Payload: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	sub.expect(t, "QoS 1 over MQTTS through the balancer", "lb/x", "over tls")
	_ = c.Disconnect(&paho.Disconnect{})
}
