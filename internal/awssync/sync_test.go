package awssync_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/gatehouse-iot/gatehouse/internal/awsiot"
	"github.com/gatehouse-iot/gatehouse/internal/awssync"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

func newRegistry(t testing.TB, dsn string) (*registry.Service, *store.Store, *events.Log) {
	t.Helper()
	env := testenv.Core(t, testenv.DSN(dsn))
	reg, s, log := env.Registry, env.Store, env.Events
	return reg, s, log
}

// remote starts a Gatehouse registry serving the AWS IoT API (the "AWS"
// side) and returns it with a real aws-sdk-go-v2 client for it.
func remote(t testing.TB) (*registry.Service, *iot.Client) {
	t.Helper()
	reg, s, log := newRegistry(t, storetest.SQLiteDSN(t))
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	keys := awsiot.NewKeys(s, log, sealer, nil, nil)
	key, secret, err := keys.Create(t.Context(), "sync", nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/aws-iot/", awsiot.New(awsiot.Config{Registry: reg, Keys: keys, Prefix: "/aws-iot"}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := iot.New(iot.Options{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL + "/aws-iot"), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(key.ID, secret, "")})
	return reg, client
}

// snapshot describes every thing of a registry: name type attrs version.
func snapshot(t *testing.T, reg *registry.Service) string {
	t.Helper()
	things, err := reg.Things(t.Context(), store.ThingFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, th := range things {
		var attrs []string
		for k, v := range th.Attributes {
			attrs = append(attrs, k+"="+v)
		}
		sort.Strings(attrs)
		lines = append(lines, fmt.Sprintf("%s(%s){%s}v%d", th.Name, th.ThingType, strings.Join(attrs, ","), th.Version))
	}
	tts, _ := reg.ThingTypes(t.Context(), store.Page{})
	for _, tt := range tts {
		lines = append(lines, "type:"+tt.Name)
	}
	return strings.Join(lines, " ")
}

func items(rep *awssync.Report) []string {
	var out []string
	for _, it := range rep.Items {
		s := it.Action + " " + it.Kind + " " + it.Name
		if it.Conflict {
			s += " (conflict)"
		}
		out = append(out, s)
	}
	return out
}

func set(t *testing.T, reg *registry.Service, name, attr, value string) {
	t.Helper()
	if _, err := reg.UpdateThing(t.Context(), name, 0, registry.ThingPatch{Attributes: map[string]*string{attr: &value}}); err != nil {
		t.Fatal(err)
	}
}

func TestSync(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			ctx := t.Context()
			local, ls, _ := newRegistry(t, d.DSN(t))
			aws, client := remote(t)
			syncer := &awssync.Syncer{Registry: local, Store: ls, Client: client}
			run := func(direction, prefer string, dry bool) *awssync.Report {
				t.Helper()
				rep, err := syncer.Run(ctx, awssync.Options{Direction: direction, Prefer: prefer, DryRun: dry, Source: "aws-iot:test"})
				if err != nil {
					t.Fatalf("Run(%s, %s, dry %v): %v", direction, prefer, dry, err)
				}
				return rep
			}
			check := func(step string, rep *awssync.Report, want []string, counts [5]int) {
				t.Helper()
				if got := items(rep); !slices.Equal(got, want) {
					t.Errorf("%s: items = %q, want %q", step, got, want)
				}
				if got := [5]int{rep.Created, rep.Updated, rep.Skipped, rep.Conflicts, rep.Failed}; got != counts {
					t.Errorf("%s: created/updated/skipped/conflicts/failed = %v, want %v", step, got, counts)
				}
			}

			must := func(_ any, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(local.CreateThingType(ctx, registry.ThingTypeSpec{Name: "pump", Description: "pumps"}))
			must(local.CreateThing(ctx, registry.NewThing{Name: "a-only", ThingType: "pump", Attributes: map[string]string{"site": "north"}}))
			must(local.CreateThing(ctx, registry.NewThing{Name: "shared", Attributes: map[string]string{"fw": "1"}}))
			must(aws.CreateThingType(ctx, registry.ThingTypeSpec{Name: "valve"}))
			must(aws.CreateThing(ctx, registry.NewThing{Name: "b-only", ThingType: "valve", Attributes: map[string]string{"site": "south"}}))
			must(aws.CreateThing(ctx, registry.NewThing{Name: "shared", Attributes: map[string]string{"fw": "1"}}))

			// A dry run reports everything and changes nothing.
			beforeL, beforeR := snapshot(t, local), snapshot(t, aws)
			rep := run(awssync.Both, awssync.PreferNewer, true)
			check("dry run", rep, []string{"create-in-aws thingType pump", "create-in-gatehouse thingType valve", "create-in-aws thing a-only", "create-in-gatehouse thing b-only"}, [5]int{4, 0, 0, 0, 0})
			if rep.Unchanged != 1 || !rep.DryRun {
				t.Errorf("dry run: unchanged %d dryRun %v, want 1 true", rep.Unchanged, rep.DryRun)
			}
			if l, r := snapshot(t, local), snapshot(t, aws); l != beforeL || r != beforeR {
				t.Errorf("dry run changed the registries:\n local %s\n  was  %s\n aws   %s\n  was  %s", l, beforeL, r, beforeR)
			}
			if st, _ := ls.ListSyncState(ctx, "aws-iot:test"); len(st) != 0 {
				t.Errorf("dry run recorded sync state %v", st)
			}

			check("import", run(awssync.Import, awssync.PreferNewer, false),
				[]string{"skip thingType pump", "create-in-gatehouse thingType valve", "skip thing a-only", "create-in-gatehouse thing b-only"}, [5]int{2, 0, 2, 0, 0})
			if got := snapshot(t, local); !strings.Contains(got, "b-only(valve){site=south}v1") {
				t.Errorf("after import local = %s", got)
			}
			check("export", run(awssync.Export, awssync.PreferNewer, false),
				[]string{"create-in-aws thingType pump", "create-in-aws thing a-only"}, [5]int{2, 0, 0, 0, 0})
			if got := snapshot(t, aws); !strings.Contains(got, "a-only(pump){site=north}v1") || !strings.Contains(got, "type:pump") {
				t.Errorf("after export aws = %s", got)
			}
			check("in step", run(awssync.Both, awssync.PreferNewer, false), nil, [5]int{})

			// A change on exactly one side wins.
			set(t, local, "shared", "fw", "2")
			set(t, aws, "b-only", "site", "east")
			check("one-sided changes", run(awssync.Both, awssync.PreferNewer, false),
				[]string{"update-in-gatehouse thing b-only", "update-in-aws thing shared"}, [5]int{0, 2, 0, 0, 0})
			if l, r := snapshot(t, local), snapshot(t, aws); !strings.Contains(l, "b-only(valve){site=east}") || !strings.Contains(r, "shared(){fw=2}") {
				t.Errorf("after one-sided sync:\n local %s\n aws   %s", l, r)
			}
			check("in step again", run(awssync.Both, awssync.PreferNewer, false), nil, [5]int{})

			// A change the direction does not carry is skipped.
			set(t, local, "shared", "fw", "3")
			check("direction", run(awssync.Import, awssync.PreferNewer, false), []string{"skip thing shared"}, [5]int{0, 0, 1, 0, 0})

			// Changes on both sides are a conflict: reported and left alone
			// with --prefer newer, resolved by --prefer aws.
			set(t, local, "a-only", "site", "west")
			set(t, aws, "a-only", "site", "east")
			beforeL = snapshot(t, local)
			rep = run(awssync.Both, awssync.PreferNewer, false)
			check("conflict", rep, []string{"conflict thing a-only (conflict)", "update-in-aws thing shared"}, [5]int{0, 1, 1, 1, 0})
			if l := snapshot(t, local); l != beforeL {
				t.Errorf("unresolved conflict changed local: %s, was %s", l, beforeL)
			}
			if !strings.Contains(rep.Items[0].Reason, "--prefer") {
				t.Errorf("conflict reason %q does not say how to resolve it", rep.Items[0].Reason)
			}
			check("prefer aws", run(awssync.Both, awssync.PreferAWS, false), []string{"update-in-gatehouse thing a-only (conflict)"}, [5]int{0, 1, 0, 1, 0})
			if l := snapshot(t, local); !strings.Contains(l, "a-only(pump){site=east}") {
				t.Errorf("after prefer aws local = %s", l)
			}
			set(t, local, "a-only", "site", "up")
			set(t, aws, "a-only", "site", "down")
			check("prefer gatehouse", run(awssync.Both, awssync.PreferGatehouse, false), []string{"update-in-aws thing a-only (conflict)"}, [5]int{0, 1, 0, 1, 0})
			if r := snapshot(t, aws); !strings.Contains(r, "a-only(pump){site=up}") {
				t.Errorf("after prefer gatehouse aws = %s", r)
			}
			check("finally in step", run(awssync.Both, awssync.PreferNewer, false), nil, [5]int{})

			// Changes are recorded as made by the sync.
			evs, _ := ls.ListEvents(ctx, store.EventFilter{Type: "thing.updated", Actor: "sync:aws-iot:test", Limit: 100})
			if len(evs) == 0 {
				t.Error("no thing.updated events with actor sync:aws-iot:test")
			}
			if _, err := syncer.Run(ctx, awssync.Options{Direction: "sideways", Prefer: "newer", Source: "x"}); err == nil {
				t.Error("bad direction accepted")
			}
		})
	}
}

// TestPrune: with Prune, a thing synced before and deleted on one side is
// deleted on the other unless that side changed since (a conflict, which
// --prefer resolves); a thing never synced is never deleted; a dry run
// reports and changes nothing; without Prune deletions are only reported.
func TestPrune(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			ctx := t.Context()
			local, ls, _ := newRegistry(t, d.DSN(t))
			aws, client := remote(t)
			syncer := &awssync.Syncer{Registry: local, Store: ls, Client: client}
			run := func(step, direction, prefer string, dry, prune bool, want []string, deleted int) *awssync.Report {
				t.Helper()
				rep, err := syncer.Run(ctx, awssync.Options{Direction: direction, Prefer: prefer, DryRun: dry, Prune: prune, Source: "aws-iot:test"})
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				if got := items(rep); !slices.Equal(got, want) {
					t.Errorf("%s: items = %q, want %q", step, got, want)
				}
				if rep.Deleted != deleted || rep.Failed != 0 {
					t.Errorf("%s: deleted %d failed %d, want %d 0", step, rep.Deleted, rep.Failed, deleted)
				}
				return rep
			}
			for _, name := range []string{"both-gone", "changed-in-aws", "changed-in-gh", "gone-in-aws", "gone-in-gh", "stay"} {
				if _, err := local.CreateThing(ctx, registry.NewThing{Name: name, Attributes: map[string]string{"fw": "1"}}); err != nil {
					t.Fatal(err)
				}
			}
			run("first sync", awssync.Both, awssync.PreferNewer, false, true, []string{
				"create-in-aws thing both-gone", "create-in-aws thing changed-in-aws", "create-in-aws thing changed-in-gh",
				"create-in-aws thing gone-in-aws", "create-in-aws thing gone-in-gh", "create-in-aws thing stay"}, 0)

			del := func(reg *registry.Service, name string) {
				t.Helper()
				if err := reg.DeleteThing(ctx, name, 0); err != nil {
					t.Fatal(err)
				}
			}
			del(local, "both-gone")
			del(aws, "both-gone")
			del(local, "gone-in-gh")
			del(aws, "gone-in-aws")
			del(local, "changed-in-aws")
			set(t, aws, "changed-in-aws", "fw", "2")
			del(aws, "changed-in-gh")
			set(t, local, "changed-in-gh", "fw", "2")
			// Never synced: created in AWS after the last sync; and one only
			// in Gatehouse that an import does not carry.
			if _, err := aws.CreateThing(ctx, registry.NewThing{Name: "new-in-aws"}); err != nil {
				t.Fatal(err)
			}
			if _, err := local.CreateThing(ctx, registry.NewThing{Name: "new-in-gh"}); err != nil {
				t.Fatal(err)
			}

			// Without --prune: reported, nothing deleted.
			run("no prune", awssync.Import, awssync.PreferNewer, true, false, []string{"skip thing changed-in-aws", "skip thing changed-in-gh",
				"skip thing gone-in-aws", "skip thing gone-in-gh", "create-in-gatehouse thing new-in-aws", "skip thing new-in-gh"}, 0)

			// A dry run shows the deletions and changes nothing.
			beforeL, beforeR := snapshot(t, local), snapshot(t, aws)
			want := []string{"conflict thing changed-in-aws (conflict)", "conflict thing changed-in-gh (conflict)",
				"delete-in-gatehouse thing gone-in-aws", "delete-in-aws thing gone-in-gh", "create-in-gatehouse thing new-in-aws", "create-in-aws thing new-in-gh"}
			run("dry run", awssync.Both, awssync.PreferNewer, true, true, want, 2)
			if l, r := snapshot(t, local), snapshot(t, aws); l != beforeL || r != beforeR {
				t.Errorf("dry run changed the registries:\n local %s\n  was  %s\n aws   %s\n  was  %s", l, beforeL, r, beforeR)
			}

			// Import only: deletions in AWS reach Gatehouse, not the other way.
			run("import", awssync.Import, awssync.PreferNewer, false, true, []string{"conflict thing changed-in-aws (conflict)", "conflict thing changed-in-gh (conflict)",
				"delete-in-gatehouse thing gone-in-aws", "skip thing gone-in-gh", "create-in-gatehouse thing new-in-aws", "skip thing new-in-gh"}, 1)
			if _, err := local.Thing(ctx, "gone-in-aws"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("gone-in-aws in Gatehouse: %v, want deleted", err)
			}
			if _, err := local.Thing(ctx, "new-in-gh"); err != nil {
				t.Errorf("a thing never synced was touched: %v", err)
			}
			run("both", awssync.Both, awssync.PreferNewer, false, true, []string{"conflict thing changed-in-aws (conflict)", "conflict thing changed-in-gh (conflict)",
				"delete-in-aws thing gone-in-gh", "create-in-aws thing new-in-gh"}, 1)
			if _, err := aws.Thing(ctx, "gone-in-gh"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("gone-in-gh in AWS: %v, want deleted", err)
			}

			// --prefer gatehouse: the deletion in Gatehouse wins over the
			// change in AWS, the change in Gatehouse over the deletion in AWS.
			run("prefer gatehouse", awssync.Both, awssync.PreferGatehouse, false, true, []string{"delete-in-aws thing changed-in-aws (conflict)",
				"create-in-aws thing changed-in-gh (conflict)"}, 1)
			if got := snapshot(t, aws); strings.Contains(got, "changed-in-aws") || !strings.Contains(got, "changed-in-gh(){fw=2}") {
				t.Errorf("after prefer gatehouse aws = %s", got)
			}
			run("in step", awssync.Both, awssync.PreferNewer, false, true, nil, 0)
			if st, _ := ls.ListSyncState(ctx, "aws-iot:test"); len(st) != 4 {
				t.Errorf("sync state after pruning = %v, want changed-in-gh, new-in-aws, new-in-gh, stay", st)
			}

			// --prefer aws the other way round: a change in AWS brings a
			// thing deleted in Gatehouse back.
			del(local, "stay")
			set(t, aws, "stay", "fw", "9")
			run("prefer aws", awssync.Both, awssync.PreferAWS, false, true, []string{"create-in-gatehouse thing stay (conflict)"}, 0)
			if got := snapshot(t, local); !strings.Contains(got, "stay(){fw=9}") {
				t.Errorf("after prefer aws local = %s", got)
			}
			evs, _ := ls.ListEvents(ctx, store.EventFilter{Type: "thing.deleted", Actor: "sync:aws-iot:test", Limit: 100})
			if len(evs) != 1 || evs[0].Subject != "thing/gone-in-aws" {
				t.Errorf("thing.deleted events by the sync = %+v, want gone-in-aws", evs)
			}
		})
	}
}
