// Package awssync keeps Gatehouse's registry and an AWS IoT registry (or
// any server speaking its API, such as another Gatehouse's internal/awsiot)
// in step: thing types, thing names, their types and attributes, in either
// or both directions.
//
// It exists because fleets move between and straddle the two: devices
// provisioned in AWS IoT are managed in Gatehouse and vice versa. A sync
// state table remembers what both sides agreed on last (remote version,
// local version, content hash), so a change on exactly one side wins and
// a change on both sides is reported as a conflict, resolved only by an
// explicit preference.
package awssync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// IoT is the part of the AWS IoT API the sync uses; *iot.Client is one.
type IoT interface {
	ListThings(ctx context.Context, in *iot.ListThingsInput, opts ...func(*iot.Options)) (*iot.ListThingsOutput, error)
	DescribeThing(ctx context.Context, in *iot.DescribeThingInput, opts ...func(*iot.Options)) (*iot.DescribeThingOutput, error)
	CreateThing(ctx context.Context, in *iot.CreateThingInput, opts ...func(*iot.Options)) (*iot.CreateThingOutput, error)
	UpdateThing(ctx context.Context, in *iot.UpdateThingInput, opts ...func(*iot.Options)) (*iot.UpdateThingOutput, error)
	DeleteThing(ctx context.Context, in *iot.DeleteThingInput, opts ...func(*iot.Options)) (*iot.DeleteThingOutput, error)
	ListThingTypes(ctx context.Context, in *iot.ListThingTypesInput, opts ...func(*iot.Options)) (*iot.ListThingTypesOutput, error)
	CreateThingType(ctx context.Context, in *iot.CreateThingTypeInput, opts ...func(*iot.Options)) (*iot.CreateThingTypeOutput, error)
}

// Directions and preferences.
const (
	Import = "import" // AWS -> Gatehouse
	Export = "export" // Gatehouse -> AWS
	Both   = "both"

	PreferGatehouse = "gatehouse"
	PreferAWS       = "aws"
	PreferNewer     = "newer"
)

// Options select what a Run does.
type Options struct {
	Direction string
	Prefer    string
	DryRun    bool
	// Prune propagates deletions of things: a thing synced before (it has
	// a sync state) and now missing on one side is deleted on the other,
	// if that side did not change since the last sync (else it is a
	// conflict, resolved by Prefer). A thing never synced is never
	// deleted. Off, deletions are only reported.
	Prune bool
	// Source names the remote registry in the sync state, e.g.
	// "aws-iot:https://iot.eu-west-1.amazonaws.com".
	Source string
}

// Actions an item can get.
const (
	ActCreateLocal  = "create-in-gatehouse"
	ActCreateRemote = "create-in-aws"
	ActUpdateLocal  = "update-in-gatehouse"
	ActUpdateRemote = "update-in-aws"
	ActDeleteLocal  = "delete-in-gatehouse"
	ActDeleteRemote = "delete-in-aws"
	ActSkip         = "skip"
	ActConflict     = "conflict"
	ActFailed       = "failed"
)

// Item is what the sync did (or, in a dry run, would do) to one record.
type Item struct {
	Kind   string `json:"kind"` // thing or thingType
	Name   string `json:"name"`
	Action string `json:"action"`
	// Conflict is set when both sides changed since the last sync.
	Conflict bool   `json:"conflict,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Report sums up a Run.
type Report struct {
	Source    string `json:"source"`
	Direction string `json:"direction"`
	Prefer    string `json:"prefer"`
	DryRun    bool   `json:"dryRun"`
	Prune     bool   `json:"prune"`
	Created   int    `json:"created"`
	Updated   int    `json:"updated"`
	Deleted   int    `json:"deleted"`
	Skipped   int    `json:"skipped"`
	Conflicts int    `json:"conflicts"`
	Failed    int    `json:"failed"`
	Unchanged int    `json:"unchanged"`
	// Items lists every record that was not already in step.
	Items []Item `json:"items"`
}

func (r *Report) add(it Item) {
	switch it.Action {
	case ActCreateLocal, ActCreateRemote:
		r.Created++
	case ActUpdateLocal, ActUpdateRemote:
		r.Updated++
	case ActDeleteLocal, ActDeleteRemote:
		r.Deleted++
	case ActSkip, ActConflict:
		r.Skipped++
	case ActFailed:
		r.Failed++
	}
	if it.Conflict {
		r.Conflicts++
	}
	r.Items = append(r.Items, it)
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing was changed)"
	}
	var b strings.Builder
	prune := ""
	if r.Prune {
		prune = ", prune"
	}
	fmt.Fprintf(&b, "sync %s, direction %s, prefer %s%s%s\n", r.Source, r.Direction, r.Prefer, prune, mode)
	for _, it := range r.Items {
		line := fmt.Sprintf("  %-20s %-10s %s", it.Action, it.Kind, it.Name)
		if it.Conflict {
			line += " [conflict]"
		}
		if it.Reason != "" {
			line += ": " + it.Reason
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "created %d, updated %d, deleted %d, skipped %d, conflicts %d, failed %d, unchanged %d\n",
		r.Created, r.Updated, r.Deleted, r.Skipped, r.Conflicts, r.Failed, r.Unchanged)
	_, err := io.WriteString(w, b.String())
	return err
}

// Syncer runs synchronizations between a registry and an AWS IoT API.
type Syncer struct {
	Registry *registry.Service
	Store    *store.Store
	Client   IoT
	Now      func() time.Time
}

// content is what is synced of a thing.
type content struct {
	Type  string            `json:"type"`
	Attrs map[string]string `json:"attrs"`
}

// hash is a stable digest of c (encoding/json sorts map keys).
func (c content) hash() string {
	if c.Attrs == nil {
		c.Attrs = map[string]string{}
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type remoteThing struct {
	content
	version int64
}

type localThing struct {
	content
	version int64
}

// Run synchronizes once. Per-item failures are reported, not returned;
// the error is for failures that stop the whole run (listing either side,
// invalid options).
func (s *Syncer) Run(ctx context.Context, o Options) (*Report, error) {
	switch o.Direction {
	case Import, Export, Both:
	default:
		return nil, fmt.Errorf("awssync: direction %q: want import, export or both", o.Direction)
	}
	switch o.Prefer {
	case PreferGatehouse, PreferAWS, PreferNewer:
	default:
		return nil, fmt.Errorf("awssync: prefer %q: want gatehouse, aws or newer", o.Prefer)
	}
	if o.Source == "" {
		return nil, errors.New("awssync: no source name for the sync state")
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	ctx = events.WithActor(ctx, "sync:"+o.Source)
	rep := &Report{Source: o.Source, Direction: o.Direction, Prefer: o.Prefer, DryRun: o.DryRun, Prune: o.Prune, Items: []Item{}}
	if err := s.syncTypes(ctx, o, rep); err != nil {
		return nil, err
	}
	if err := s.syncThings(ctx, o, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func (o Options) mayImport() bool { return o.Direction == Import || o.Direction == Both }
func (o Options) mayExport() bool { return o.Direction == Export || o.Direction == Both }

func (s *Syncer) syncTypes(ctx context.Context, o Options, rep *Report) error {
	remote := map[string]string{} // name -> description
	var token *string
	for {
		out, err := s.Client.ListThingTypes(ctx, &iot.ListThingTypesInput{NextToken: token, MaxResults: aws.Int32(250)})
		if err != nil {
			return fmt.Errorf("awssync: list AWS thing types: %w", err)
		}
		for _, tt := range out.ThingTypes {
			desc := ""
			if tt.ThingTypeProperties != nil {
				desc = aws.ToString(tt.ThingTypeProperties.ThingTypeDescription)
			}
			remote[aws.ToString(tt.ThingTypeName)] = desc
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		token = out.NextToken
	}
	local := map[string]store.ThingType{}
	for after := ""; ; {
		tts, err := s.Registry.ThingTypes(ctx, store.Page{After: after, Limit: 1000})
		if err != nil {
			return fmt.Errorf("awssync: list thing types: %w", err)
		}
		for _, tt := range tts {
			local[tt.Name] = tt
		}
		if len(tts) < 1000 {
			break
		}
		after = tts[len(tts)-1].Name
	}
	for _, name := range unionKeys(remote, local) {
		desc, inRemote := remote[name]
		tt, inLocal := local[name]
		switch {
		case inRemote && inLocal:
			rep.Unchanged++
		case inRemote && !o.mayImport():
			rep.add(Item{Kind: "thingType", Name: name, Action: ActSkip, Reason: "only in AWS; direction is " + o.Direction})
		case inRemote:
			it := Item{Kind: "thingType", Name: name, Action: ActCreateLocal}
			if !o.DryRun {
				if _, err := s.Registry.CreateThingType(ctx, registry.ThingTypeSpec{Name: name, Description: desc}); err != nil {
					it.Action, it.Reason = ActFailed, err.Error()
				}
			}
			rep.add(it)
		case !o.mayExport():
			rep.add(Item{Kind: "thingType", Name: name, Action: ActSkip, Reason: "only in Gatehouse; direction is " + o.Direction})
		default:
			it := Item{Kind: "thingType", Name: name, Action: ActCreateRemote}
			if !o.DryRun {
				in := &iot.CreateThingTypeInput{ThingTypeName: aws.String(name)}
				var attrs []string
				for _, a := range tt.AttributeSchema {
					attrs = append(attrs, a.Name)
				}
				if tt.Description != "" || len(attrs) > 0 {
					in.ThingTypeProperties = &types.ThingTypeProperties{SearchableAttributes: attrs}
					if tt.Description != "" {
						in.ThingTypeProperties.ThingTypeDescription = aws.String(tt.Description)
					}
				}
				if _, err := s.Client.CreateThingType(ctx, in); err != nil {
					it.Action, it.Reason = ActFailed, err.Error()
				}
			}
			rep.add(it)
		}
	}
	return nil
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Syncer) syncThings(ctx context.Context, o Options, rep *Report) error {
	remote := map[string]remoteThing{}
	var token *string
	for {
		out, err := s.Client.ListThings(ctx, &iot.ListThingsInput{NextToken: token, MaxResults: aws.Int32(250)})
		if err != nil {
			return fmt.Errorf("awssync: list AWS things: %w", err)
		}
		for _, t := range out.Things {
			remote[aws.ToString(t.ThingName)] = remoteThing{content{aws.ToString(t.ThingTypeName), nonNil(t.Attributes)}, t.Version}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		token = out.NextToken
	}
	local := map[string]localThing{}
	for after := ""; ; {
		things, err := s.Registry.Things(ctx, store.ThingFilter{Page: store.Page{After: after, Limit: 1000}})
		if err != nil {
			return fmt.Errorf("awssync: list things: %w", err)
		}
		for _, t := range things {
			local[t.Name] = localThing{content{t.ThingType, nonNil(t.Attributes)}, t.Version}
		}
		if len(things) < 1000 {
			break
		}
		after = things[len(things)-1].Name
	}
	states, err := s.Store.ListSyncState(ctx, o.Source)
	if err != nil {
		return fmt.Errorf("awssync: %w", err)
	}
	for _, name := range unionKeys(remote, local) {
		r, inRemote := remote[name]
		l, inLocal := local[name]
		st, known := states["thing/"+name]
		it := Item{Kind: "thing", Name: name}
		switch {
		case inRemote && inLocal:
			s.reconcile(ctx, o, rep, name, r, l, st, known)
			continue
		case inRemote && known && o.Prune:
			s.pruneRemote(ctx, o, rep, name, r, st)
			continue
		case inRemote && known:
			it.Action, it.Reason = ActSkip, "deleted in Gatehouse since the last sync; not deleted in AWS (--prune deletes it)"
		case inRemote && !o.mayImport():
			it.Action, it.Reason = ActSkip, "only in AWS; direction is "+o.Direction
		case inRemote:
			it.Action = ActCreateLocal
			if !o.DryRun {
				if err := s.pull(ctx, o, name, r, nil); err != nil {
					it.Action, it.Reason = ActFailed, err.Error()
				}
			}
		case known && o.Prune:
			s.pruneLocal(ctx, o, rep, name, l, st)
			continue
		case known:
			it.Action, it.Reason = ActSkip, "deleted in AWS since the last sync; not deleted in Gatehouse (--prune deletes it)"
		case !o.mayExport():
			it.Action, it.Reason = ActSkip, "only in Gatehouse; direction is "+o.Direction
		default:
			it.Action = ActCreateRemote
			if !o.DryRun {
				if err := s.push(ctx, o, name, l, nil); err != nil {
					it.Action, it.Reason = ActFailed, err.Error()
				}
			}
		}
		rep.add(it)
	}
	if o.Prune && !o.DryRun {
		// Deleted on both sides: nothing left to agree on.
		for key, st := range states {
			_, inRemote := remote[st.Name]
			_, inLocal := local[st.Name]
			if st.Kind == "thing" && key == "thing/"+st.Name && !inRemote && !inLocal {
				if err := s.Store.DeleteSyncState(ctx, o.Source, "thing", st.Name); err != nil {
					return fmt.Errorf("awssync: %w", err)
				}
			}
		}
	}
	return nil
}

// reconcile decides a thing present on both sides.
func (s *Syncer) reconcile(ctx context.Context, o Options, rep *Report, name string, r remoteThing, l localThing, st store.SyncState, known bool) {
	rh, lh := r.hash(), l.hash()
	if rh == lh {
		rep.Unchanged++
		if !o.DryRun && (!known || st.Hash != lh || st.RemoteVersion != r.version || st.LocalVersion != l.version) {
			_ = s.Store.PutSyncState(ctx, store.SyncState{Source: o.Source, Kind: "thing", Name: name, RemoteVersion: r.version, LocalVersion: l.version, Hash: lh, SyncedAt: s.Now().UTC()})
		}
		return
	}
	// A side changed if its version moved and its content differs from
	// what was last agreed. Without a record both count as changed.
	remoteChanged := !known || (r.version != st.RemoteVersion && rh != st.Hash)
	localChanged := !known || (l.version != st.LocalVersion && lh != st.Hash)
	if !remoteChanged && !localChanged {
		// Versions did not move but contents differ from each other: the
		// record is stale (e.g. restored database); treat as both changed.
		remoteChanged, localChanged = true, true
	}
	it := Item{Kind: "thing", Name: name, Conflict: remoteChanged && localChanged}
	pull := remoteChanged && !localChanged
	if it.Conflict {
		switch o.Prefer {
		case PreferAWS:
			pull = true
			it.Reason = "changed on both sides; AWS preferred"
		case PreferGatehouse:
			it.Reason = "changed on both sides; Gatehouse preferred"
		default:
			it.Action = ActConflict
			if known {
				it.Reason = "changed on both sides since the last sync; rerun with --prefer gatehouse or --prefer aws"
			} else {
				it.Reason = "differs and was never synced; rerun with --prefer gatehouse or --prefer aws"
			}
			rep.add(it)
			return
		}
	}
	switch {
	case pull && !o.mayImport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "AWS side wins but direction is "+o.Direction)
	case pull:
		it.Action = ActUpdateLocal
		if !o.DryRun {
			if err := s.pull(ctx, o, name, r, &l); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	case !o.mayExport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "Gatehouse side wins but direction is "+o.Direction)
	default:
		it.Action = ActUpdateRemote
		if !o.DryRun {
			if err := s.push(ctx, o, name, l, &r); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	}
	rep.add(it)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// pull writes the AWS version of a thing into Gatehouse (creating it when
// old is nil) and records the agreed state.
func (s *Syncer) pull(ctx context.Context, o Options, name string, r remoteThing, old *localThing) error {
	var (
		th  *store.Thing
		err error
	)
	if old == nil {
		th, err = s.Registry.CreateThing(ctx, registry.NewThing{Name: name, ThingType: r.Type, Attributes: r.Attrs})
	} else {
		attrs := map[string]*string{}
		for k, v := range r.Attrs {
			attrs[k] = &v
		}
		merge := false
		typ := r.Type
		th, err = s.Registry.UpdateThing(ctx, name, old.version, registry.ThingPatch{ThingType: &typ, Attributes: attrs, Merge: &merge})
	}
	if err != nil {
		return err
	}
	return s.Store.PutSyncState(ctx, store.SyncState{Source: o.Source, Kind: "thing", Name: name, RemoteVersion: r.version, LocalVersion: th.Version,
		Hash: content{th.ThingType, th.Attributes}.hash(), SyncedAt: s.Now().UTC()})
}

// push writes the Gatehouse version of a thing to AWS (creating it when
// old is nil), reads back its version and records the agreed state.
func (s *Syncer) push(ctx context.Context, o Options, name string, l localThing, old *remoteThing) error {
	if old == nil {
		in := &iot.CreateThingInput{ThingName: aws.String(name), AttributePayload: &types.AttributePayload{Attributes: l.Attrs}}
		if l.Type != "" {
			in.ThingTypeName = aws.String(l.Type)
		}
		if _, err := s.Client.CreateThing(ctx, in); err != nil {
			return err
		}
	} else {
		attrs := map[string]string{}
		for k, v := range l.Attrs {
			attrs[k] = v
		}
		// merge=false replaces every attribute with the given ones.
		in := &iot.UpdateThingInput{ThingName: aws.String(name), ExpectedVersion: aws.Int64(old.version),
			AttributePayload: &types.AttributePayload{Attributes: attrs, Merge: false}}
		switch {
		case l.Type != "":
			if l.Type != old.Type {
				in.ThingTypeName = aws.String(l.Type)
			}
		case old.Type != "":
			in.RemoveThingType = true
		}
		if _, err := s.Client.UpdateThing(ctx, in); err != nil {
			return err
		}
	}
	d, err := s.Client.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String(name)})
	if err != nil {
		return err
	}
	return s.Store.PutSyncState(ctx, store.SyncState{Source: o.Source, Kind: "thing", Name: name, RemoteVersion: d.Version, LocalVersion: l.version,
		Hash: content{aws.ToString(d.ThingTypeName), nonNil(d.Attributes)}.hash(), SyncedAt: s.Now().UTC()})
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// pruneRemote decides a thing synced before that is gone from Gatehouse
// but still in AWS: it is deleted in AWS (with the version just read as
// expectedVersion, so a change made meanwhile stops the deletion) unless
// AWS changed it since the last sync (its version or its content is not
// the recorded one: deleting is decided conservatively); that is a
// conflict, which --prefer gatehouse
// resolves by deleting and --prefer aws by creating it in Gatehouse again.
func (s *Syncer) pruneRemote(ctx context.Context, o Options, rep *Report, name string, r remoteThing, st store.SyncState) {
	it := Item{Kind: "thing", Name: name, Conflict: r.version != st.RemoteVersion || r.hash() != st.Hash}
	del := !it.Conflict
	if it.Conflict {
		switch o.Prefer {
		case PreferGatehouse:
			del, it.Reason = true, "deleted in Gatehouse and changed in AWS since the last sync; Gatehouse preferred"
		case PreferAWS:
			it.Reason = "deleted in Gatehouse and changed in AWS since the last sync; AWS preferred"
		default:
			it.Action, it.Reason = ActConflict, "deleted in Gatehouse but changed in AWS since the last sync; rerun with --prefer gatehouse (delete) or --prefer aws (keep)"
			rep.add(it)
			return
		}
	}
	switch {
	case del && !o.mayExport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "deleted in Gatehouse since the last sync but direction is "+o.Direction)
	case del:
		it.Action = ActDeleteRemote
		if it.Reason == "" {
			it.Reason = "deleted in Gatehouse since the last sync"
		}
		if !o.DryRun {
			if _, err := s.Client.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String(name), ExpectedVersion: aws.Int64(r.version)}); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			} else if err := s.Store.DeleteSyncState(ctx, o.Source, "thing", name); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	case !o.mayImport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "AWS side wins but direction is "+o.Direction)
	default:
		it.Action = ActCreateLocal
		if !o.DryRun {
			if err := s.pull(ctx, o, name, r, nil); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	}
	rep.add(it)
}

// pruneLocal is pruneRemote the other way round: a thing synced before
// that is gone from AWS is deleted in Gatehouse (if its version is still
// the one read) unless Gatehouse changed it since the last sync.
func (s *Syncer) pruneLocal(ctx context.Context, o Options, rep *Report, name string, l localThing, st store.SyncState) {
	it := Item{Kind: "thing", Name: name, Conflict: l.version != st.LocalVersion || l.hash() != st.Hash}
	del := !it.Conflict
	if it.Conflict {
		switch o.Prefer {
		case PreferAWS:
			del, it.Reason = true, "deleted in AWS and changed in Gatehouse since the last sync; AWS preferred"
		case PreferGatehouse:
			it.Reason = "deleted in AWS and changed in Gatehouse since the last sync; Gatehouse preferred"
		default:
			it.Action, it.Reason = ActConflict, "deleted in AWS but changed in Gatehouse since the last sync; rerun with --prefer aws (delete) or --prefer gatehouse (keep)"
			rep.add(it)
			return
		}
	}
	switch {
	case del && !o.mayImport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "deleted in AWS since the last sync but direction is "+o.Direction)
	case del:
		it.Action = ActDeleteLocal
		if it.Reason == "" {
			it.Reason = "deleted in AWS since the last sync"
		}
		if !o.DryRun {
			if err := s.Registry.DeleteThing(ctx, name, l.version); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			} else if err := s.Store.DeleteSyncState(ctx, o.Source, "thing", name); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	case !o.mayExport():
		it.Action, it.Reason = ActSkip, join(it.Reason, "Gatehouse side wins but direction is "+o.Direction)
	default:
		it.Action = ActCreateRemote
		if !o.DryRun {
			if err := s.push(ctx, o, name, l, nil); err != nil {
				it.Action, it.Reason = ActFailed, join(it.Reason, err.Error())
			}
		}
	}
	rep.add(it)
}
