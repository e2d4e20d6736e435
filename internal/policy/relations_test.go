package policy

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// peoplePolicy is the shape of the bootstrap gatehouse-people policy.
const peoplePolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${gatehouse:User.Name}*"},
 {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":[
   "topicfilter/things/${gatehouse:User.Things.owner}/telemetry/#",
   "topicfilter/things/${gatehouse:User.Things.viewer}/telemetry/#"]},
 {"Effect":"Allow","Action":["iot:Receive"],"Resource":[
   "topic/things/${gatehouse:User.Things.owner}/telemetry/*",
   "topic/things/${gatehouse:User.Things.viewer}/telemetry/*"]},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/things/${gatehouse:User.Things.owner}/commands/*"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/groups/${gatehouse:User.Groups}/chat"}
]}`

func TestRelationVariables(t *testing.T) {
	set := mustSet(t, Options{}, peoplePolicy)
	gatewayPolicy := mustSet(t, Options{}, doc(
		`{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/things/${gatehouse:Thing.Children}/telemetry","topic/things/${iot:Connection.Thing.ThingName}/*"]}`,
		`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/things/${gatehouse:Thing.Children}/commands/#"}`))
	alice := &User{Name: "alice", Groups: []string{"home"}, Things: map[string][]string{"owner": {"lamp-1", "lamp-2"}, "viewer": {"cam-1"}}}
	tests := []struct {
		name   string
		set    *Set
		ctx    Context
		checks []check
	}{
		{
			name: "owner and viewer",
			set:  set,
			ctx:  Context{ClientID: "alice-phone", User: alice},
			checks: []check{
				{ActionConnect, "alice-phone", true},
				{ActionConnect, "bob-phone", false},
				{ActionSubscribe, "things/lamp-1/telemetry/#", true},
				{ActionSubscribe, "things/lamp-2/telemetry/#", true},
				{ActionSubscribe, "things/cam-1/telemetry/#", true},
				{ActionSubscribe, "things/lamp-3/telemetry/#", false},
				{ActionSubscribe, "things/+/telemetry/#", false},
				{ActionSubscribe, "things/#", false},
				{ActionReceive, "things/lamp-1/telemetry/temp", true},
				{ActionReceive, "things/cam-1/telemetry/frame", true},
				{ActionReceive, "things/lamp-3/telemetry/temp", false},
				{ActionPublish, "things/lamp-1/commands/on", true},
				{ActionPublish, "things/lamp-2/commands/on", true},
				{ActionPublish, "things/cam-1/commands/on", false},
				{ActionPublish, "groups/home/chat", true},
				{ActionPublish, "groups/work/chat", false},
			},
		},
		{
			name: "no relationships match nothing",
			set:  set,
			ctx:  Context{ClientID: "carol", User: &User{Name: "carol"}},
			checks: []check{
				{ActionConnect, "carol", true},
				{ActionSubscribe, "things//telemetry/#", false},
				{ActionReceive, "things//telemetry/x", false},
				{ActionPublish, "things//commands/x", false},
				{ActionPublish, "groups//chat", false},
			},
		},
		{
			name: "no user at all",
			set:  set,
			ctx:  Context{ClientID: "lamp-1", Thing: thing("lamp-1")},
			checks: []check{
				{ActionConnect, "lamp-1", false},
				{ActionReceive, "things/lamp-1/telemetry/x", false},
			},
		},
		{
			name: "wildcard and separator names are never expanded",
			set:  set,
			ctx: Context{ClientID: "mallory", User: &User{Name: "mallory", Groups: []string{"*", "a/b"}, Things: map[string][]string{
				"owner": {"+", "#", "*", "?", "x/telemetry", "$SYS", "ok"}, "viewer": {"lamp-?"},
			}}},
			checks: []check{
				{ActionSubscribe, "things/+/telemetry/#", false},
				{ActionSubscribe, "things/#/telemetry/#", false},
				{ActionSubscribe, "things/*/telemetry/#", false},
				{ActionSubscribe, "things/lamp-?/telemetry/#", false},
				{ActionReceive, "things/lamp-1/telemetry/x", false},
				{ActionReceive, "things/*/telemetry/x", false},
				{ActionReceive, "things/x/telemetry/telemetry/y", false},
				{ActionReceive, "things/a/telemetry/x", false},
				{ActionPublish, "things/lamp-1/commands/x", false},
				{ActionPublish, "things/*/commands/x", false},
				{ActionPublish, "groups/a/b/chat", false},
				{ActionPublish, "groups/*/chat", false},
				{ActionPublish, "groups/x/chat", false},
				// The plain name among them still works.
				{ActionReceive, "things/ok/telemetry/x", true},
				{ActionPublish, "things/ok/commands/x", true},
			},
		},
		{
			name: "gateway children",
			set:  gatewayPolicy,
			ctx:  Context{ClientID: "gw-1", Thing: &Thing{Name: "gw-1", Children: []string{"sensor-1", "sensor-2", "+"}}},
			checks: []check{
				{ActionPublish, "things/sensor-1/telemetry", true},
				{ActionPublish, "things/sensor-2/telemetry", true},
				{ActionPublish, "things/sensor-3/telemetry", false},
				{ActionPublish, "things/gw-1/telemetry", true},
				{ActionSubscribe, "things/sensor-1/commands/#", true},
				{ActionSubscribe, "things/+/commands/#", false},
				{ActionSubscribe, "things/sensor-3/commands/#", false},
			},
		},
		{
			name: "gateway without children",
			set:  gatewayPolicy,
			ctx:  Context{ClientID: "gw-2", Thing: &Thing{Name: "gw-2"}},
			checks: []check{
				{ActionPublish, "things/gw-2/telemetry", true},
				{ActionPublish, "things/sensor-1/telemetry", false},
				{ActionSubscribe, "things/sensor-1/commands/#", false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.set.Bind(tt.ctx)
			for _, c := range tt.checks {
				if got := b.Allowed(c.action, c.resource); got != c.want {
					t.Errorf("Allowed(%v, %q) = %v, want %v\n%s", c.action, c.resource, got, c.want, b.Explain(c.action, c.resource))
				}
			}
		})
	}
}

// TestRelationVariablesDeny: in a Deny, a relational variable whose values
// are unusable denies whatever it could be, and zero values deny everything
// the pattern could match.
func TestRelationVariablesDeny(t *testing.T) {
	set := mustSet(t, Options{}, doc(
		`{"Effect":"Allow","Action":"*","Resource":"*"}`,
		`{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/blocked/${gatehouse:User.Things.viewer}"}`))
	tests := []struct {
		name     string
		things   []string
		resource string
		want     bool
	}{
		{"listed thing denied", []string{"cam-1"}, "blocked/cam-1", false},
		{"other thing allowed", []string{"cam-1"}, "blocked/cam-2", true},
		{"no values deny all", nil, "blocked/cam-2", false},
		{"wildcard value denies all", []string{"cam-1", "+"}, "blocked/cam-2", false},
		{"outside the pattern", []string{"*"}, "open/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := Context{User: &User{Name: "u", Things: map[string][]string{"viewer": tt.things}}}
			if got := set.Bind(ctx).Allowed(ActionPublish, tt.resource); got != tt.want {
				t.Errorf("Allowed(publish, %q) = %v, want %v", tt.resource, got, tt.want)
			}
		})
	}
}

func TestRelationVariableConditions(t *testing.T) {
	set := mustSet(t, Options{}, doc(
		`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/ops/*","Condition":{"ForAnyValue:StringEquals":{"gatehouse:User.Groups":"operators"}}}`))
	for _, tt := range []struct {
		groups []string
		want   bool
	}{{[]string{"operators"}, true}, {[]string{"home", "operators"}, true}, {[]string{"home"}, false}, {nil, false}} {
		got := set.Bind(Context{User: &User{Name: "u", Groups: tt.groups}}).Allowed(ActionPublish, "ops/x")
		if got != tt.want {
			t.Errorf("groups %v: Allowed = %v, want %v", tt.groups, got, tt.want)
		}
	}
	// Multi-valued keys need a set qualifier, as gatehouse:Token.Scope does.
	_, err := Parse([]byte(doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringEquals":{"gatehouse:User.Groups":"x"}}}`)))
	if err == nil {
		t.Error("StringEquals on gatehouse:User.Groups parsed, want an error asking for ForAnyValue/ForAllValues")
	}
	for _, bad := range []string{"${gatehouse:User.Things.}", "${gatehouse:User.Things.own er}", "${gatehouse:User.Things.a/b}"} {
		if _, err := Parse([]byte(doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/` + bad + `"}`))); err == nil {
			t.Errorf("resource with %s parsed, want an error", bad)
		}
	}
}

// FuzzRelationInjection: whatever a thing is named, a relational variable
// grants at most the topics of names that are plain topic levels, exactly.
func FuzzRelationInjection(f *testing.F) {
	for _, s := range []string{"+", "#", "*", "?", "a/b", "$SYS", "lamp-1", "", "a\x00b", "${iot:ClientId}"} {
		f.Add(s, "things/lamp-1/telemetry/x")
	}
	set := mustSet(f, Options{}, peoplePolicy)
	f.Fuzz(func(t *testing.T, name, topic string) {
		name, topic = clip(name, 32), clip(topic, 128)
		b := set.Bind(Context{User: &User{Name: "u", Things: map[string][]string{"owner": {name}}}})
		plain := name != "" && !strings.ContainsAny(name, "+#*?/$\x00")
		wantRecv := plain && utf8.ValidString(topic) && strings.HasPrefix(topic, "things/"+name+"/telemetry/")
		if got := b.Allowed(ActionReceive, topic); got != wantRecv {
			t.Fatalf("owner %q: Allowed(receive, %q) = %v, want %v", name, topic, got, wantRecv)
		}
		wantSub := plain && utf8.ValidString(name) && topic == "things/"+name+"/telemetry/#"
		if got := b.Allowed(ActionSubscribe, topic); got != wantSub {
			t.Fatalf("owner %q: Allowed(subscribe, %q) = %v, want %v", name, topic, got, wantSub)
		}
	})
}

// BenchmarkAllowedPublishRelation: a person's publish check with a
// multi-valued relation variable stays allocation-free and does not grow
// with the number of things they own.
func BenchmarkAllowedPublishRelation(b *testing.B) {
	set := mustSet(b, Options{}, peoplePolicy)
	for _, n := range []int{1, 20, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			owned := make([]string, n)
			for i := range owned {
				owned[i] = "lamp-" + strconv.Itoa(i)
			}
			bound := set.Bind(Context{ClientID: "alice~x", User: &User{Name: "alice", Things: map[string][]string{"owner": owned}}})
			topic := "things/lamp-" + strconv.Itoa(n-1) + "/commands/on"
			if !bound.Allowed(ActionPublish, topic) {
				b.Fatal("publish denied")
			}
			if a := testing.AllocsPerRun(1000, func() { bound.Allowed(ActionPublish, topic) }); a != 0 {
				b.Fatalf("Allowed allocates %v times per call, want 0", a)
			}
			b.ReportAllocs()
			for b.Loop() {
				bound.Allowed(ActionPublish, topic)
			}
		})
	}
}

// TestRelationManyThings: a person with more things than MaxExpansions
// keeps access to every one of them (the level-set match has no bound).
func TestRelationManyThings(t *testing.T) {
	set := mustSet(t, Options{}, peoplePolicy)
	owned := make([]string, 5000)
	for i := range owned {
		owned[i] = "lamp-" + strconv.Itoa(i)
	}
	b := set.Bind(Context{ClientID: "alice~x", User: &User{Name: "alice", Things: map[string][]string{"owner": owned}}})
	for _, c := range []check{
		{ActionPublish, "things/lamp-0/commands/on", true},
		{ActionPublish, "things/lamp-4999/commands/on", true},
		{ActionPublish, "things/lamp-5000/commands/on", false},
		{ActionReceive, "things/lamp-77/telemetry/temp", true},
		{ActionSubscribe, "things/lamp-77/telemetry/#", true},
		{ActionSubscribe, "things/lamp-77/#", false},
		{ActionPublish, "things/lamp-1/lamp-2/commands/on", false},
		{ActionPublish, "things/lamp-1", false},
	} {
		if got := b.Allowed(c.action, c.resource); got != c.want {
			t.Errorf("Allowed(%v, %q) = %v, want %v", c.action, c.resource, got, c.want)
		}
	}
}

// FuzzLevelSet compares the level-set match of a relational variable with
// matching each value's expansion as its own pattern.
func FuzzLevelSet(f *testing.F) {
	f.Add("things/", "lamp-1", "cam", "/telemetry/*", "things/lamp-1/telemetry/x")
	f.Add("", "a", "b", "", "a")
	f.Add("x", "a", "b", "/?", "xb/c")
	f.Add("t/", "a", "a-b", "/*/z", "t/a-b/y/z")
	f.Fuzz(func(t *testing.T, prefix, v1, v2, suffix, s string) {
		prefix, v1, v2, suffix, s = clip(prefix, 16), clip(v1, 16), clip(v2, 16), clip(suffix, 16), clip(s, 64)
		if strings.ContainsAny(prefix+suffix, "${}") {
			return
		}
		toks, err := lexPattern(prefix+"${gatehouse:User.Things.owner}"+suffix, true)
		if err != nil {
			return
		}
		r := &resolver{ctx: &Context{User: &User{Things: map[string][]string{"owner": {v1, v2}}}}}
		g, ok := r.levelSetGlob(toks, false)
		if !ok {
			return
		}
		want := false
		for _, v := range []string{v1, v2} {
			if v == "" || unsafeValue(v) {
				continue
			}
			var sub []token
			for _, tk := range toks {
				if tk.kind == tokVar {
					sub = appendLit(sub, v)
				} else if tk.kind == tokLit {
					sub = appendLit(sub, tk.lit)
				} else {
					sub = append(sub, tk)
				}
			}
			gv := compileGlob(sub)
			if gv.match(s) {
				want = true
			}
		}
		if got := g.match(s); got != want {
			t.Fatalf("pattern %q%s%q values %q %q: match(%q) = %v, want %v", prefix, "${owner}", suffix, v1, v2, s, got, want)
		}
	})
}
