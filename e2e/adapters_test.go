package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestEMQXAdapterReplicas drives the EMQX HTTP authentication and
// authorization endpoints as EMQX calls them, against two replicas on one
// PostgreSQL: a client authenticated through replica A is authorized by
// replica B (as when a load balancer moves EMQX's calls, or A restarts),
// until its token is revoked; a request without the right adapter key is
// answered 200 {"result":"deny"} (EMQX takes a 4xx for "ignore").
func TestEMQXAdapterReplicas(t *testing.T) {
	t.Parallel()
	const key = "e2e-adapter-key"
	rs, _ := startReplicasWith(t, 2, "authorizer:\n  keys: ["+key+"]\n")
	a, b := rs[0], rs[1]
	a.admin(t, "POST", "/api/v1/policies", `{"name":"emqx-dev","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/dev/${iot:Connection.Thing.ThingName}/*"}]}}`, 201)
	a.admin(t, "POST", "/api/v1/thing-types", `{"name":"emqxdev","scopes":["mqtt"],"defaultPolicies":["emqx-dev"]}`, 201)
	a.admin(t, "POST", "/api/v1/things", `{"name":"em-1","thingType":"emqxdev"}`, 201)
	secret := a.admin(t, "POST", "/api/v1/things/em-1/secret", "", 201)["clientSecret"].(string)
	tok := clientCredentials(t, a, "em-1", secret, "mqtt")

	emqx := func(s *server, path, adapterKey string, body map[string]string) string {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/authorizer/emqx/"+path, strings.NewReader(string(raw)))
		req.Header.Set("Content-Type", "application/json")
		if adapterKey != "" {
			req.Header.Set("X-Gatehouse-Adapter-Key", adapterKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Result string `json:"result"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s on %s = %d (%v), want 200 with a result", path, s.URL, resp.StatusCode, err)
		}
		return r.Result
	}
	authn := map[string]string{"clientid": "em-1", "username": "em-1", "password": tok, "peerhost": "10.1.2.3"}
	pub := func(topic string) map[string]string {
		return map[string]string{"clientid": "em-1", "username": "em-1", "topic": topic, "action": "publish", "retain": "false"}
	}

	if got := emqx(b, "authz", key, pub("dev/em-1/t")); got != "deny" {
		t.Fatalf("authz before any authn = %q, want deny", got)
	}
	if got := emqx(a, "authn", key, authn); got != "allow" {
		t.Fatalf("authn on A = %q, want allow", got)
	}
	for _, c := range []struct {
		s           *server
		key, topic  string
		want, where string
	}{
		{b, key, "dev/em-1/t", "allow", "B, own topic"},
		{a, key, "dev/em-1/t", "allow", "A, own topic"},
		{b, key, "dev/em-2/t", "deny", "B, another thing's topic"},
		{b, "wrong-key", "dev/em-1/t", "deny", "B, wrong adapter key"},
		{b, "", "dev/em-1/t", "deny", "B, no adapter key"},
	} {
		if got := emqx(c.s, "authz", c.key, pub(c.topic)); got != c.want {
			t.Errorf("authz on %s = %q, want %q", c.where, got, c.want)
		}
	}
	for _, k := range []string{"", "wrong-key"} {
		if got := emqx(b, "authn", k, authn); got != "deny" {
			t.Errorf("authn with adapter key %q = %q, want deny", k, got)
		}
	}

	// The thing revokes its token on A; B denies from then on (it reloads
	// the revoked tokens every 2 s).
	if code, m := postForm(t, a.URL+"/oauth2/revoke", url.Values{"token": {tok}, "client_id": {"em-1"}, "client_secret": {secret}}); code != 200 {
		t.Fatalf("revoke = %d %v", code, m)
	}
	testenv.Eventually(t, 10*time.Second, "B denies after the token was revoked on A", func() bool {
		return emqx(b, "authz", key, pub("dev/em-1/t")) == "deny"
	})
	if got := emqx(a, "authz", key, pub("dev/em-1/t")); got != "deny" {
		t.Errorf("authz on A after revocation = %q, want deny", got)
	}
}
