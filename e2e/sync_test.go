package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// syncReport is the JSON report of `gatehouse sync aws-iot --json`.
type syncReport struct {
	DryRun    bool `json:"dryRun"`
	Created   int  `json:"created"`
	Updated   int  `json:"updated"`
	Deleted   int  `json:"deleted"`
	Skipped   int  `json:"skipped"`
	Conflicts int  `json:"conflicts"`
	Failed    int  `json:"failed"`
	Unchanged int  `json:"unchanged"`
	Items     []struct {
		Kind, Name, Action, Reason string
		Conflict                   bool
	} `json:"items"`
}

func (r syncReport) actions() []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, it.Action+" "+it.Kind+" "+it.Name)
	}
	return out
}

// registryState lists the things of a server as name(type){attrs}.
func registryState(t *testing.T, s *server) string {
	t.Helper()
	status, body := curl(t, "GET", s.URL+"/api/v1/things?limit=1000", s.Token, "")
	if status != http.StatusOK {
		t.Fatalf("list things: %d %s", status, body)
	}
	var resp struct {
		Items []struct {
			Name       string            `json:"name"`
			ThingType  string            `json:"thingType"`
			Attributes map[string]string `json:"attributes"`
			Version    int               `json:"version"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, th := range resp.Items {
		b, _ := json.Marshal(th.Attributes)
		parts = append(parts, th.Name+"("+th.ThingType+")"+string(b))
	}
	return strings.Join(parts, " ")
}

func mustCurl(t *testing.T, s *server, method, path, body string, want int) string {
	t.Helper()
	status, out := curl(t, method, s.URL+path, s.Token, body)
	if status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, status, out, want)
	}
	return out
}

// TestSyncAWSIoT runs two servers: B plays the AWS IoT registry through
// its AWS-IoT-compatible API, A syncs with it through `gatehouse sync
// aws-iot` (the real aws-sdk-go-v2 client, SigV4 with a key made on B).
func TestSyncAWSIoT(t *testing.T) {
	t.Parallel()
	dirA := t.TempDir()
	a := startServer(t, "--data-dir", dirA)
	b := startServer(t, "--data-dir", t.TempDir())

	out, errOut, err := b.cli(t, "", "aws-keys", "create", "sync-from-a")
	if err != nil {
		t.Fatalf("aws-keys create: %v\n%s", err, errOut)
	}
	var key struct {
		ID     string `json:"accessKeyId"`
		Secret string `json:"secretAccessKey"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil || key.ID == "" || key.Secret == "" {
		t.Fatalf("aws-keys create output %q: %v", out, err)
	}
	if out, _, _ := b.cli(t, "", "aws-keys", "list"); strings.Contains(out, key.Secret) || !strings.Contains(out, key.ID) {
		t.Errorf("aws-keys list shows the secret or misses the key: %s", out)
	}

	mustCurl(t, a, "POST", "/api/v1/thing-types", `{"name":"pump","description":"pumps"}`, 201)
	mustCurl(t, a, "POST", "/api/v1/things", `{"name":"a-only","thingType":"pump","attributes":{"site":"north"}}`, 201)
	mustCurl(t, a, "POST", "/api/v1/things", `{"name":"shared","attributes":{"fw":"1"}}`, 201)
	mustCurl(t, b, "POST", "/api/v1/thing-types", `{"name":"valve"}`, 201)
	mustCurl(t, b, "POST", "/api/v1/things", `{"name":"b-only","thingType":"valve","attributes":{"site":"south"}}`, 201)
	mustCurl(t, b, "POST", "/api/v1/things", `{"name":"shared","attributes":{"fw":"1"}}`, 201)

	sync := func(asJSON bool, args ...string) (syncReport, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		full := append([]string{"sync", "aws-iot", "--data-dir", dirA, "--endpoint", b.URL + "/aws-iot", "--region", "eu-west-1",
			"--access-key-id", key.ID, "--secret-access-key", key.Secret}, args...)
		if asJSON {
			full = append(full, "--json")
		}
		cmd := exec.CommandContext(ctx, binary, full...)
		cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("gatehouse %s: %v\n%s\n%s", strings.Join(args, " "), err, o.String(), e.String())
		}
		var rep syncReport
		if asJSON {
			if err := json.Unmarshal([]byte(o.String()), &rep); err != nil {
				t.Fatalf("report %q: %v", o.String(), err)
			}
		}
		return rep, o.String()
	}

	// Dry run: a report, no change on either side.
	beforeA, beforeB := registryState(t, a), registryState(t, b)
	rep, _ := sync(true, "--dry-run")
	if want := []string{"create-in-aws thingType pump", "create-in-gatehouse thingType valve", "create-in-aws thing a-only", "create-in-gatehouse thing b-only"}; !slices.Equal(rep.actions(), want) || !rep.DryRun || rep.Created != 4 || rep.Unchanged != 1 {
		t.Errorf("dry run report = %+v, want actions %q", rep, want)
	}
	_, text := sync(false, "--dry-run")
	if !strings.Contains(text, "dry run: nothing was changed") || !strings.Contains(text, "created 4, updated 0, deleted 0, skipped 0, conflicts 0") {
		t.Errorf("text report:\n%s", text)
	}
	if gotA, gotB := registryState(t, a), registryState(t, b); gotA != beforeA || gotB != beforeB {
		t.Fatalf("dry run changed something:\nA %s\n  was %s\nB %s\n  was %s", gotA, beforeA, gotB, beforeB)
	}

	rep, _ = sync(true, "--direction", "import")
	if rep.Created != 2 || rep.Skipped != 2 {
		t.Errorf("import report = %+v, want 2 created 2 skipped", rep)
	}
	if got := registryState(t, a); !strings.Contains(got, `b-only(valve){"site":"south"}`) {
		t.Errorf("A after import: %s", got)
	}
	if got := registryState(t, b); got != beforeB {
		t.Errorf("import changed B: %s, was %s", got, beforeB)
	}
	rep, _ = sync(true, "--direction", "export")
	if rep.Created != 2 || rep.Skipped != 0 {
		t.Errorf("export report = %+v, want 2 created", rep)
	}
	if got := registryState(t, b); !strings.Contains(got, `a-only(pump){"site":"north"}`) {
		t.Errorf("B after export: %s", got)
	}
	if rep, _ = sync(true); len(rep.Items) != 0 || rep.Unchanged != 5 {
		t.Errorf("in step: %+v, want nothing to do and 5 unchanged (2 types, 3 things)", rep)
	}

	// Both sides change a-only, A changes shared: a conflict (left alone
	// with --prefer newer) and a one-sided update.
	mustCurl(t, a, "PATCH", "/api/v1/things/a-only", `{"attributes":{"site":"west"}}`, 200)
	mustCurl(t, b, "PATCH", "/api/v1/things/a-only", `{"attributes":{"site":"east"}}`, 200)
	mustCurl(t, a, "PATCH", "/api/v1/things/shared", `{"attributes":{"fw":"2"}}`, 200)
	rep, _ = sync(true, "--direction", "both")
	if want := []string{"conflict thing a-only", "update-in-aws thing shared"}; !slices.Equal(rep.actions(), want) || rep.Conflicts != 1 || rep.Updated != 1 || rep.Failed != 0 {
		t.Errorf("both report = %+v, want %q", rep, want)
	}
	if got := registryState(t, b); !strings.Contains(got, `a-only(pump){"site":"east"}`) || !strings.Contains(got, `shared(){"fw":"2"}`) {
		t.Errorf("B after the conflicting sync: %s", got)
	}
	if got := registryState(t, a); !strings.Contains(got, `a-only(pump){"site":"west"}`) {
		t.Errorf("A after the conflicting sync: %s", got)
	}
	rep, _ = sync(true, "--direction", "both", "--prefer", "gatehouse")
	if want := []string{"update-in-aws thing a-only"}; !slices.Equal(rep.actions(), want) || rep.Conflicts != 1 || !rep.Items[0].Conflict {
		t.Errorf("prefer gatehouse report = %+v, want %q as a conflict", rep, want)
	}
	if got := registryState(t, b); !strings.Contains(got, `a-only(pump){"site":"west"}`) {
		t.Errorf("B after prefer gatehouse: %s", got)
	}
	// The changes on A were made by the sync, and audited so.
	body := mustCurl(t, a, "GET", "/api/v1/events?type=thing.created&limit=100", "", 200)
	if !strings.Contains(body, `"actor":"sync:aws-iot:`+b.URL+`/aws-iot"`) {
		t.Errorf("A's thing.created events do not name the sync as actor: %s", body)
	}

	// Deletions: reported without --prune; with it, a thing deleted on
	// one side since the last sync is deleted on the other, unless that
	// side changed it meanwhile (a conflict).
	mustCurl(t, b, "DELETE", "/api/v1/things/b-only", "", 204)
	mustCurl(t, a, "DELETE", "/api/v1/things/shared", "", 204)
	mustCurl(t, a, "DELETE", "/api/v1/things/a-only", "", 204)
	mustCurl(t, b, "PATCH", "/api/v1/things/a-only", `{"attributes":{"site":"south"}}`, 200)
	mustCurl(t, a, "POST", "/api/v1/things", `{"name":"fresh"}`, 201) // never synced
	beforeA, beforeB = registryState(t, a), registryState(t, b)
	if rep, _ = sync(true, "--direction", "import"); rep.Deleted != 0 || !slices.Equal(rep.actions(), []string{"skip thing a-only", "skip thing b-only", "skip thing fresh", "skip thing shared"}) {
		t.Errorf("without --prune: %+v, want every deletion skipped", rep)
	}
	wantPrune := []string{"conflict thing a-only", "delete-in-gatehouse thing b-only", "create-in-aws thing fresh", "delete-in-aws thing shared"}
	if rep, _ = sync(true, "--prune", "--dry-run"); !slices.Equal(rep.actions(), wantPrune) || rep.Deleted != 2 || rep.Conflicts != 1 {
		t.Errorf("--prune --dry-run report = %+v, want %q", rep, wantPrune)
	}
	if _, text := sync(false, "--prune", "--dry-run"); !strings.Contains(text, "deleted 2,") || !strings.Contains(text, "delete-in-aws") {
		t.Errorf("--prune --dry-run text report:\n%s", text)
	}
	if gotA, gotB := registryState(t, a), registryState(t, b); gotA != beforeA || gotB != beforeB {
		t.Fatalf("--prune --dry-run changed something:\nA %s\n  was %s\nB %s\n  was %s", gotA, beforeA, gotB, beforeB)
	}
	if rep, _ = sync(true, "--prune"); !slices.Equal(rep.actions(), wantPrune) || rep.Deleted != 2 || rep.Failed != 0 {
		t.Errorf("--prune report = %+v, want %q", rep, wantPrune)
	}
	if code, _ := curl(t, "GET", a.URL+"/api/v1/things/b-only", a.Token, ""); code != 404 {
		t.Errorf("b-only on A after --prune: %d, want 404", code)
	}
	if code, _ := curl(t, "GET", b.URL+"/api/v1/things/shared", b.Token, ""); code != 404 {
		t.Errorf("shared on B after --prune: %d, want 404", code)
	}
	if got := registryState(t, b); !strings.Contains(got, `a-only(pump){"site":"south"}`) || !strings.Contains(got, "fresh") {
		t.Errorf("B after --prune: %s, want a-only kept (changed there) and fresh", got)
	}
	if rep, _ = sync(true, "--prune", "--prefer", "aws"); !slices.Equal(rep.actions(), []string{"create-in-gatehouse thing a-only"}) {
		t.Errorf("--prune --prefer aws report = %+v, want a-only back in Gatehouse", rep)
	}
	if rep, _ = sync(true, "--prune"); len(rep.Items) != 0 {
		t.Errorf("after pruning, in step: %+v", rep)
	}
	body = mustCurl(t, a, "GET", "/api/v1/events?type=thing.deleted&limit=100", "", 200)
	if !strings.Contains(body, `"actor":"sync:aws-iot:`+b.URL+`/aws-iot"`) || !strings.Contains(body, "thing/b-only") {
		t.Errorf("A's thing.deleted events do not show the sync deleting b-only: %s", body)
	}

	// A revoked key is refused, and the sync says so.
	if _, errOut, err := b.cli(t, "", "aws-keys", "revoke", key.ID); err != nil {
		t.Fatalf("revoke: %v %s", err, errOut)
	}
	cmd := exec.Command(binary, "sync", "aws-iot", "--data-dir", dirA, "--endpoint", b.URL+"/aws-iot", "--region", "eu-west-1", "--access-key-id", key.ID, "--secret-access-key", key.Secret)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "UnrecognizedClientException") {
		t.Errorf("sync with a revoked key: %v\n%s", err, out)
	}
}
