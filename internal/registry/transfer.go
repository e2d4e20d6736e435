package registry

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/jsonbody"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// DumpFormat names the JSON export format and its version.
const DumpFormat = "gatehouse-registry/1"

// Dump is the registry as exported and imported: thing types, things,
// users (never their passwords), groups with members and relationships.
type Dump struct {
	Format        string             `json:"format"`
	ThingTypes    []DumpThingType    `json:"thingTypes"`
	Things        []DumpThing        `json:"things"`
	Users         []DumpUser         `json:"users"`
	Groups        []DumpGroup        `json:"groups"`
	Relationships []DumpRelationship `json:"relationships"`
}

// DumpThingType is a thing type in a Dump. Row is the CSV line it came
// from (0 for JSON).
type DumpThingType struct {
	ThingTypeSpec
	Row int `json:"-"`
}

// DumpThing is a thing in a Dump.
type DumpThing struct {
	Name       string            `json:"name"`
	ThingType  string            `json:"thingType,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	State      string            `json:"state,omitempty"`
	Row        int               `json:"-"`
}

// DumpUser is a user in a Dump, without credentials.
type DumpUser struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"displayName,omitempty"`
	Email       string   `json:"email,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Disabled    bool     `json:"disabled,omitempty"`
	Row         int      `json:"-"`
}

// DumpGroup is a group with its members in a Dump.
type DumpGroup struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Members     []DumpMember `json:"members,omitempty"`
	Row         int          `json:"-"`
}

// DumpMember is one member of a group.
type DumpMember struct {
	Kind   string `json:"kind"`
	Member string `json:"member"`
}

// DumpRelationship is a relationship in a Dump.
type DumpRelationship struct {
	SubjectKind string    `json:"subjectKind"`
	Subject     string    `json:"subject"`
	Relation    string    `json:"relation"`
	ObjectKind  string    `json:"objectKind"`
	Object      string    `json:"object"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
	Row         int       `json:"-"`
}

// Export reads the whole registry, ordered by name.
func (s *Service) Export(ctx context.Context) (*Dump, error) {
	d := &Dump{Format: DumpFormat, ThingTypes: []DumpThingType{}, Things: []DumpThing{}, Users: []DumpUser{}, Groups: []DumpGroup{}, Relationships: []DumpRelationship{}}
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		for after := ""; ; {
			tts, err := tx.ListThingTypes(ctx, store.Page{After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, tt := range tts {
				d.ThingTypes = append(d.ThingTypes, DumpThingType{ThingTypeSpec: ThingTypeSpec{Name: tt.Name, Description: tt.Description,
					AttributeSchema: tt.AttributeSchema, DefaultPolicies: tt.DefaultPolicies, AuthMethods: tt.AuthMethods, Scopes: tt.Scopes, ScopeDescriptions: tt.ScopeDescriptions, ApproverRelation: tt.ApproverRelation, KeyAlgorithm: tt.KeyAlgorithm}})
			}
			if len(tts) < 1000 {
				break
			}
			after = tts[len(tts)-1].Name
		}
		for after := ""; ; {
			things, err := tx.ListThings(ctx, store.ThingFilter{Page: store.Page{After: after, Limit: 1000}})
			if err != nil {
				return err
			}
			for _, t := range things {
				d.Things = append(d.Things, DumpThing{Name: t.Name, ThingType: t.ThingType, Attributes: t.Attributes, State: t.State})
			}
			if len(things) < 1000 {
				break
			}
			after = things[len(things)-1].Name
		}
		for after := ""; ; {
			users, err := tx.ListUsers(ctx, store.Page{After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, u := range users {
				d.Users = append(d.Users, DumpUser{Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, Roles: u.Roles, Disabled: u.Disabled})
			}
			if len(users) < 1000 {
				break
			}
			after = users[len(users)-1].Username
		}
		for after := ""; ; {
			groups, err := tx.ListGroups(ctx, store.Page{After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, g := range groups {
				ms, err := tx.ListGroupMembers(ctx, g.Name)
				if err != nil {
					return err
				}
				dg := DumpGroup{Name: g.Name, Description: g.Description}
				for _, m := range ms {
					dg.Members = append(dg.Members, DumpMember{Kind: m.Kind, Member: m.Member})
				}
				d.Groups = append(d.Groups, dg)
			}
			if len(groups) < 1000 {
				break
			}
			after = groups[len(groups)-1].Name
		}
		rels, err := tx.ListRelationships(ctx, store.RelationshipFilter{At: s.now()})
		if err != nil {
			return err
		}
		for _, r := range rels {
			d.Relationships = append(d.Relationships, DumpRelationship{SubjectKind: r.SubjectKind, Subject: r.Subject, Relation: r.Relation,
				ObjectKind: r.ObjectKind, Object: r.Object, ExpiresAt: r.ExpiresAt})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: export: %w", err)
	}
	return d, nil
}

// ImportItem is one record an import created or changed.
type ImportItem struct {
	Row    string `json:"row"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"` // created, updated
}

// ImportReport says what an import did (or, in a dry run, would do).
type ImportReport struct {
	DryRun    bool         `json:"dryRun"`
	Created   int          `json:"created"`
	Updated   int          `json:"updated"`
	Unchanged int          `json:"unchanged"`
	Items     []ImportItem `json:"items"`
	// Message is a one-line summary, e.g. "nothing to change".
	Message string `json:"message"`
}

// errDryRun rolls a dry-run import back.
var errDryRun = errors.New("dry run")

// rowLabel names where a record came from: its CSV line or JSON position.
func rowLabel(section string, i, row int) string {
	if row > 0 {
		return "row " + strconv.Itoa(row)
	}
	return fmt.Sprintf("%s[%d]", section, i)
}

// importer applies a Dump inside one transaction.
type importer struct {
	s       *Service
	tx      *store.Tx
	ctx     context.Context
	now     time.Time
	rep     *ImportReport
	bad     problems
	pending []pendingEvent
	// seen maps kind/name to the label of the row that listed it first.
	seen map[string]string
}

func (im *importer) fail(label, kind, name string, p problems) {
	for _, pr := range p {
		field := label + " (" + kind + " " + truncate(name) + ")"
		if pr.Field != "" {
			field += ": " + pr.Field
		}
		im.bad = append(im.bad, Problem{Field: field, Message: pr.Message})
	}
}

func (im *importer) done(label, kind, name, action string) {
	switch action {
	case "created":
		im.rep.Created++
	case "updated":
		im.rep.Updated++
	default:
		im.rep.Unchanged++
		return
	}
	im.rep.Items = append(im.rep.Items, ImportItem{Row: label, Kind: kind, Name: name, Action: action})
}

func (im *importer) event(typ, subject string, details any) {
	im.pending = append(im.pending, pendingEvent{typ, subject, details})
}

// Import applies d: records missing are created, records that differ are
// updated, equal ones are left alone, so importing an export changes
// nothing. Group members and relationships are added, never removed.
// Every row is checked; if any is invalid nothing is applied and the error
// (an *InvalidError) lists each problem with its row. dryRun checks and
// reports without applying.
func (s *Service) Import(ctx context.Context, d *Dump, dryRun bool) (*ImportReport, error) {
	if d.Format != "" && d.Format != DumpFormat {
		var p problems
		p.add("format", "%q is not %s", truncate(d.Format), DumpFormat)
		return nil, p.err()
	}
	rep := &ImportReport{DryRun: dryRun, Items: []ImportItem{}}
	committed := 0
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		im := &importer{s: s, tx: tx, ctx: ctx, now: s.now(), rep: rep}
		if err := im.run(d); err != nil {
			return err
		}
		if err := im.bad.err(); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		im.event("registry.imported", "registry", map[string]int{"created": rep.Created, "updated": rep.Updated, "unchanged": rep.Unchanged})
		for _, p := range im.pending {
			if _, err := s.events.Record(ctx, tx, p.typ, p.subject, p.details); err != nil {
				return err
			}
		}
		committed = len(im.pending) // announced once committed (Record)
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	if committed > 0 {
		s.InvalidatePolicies()
	}
	switch {
	case rep.Created+rep.Updated == 0:
		rep.Message = fmt.Sprintf("nothing to change: all %d records are already in the registry", rep.Unchanged)
	case dryRun:
		rep.Message = fmt.Sprintf("dry run: would create %d and update %d records; %d unchanged", rep.Created, rep.Updated, rep.Unchanged)
	default:
		rep.Message = fmt.Sprintf("created %d and updated %d records; %d unchanged", rep.Created, rep.Updated, rep.Unchanged)
	}
	return rep, nil
}

func (im *importer) run(d *Dump) error {
	im.seen = map[string]string{}
	for i, in := range d.ThingTypes {
		if err := im.thingType(rowLabel("thingTypes", i, in.Row), in); err != nil {
			return err
		}
	}
	for i, in := range d.Users {
		if err := im.user(rowLabel("users", i, in.Row), in); err != nil {
			return err
		}
	}
	for i, in := range d.Things {
		if err := im.thing(rowLabel("things", i, in.Row), in); err != nil {
			return err
		}
	}
	for i, in := range d.Groups {
		if err := im.group(rowLabel("groups", i, in.Row), in); err != nil {
			return err
		}
	}
	for i, in := range d.Relationships {
		if err := im.relationship(rowLabel("relationships", i, in.Row), in); err != nil {
			return err
		}
	}
	return nil
}

// dup reports (and fails) a record listed a second time.
func (im *importer) dup(label, kind, name string) bool {
	k := kind + "/" + name
	if first, ok := im.seen[k]; ok {
		im.fail(label, kind, name, problems{{Message: "listed again (first at " + first + ")"}})
		return true
	}
	im.seen[k] = label
	return false
}

// thingType imports a thing type.
func (im *importer) thingType(label string, in DumpThingType) error {
	ctx, tx := im.ctx, im.tx
	if im.dup(label, "thing type", in.Name) {
		return nil
	}
	tt := &store.ThingType{Name: in.Name, Description: in.Description, AttributeSchema: nonNilSlice(in.AttributeSchema), DefaultPolicies: nonNilSlice(in.DefaultPolicies),
		AuthMethods: nonNilSlice(in.AuthMethods), Scopes: nonNilSlice(in.Scopes), ScopeDescriptions: in.ScopeDescriptions, ApproverRelation: in.ApproverRelation, KeyAlgorithm: in.KeyAlgorithm, CreatedAt: im.now, UpdatedAt: im.now}
	var p problems
	checkThingType(&p, tt)
	if len(p) > 0 {
		im.fail(label, "thing type", in.Name, p)
		return nil
	}
	old, err := tx.GetThingType(ctx, in.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := tx.CreateThingType(ctx, tt); err != nil {
			return err
		}
		im.event("thingtype.created", "thingtype/"+tt.Name, in.ThingTypeSpec)
		im.done(label, "thingType", in.Name, "created")
	case err != nil:
		return err
	case old.Description == tt.Description && slices.Equal(old.AttributeSchema, tt.AttributeSchema) && slices.Equal(old.DefaultPolicies, tt.DefaultPolicies) &&
		slices.Equal(old.AuthMethods, tt.AuthMethods) && slices.Equal(old.Scopes, tt.Scopes) && maps.Equal(old.ScopeDescriptions, tt.ScopeDescriptions) && old.ApproverRelation == tt.ApproverRelation && old.KeyAlgorithm == tt.KeyAlgorithm:
		im.done(label, "thingType", in.Name, "")
	default:
		tt.Version, tt.CreatedAt = old.Version, old.CreatedAt
		if err := tx.UpdateThingType(ctx, tt); err != nil {
			return err
		}
		im.event("thingtype.updated", "thingtype/"+tt.Name, in.ThingTypeSpec)
		im.done(label, "thingType", in.Name, "updated")
	}
	return nil
}

// user imports a user.
func (im *importer) user(label string, in DumpUser) error {
	ctx, tx := im.ctx, im.tx
	if im.dup(label, "user", in.Username) {
		return nil
	}
	var p problems
	if !ValidUsername(in.Username) {
		p.add("username", "%q is not a valid username", truncate(in.Username))
	}
	roles := in.Roles
	if len(roles) == 0 {
		roles = []string{RoleUser}
	}
	checkUserFields(&p, in.DisplayName, in.Email, roles)
	if len(p) > 0 {
		im.fail(label, "user", in.Username, p)
		return nil
	}
	old, err := tx.GetUser(ctx, in.Username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, err := im.s.newID()
		if err != nil {
			return err
		}
		u := &store.User{ID: id, Username: in.Username, DisplayName: in.DisplayName, Email: in.Email, Roles: roles, Disabled: in.Disabled, CreatedAt: im.now, UpdatedAt: im.now}
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		im.event("user.created", "user/"+u.Username, map[string]any{"roles": u.Roles, "email": u.Email})
		im.done(label, "user", in.Username, "created")
	case err != nil:
		return err
	case old.DisplayName == in.DisplayName && old.Email == in.Email && slices.Equal(old.Roles, roles) && old.Disabled == in.Disabled:
		im.done(label, "user", in.Username, "")
	default:
		old.DisplayName, old.Email, old.Roles, old.Disabled, old.UpdatedAt = in.DisplayName, in.Email, roles, in.Disabled, im.now
		if err := tx.UpdateUser(ctx, old); err != nil {
			return err
		}
		im.event("user.updated", "user/"+old.Username, map[string]any{"roles": roles, "email": in.Email, "disabled": in.Disabled})
		im.done(label, "user", in.Username, "updated")
	}
	return nil
}

// thing imports a thing.
func (im *importer) thing(label string, in DumpThing) error {
	ctx, tx := im.ctx, im.tx
	if im.dup(label, "thing", in.Name) {
		return nil
	}
	var p problems
	checkName(&p, "name", in.Name)
	if in.ThingType != "" {
		checkName(&p, "thingType", in.ThingType)
	}
	attrs := in.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	checkAttributes(&p, attrs)
	state := in.State
	if state == "" {
		state = store.StateEnabled
	}
	checkState(&p, state)
	if len(p) == 0 {
		tt, err := im.s.thingType(ctx, tx, in.ThingType, &p)
		if err != nil {
			return err
		}
		validateAgainstType(&p, attrs, tt)
	}
	if len(p) > 0 {
		im.fail(label, "thing", in.Name, p)
		return nil
	}
	old, err := tx.GetThing(ctx, in.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, err := im.s.newID()
		if err != nil {
			return err
		}
		th := &store.Thing{ID: id, Name: in.Name, ThingType: in.ThingType, Attributes: attrs, State: state, CreatedAt: im.now, UpdatedAt: im.now}
		if err := tx.CreateThing(ctx, th); err != nil {
			return err
		}
		im.event("thing.created", "thing/"+th.Name, map[string]any{"thingType": th.ThingType, "attributes": th.Attributes, "state": th.State})
		im.done(label, "thing", in.Name, "created")
	case err != nil:
		return err
	case old.ThingType == in.ThingType && maps.Equal(old.Attributes, attrs) && old.State == state:
		im.done(label, "thing", in.Name, "")
	default:
		old.ThingType, old.Attributes, old.State, old.UpdatedAt = in.ThingType, attrs, state, im.now
		if err := tx.UpdateThing(ctx, old); err != nil {
			return err
		}
		im.event("thing.updated", "thing/"+old.Name, map[string]any{"thingType": in.ThingType, "attributes": attrs, "state": state})
		im.done(label, "thing", in.Name, "updated")
	}
	return nil
}

// group imports a group with its members (added, never removed).
func (im *importer) group(label string, in DumpGroup) error {
	ctx, tx := im.ctx, im.tx
	if im.dup(label, "group", in.Name) {
		return nil
	}
	var p problems
	checkName(&p, "name", in.Name)
	checkDescription(&p, in.Description)
	for j, m := range in.Members {
		if err := principalExists(ctx, tx, &p, fmt.Sprintf("members[%d]", j), m.Kind, m.Member); err != nil {
			return err
		}
	}
	if len(p) > 0 {
		im.fail(label, "group", in.Name, p)
		return nil
	}
	action := ""
	old, err := tx.GetGroup(ctx, in.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := tx.CreateGroup(ctx, &store.Group{Name: in.Name, Description: in.Description, CreatedAt: im.now, UpdatedAt: im.now}); err != nil {
			return err
		}
		im.event("group.created", "group/"+in.Name, NewGroup{Name: in.Name, Description: in.Description})
		action = "created"
	case err != nil:
		return err
	case old.Description != in.Description:
		old.Description, old.UpdatedAt = in.Description, im.now
		if err := tx.UpdateGroup(ctx, old); err != nil {
			return err
		}
		im.event("group.updated", "group/"+in.Name, map[string]string{"description": in.Description})
		action = "updated"
	}
	have, err := tx.ListGroupMembers(ctx, in.Name)
	if err != nil {
		return err
	}
	for _, m := range in.Members {
		if slices.ContainsFunc(have, func(h store.GroupMember) bool { return h.Kind == m.Kind && h.Member == m.Member }) {
			continue
		}
		if err := tx.AddGroupMember(ctx, &store.GroupMember{Group: in.Name, Kind: m.Kind, Member: m.Member, CreatedAt: im.now}); err != nil {
			if errors.Is(err, store.ErrExists) {
				continue // listed twice in this row
			}
			return err
		}
		im.event("group.member_added", "group/"+in.Name, map[string]string{"kind": m.Kind, "member": m.Member})
		if action == "" {
			action = "updated"
		}
	}
	im.done(label, "group", in.Name, action)
	return nil
}

// relationship imports a relationship.
func (im *importer) relationship(label string, in DumpRelationship) error {
	ctx, tx := im.ctx, im.tx
	r := store.Relationship{SubjectKind: in.SubjectKind, Subject: in.Subject, Relation: in.Relation, ObjectKind: in.ObjectKind, Object: in.Object,
		CreatedAt: im.now, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Microsecond)}
	name := fmt.Sprintf("%s:%s %s %s:%s", r.SubjectKind, r.Subject, r.Relation, r.ObjectKind, r.Object)
	if im.dup(label, "relationship", name) {
		return nil
	}
	var p problems
	checkRelationship(&p, r)
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(im.now) {
		p.add("expiresAt", "%s is in the past", r.ExpiresAt.Format(time.RFC3339))
	}
	if len(p) == 0 {
		if err := principalExists(ctx, tx, &p, "subject", r.SubjectKind, r.Subject); err != nil {
			return err
		}
		if err := principalExists(ctx, tx, &p, "object", r.ObjectKind, r.Object); err != nil {
			return err
		}
	}
	if len(p) > 0 {
		im.fail(label, "relationship", name, p)
		return nil
	}
	have, err := tx.ListRelationships(ctx, store.RelationshipFilter{SubjectKind: r.SubjectKind, Subject: r.Subject, Relation: r.Relation, ObjectKind: r.ObjectKind, Object: r.Object, At: im.now})
	if err != nil {
		return err
	}
	switch {
	case len(have) == 0:
		if err := tx.AddRelationship(ctx, &r); err != nil {
			return err
		}
		im.event("relationship.added", r.ObjectKind+"/"+r.Object, r)
		im.done(label, "relationship", name, "created")
	case have[0].ExpiresAt.Equal(r.ExpiresAt):
		im.done(label, "relationship", name, "")
	default:
		if err := tx.RemoveRelationship(ctx, r); err != nil {
			return err
		}
		if err := tx.AddRelationship(ctx, &r); err != nil {
			return err
		}
		im.event("relationship.added", r.ObjectKind+"/"+r.Object, r)
		im.done(label, "relationship", name, "updated")
	}
	return nil
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- CSV ----

// CSVColumns are the columns of the CSV form of a Dump, one row per record
// with its kind (thing_type, thing, user, group, relationship) first. Lists
// are separated by ";", attributes are name=value;..., members and
// subjects/objects are kind:name, attribute_schema is JSON.
func CSVColumns() []string {
	return []string{"kind", "name", "thing_type", "attributes", "state", "description", "display_name", "email", "roles", "disabled",
		"members", "subject", "relation", "object", "expires_at", "attribute_schema", "default_policies", "auth_methods", "scopes", "approver_relation"}
}

// csvKinds says which columns (besides kind) each kind may fill.
func csvKinds() map[string][]string {
	return map[string][]string{
		"thing_type":   {"name", "description", "attribute_schema", "default_policies", "auth_methods", "scopes", "approver_relation"},
		"thing":        {"name", "thing_type", "attributes", "state"},
		"user":         {"name", "display_name", "email", "roles", "disabled"},
		"group":        {"name", "description", "members"},
		"relationship": {"subject", "relation", "object", "expires_at"},
	}
}

func joinList(items []string) string { return strings.Join(items, ";") }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// WriteCSV writes d as CSV.
func (d *Dump) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cols := CSVColumns()
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	if err := cw.Write(cols); err != nil {
		return err
	}
	row := func(kind string, vals map[string]string) error {
		rec := make([]string, len(cols))
		rec[0] = kind
		for k, v := range vals {
			rec[idx[k]] = v
		}
		return cw.Write(rec)
	}
	for _, tt := range d.ThingTypes {
		schema := ""
		if len(tt.AttributeSchema) > 0 {
			b, err := json.Marshal(tt.AttributeSchema)
			if err != nil {
				return err
			}
			schema = string(b)
		}
		if err := row("thing_type", map[string]string{"name": tt.Name, "description": tt.Description, "attribute_schema": schema,
			"default_policies": joinList(tt.DefaultPolicies), "auth_methods": joinList(tt.AuthMethods), "scopes": joinList(tt.Scopes), "approver_relation": tt.ApproverRelation}); err != nil {
			return err
		}
	}
	for _, t := range d.Things {
		var attrs []string
		for _, k := range slices.Sorted(maps.Keys(t.Attributes)) {
			attrs = append(attrs, k+"="+t.Attributes[k])
		}
		if err := row("thing", map[string]string{"name": t.Name, "thing_type": t.ThingType, "attributes": joinList(attrs), "state": t.State}); err != nil {
			return err
		}
	}
	for _, u := range d.Users {
		if err := row("user", map[string]string{"name": u.Username, "display_name": u.DisplayName, "email": u.Email, "roles": joinList(u.Roles), "disabled": strconv.FormatBool(u.Disabled)}); err != nil {
			return err
		}
	}
	for _, g := range d.Groups {
		var ms []string
		for _, m := range g.Members {
			ms = append(ms, m.Kind+":"+m.Member)
		}
		if err := row("group", map[string]string{"name": g.Name, "description": g.Description, "members": joinList(ms)}); err != nil {
			return err
		}
	}
	for _, r := range d.Relationships {
		exp := ""
		if !r.ExpiresAt.IsZero() {
			exp = r.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
		if err := row("relationship", map[string]string{"subject": r.SubjectKind + ":" + r.Subject, "relation": r.Relation, "object": r.ObjectKind + ":" + r.Object, "expires_at": exp}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ParseCSV reads the CSV form of a Dump. Problems are reported per row
// (the file's line number) as an *InvalidError, all at once.
func ParseCSV(r io.Reader) (*Dump, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var p problems
	header, err := cr.Read()
	if err != nil {
		p.add("row 1", "cannot read the header: %v", err)
		return nil, p.err()
	}
	known := map[string]bool{}
	for _, c := range CSVColumns() {
		known[c] = true
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		switch {
		case !known[h]:
			p.add("row 1", "unknown column %q (want some of %s)", truncate(h), strings.Join(CSVColumns(), ", "))
		case col[h] != 0:
			p.add("row 1", "column %q appears twice", h)
		default:
			col[h] = i + 1 // 0 means absent
		}
	}
	if col["kind"] == 0 {
		p.add("row 1", "the header has no kind column")
	}
	if len(p) > 0 {
		return nil, p.err()
	}
	kinds := csvKinds()
	d := &Dump{Format: DumpFormat}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		label := "row " + strconv.Itoa(line)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				label = "row " + strconv.Itoa(pe.StartLine)
			}
			p.add(label, "malformed CSV: %v", err)
			return nil, p.err() // the reader cannot go on after a parse error
		}
		get := func(c string) string {
			if i := col[c]; i > 0 && i-1 < len(rec) {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		if len(rec) != len(header) {
			p.add(label, "has %d fields, the header %d", len(rec), len(header))
			continue
		}
		kind := get("kind")
		allowed, ok := kinds[kind]
		if !ok {
			names := slices.Sorted(maps.Keys(kinds))
			p.add(label, "kind %q is not one of %s", truncate(kind), strings.Join(names, ", "))
			continue
		}
		bad := false
		for c := range col {
			if c != "kind" && get(c) != "" && !slices.Contains(allowed, c) {
				p.add(label, "column %s does not apply to a %s", c, kind)
				bad = true
			}
		}
		if bad {
			continue
		}
		switch kind {
		case "thing_type":
			tt := DumpThingType{ThingTypeSpec: ThingTypeSpec{Name: get("name"), Description: get("description"), DefaultPolicies: splitList(get("default_policies")),
				AuthMethods: splitList(get("auth_methods")), Scopes: splitList(get("scopes")), ApproverRelation: get("approver_relation")}, Row: line}
			if s := get("attribute_schema"); s != "" {
				if err := json.Unmarshal([]byte(s), &tt.AttributeSchema); err != nil {
					p.add(label, "attribute_schema is not a JSON list of {name, required, pattern}: %v", err)
					continue
				}
			}
			d.ThingTypes = append(d.ThingTypes, tt)
		case "thing":
			t := DumpThing{Name: get("name"), ThingType: get("thing_type"), State: get("state"), Row: line, Attributes: map[string]string{}}
			for _, kv := range splitList(get("attributes")) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					p.add(label, "attribute %q is not name=value", truncate(kv))
					bad = true
					continue
				}
				if _, dup := t.Attributes[k]; dup {
					p.add(label, "attribute %q is given twice", truncate(k))
					bad = true
				}
				t.Attributes[k] = v
			}
			if !bad {
				d.Things = append(d.Things, t)
			}
		case "user":
			u := DumpUser{Username: get("name"), DisplayName: get("display_name"), Email: get("email"), Roles: splitList(get("roles")), Row: line}
			if s := get("disabled"); s != "" {
				b, err := strconv.ParseBool(s)
				if err != nil {
					p.add(label, "disabled %q is not true or false", truncate(s))
					continue
				}
				u.Disabled = b
			}
			d.Users = append(d.Users, u)
		case "group":
			g := DumpGroup{Name: get("name"), Description: get("description"), Row: line}
			for _, m := range splitList(get("members")) {
				k, n, ok := strings.Cut(m, ":")
				if !ok {
					p.add(label, "member %q is not kind:name", truncate(m))
					bad = true
					continue
				}
				g.Members = append(g.Members, DumpMember{Kind: k, Member: n})
			}
			if !bad {
				d.Groups = append(d.Groups, g)
			}
		case "relationship":
			sk, sn, ok1 := strings.Cut(get("subject"), ":")
			ok, on, ok2 := strings.Cut(get("object"), ":")
			if !ok1 || !ok2 {
				p.add(label, "subject and object must be kind:name, e.g. user:alice and thing:pump-1")
				continue
			}
			rel := DumpRelationship{SubjectKind: sk, Subject: sn, Relation: get("relation"), ObjectKind: ok, Object: on, Row: line}
			if s := get("expires_at"); s != "" {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					p.add(label, "expires_at %q is not an RFC 3339 time", truncate(s))
					continue
				}
				rel.ExpiresAt = t
			}
			d.Relationships = append(d.Relationships, rel)
		}
	}
	if len(p) > 0 {
		return nil, p.err()
	}
	return d, nil
}

// ParseJSON reads the JSON form of a Dump strictly (package jsonbody's
// rules: unknown fields, trailing data and null are errors).
func ParseJSON(r io.Reader) (*Dump, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var d Dump
	if err := jsonbody.Decode(body, &d, jsonbody.Options{}); err != nil { // the caller bounds r
		var p problems
		p.add("document", "not a registry export: %v", err)
		return nil, p.err()
	}
	return &d, nil
}
