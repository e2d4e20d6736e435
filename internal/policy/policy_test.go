package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// doc wraps statements in a 2012-10-17 document.
func doc(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

func mustParse(t testing.TB, src string) *Document {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return d
}

func mustSet(t testing.TB, opts Options, srcs ...string) *Set {
	t.Helper()
	var docs []NamedDocument
	for i, src := range srcs {
		docs = append(docs, NamedDocument{Name: "p" + string(rune('0'+i)), Document: mustParse(t, src)})
	}
	s, err := opts.Compile(docs...)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

type check struct {
	action   Action
	resource string
	want     bool
}

func thing(name string) *Thing { return &Thing{Name: name} }

func TestAllowed(t *testing.T) {
	const arn = "arn:aws:iot:us-east-1:123456789012:"
	tests := []struct {
		name   string
		opts   Options
		docs   []string
		ctx    Context
		checks []check
	}{
		{
			name: "client id pinning (AWS example)",
			docs: []string{doc(`{"Effect":"Allow","Action":["iot:Connect"],"Resource":["` + arn + `client/clientId1","` + arn + `client/clientId2"]}`)},
			checks: []check{
				{ActionConnect, "clientId1", true},
				{ActionConnect, "clientId2", true},
				{ActionConnect, "clientId3", false},
				{ActionConnect, "clientid1", false}, // resources are case-sensitive
				{ActionConnect, "clientId1/x", false},
				{ActionPublish, "clientId1", false},
			},
		},
		{
			name: "connect as the attached thing",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/${iot:Connection.Thing.ThingName}","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}}`)},
			ctx:  Context{ClientID: "dev1", Thing: thing("dev1")},
			checks: []check{
				{ActionConnect, "dev1", true},
				{ActionConnect, "dev2", false},
			},
		},
		{
			name: "connect as a thing: not attached",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/${iot:Connection.Thing.ThingName}","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}`)},
			ctx:  Context{ClientID: "dev1"},
			checks: []check{
				{ActionConnect, "dev1", false},
				{ActionConnect, "", false},
			},
		},
		{
			name: "thing-scoped topics",
			docs: []string{doc(
				`{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"`+arn+`topic/things/${iot:Connection.Thing.ThingName}/*"}`,
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"`+arn+`topicfilter/things/${iot:Connection.Thing.ThingName}/*"}`,
			)},
			ctx: Context{ClientID: "dev1", Thing: thing("dev1")},
			checks: []check{
				{ActionPublish, "things/dev1/telemetry", true},
				{ActionPublish, "things/dev1/a/b/c", true}, // * crosses levels
				{ActionPublish, "things/dev1/", true},
				{ActionPublish, "things/dev1", false},
				{ActionPublish, "things/dev2/telemetry", false},
				{ActionPublish, "things/dev10/telemetry", false},
				{ActionReceive, "things/dev1/cmd", true},
				{ActionSubscribe, "things/dev1/#", true}, // the policy's * matches the literal #
				{ActionSubscribe, "things/dev1/+/x", true},
				{ActionSubscribe, "things/+/telemetry", false},
				{ActionSubscribe, "things/#", false},
				{ActionConnect, "dev1", false},
			},
		},
		{
			name: "receive revocation with a deny",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"`+arn+`topicfilter/some/*"}`,
				`{"Effect":"Allow","Action":"iot:Receive","Resource":"`+arn+`topic/some/*"}`,
				`{"Effect":"Deny","Action":"iot:Receive","Resource":"`+arn+`topic/some/restricted"}`,
			)},
			checks: []check{
				{ActionSubscribe, "some/#", true},
				{ActionReceive, "some/thing", true},
				{ActionReceive, "some/restricted", false},
				{ActionReceive, "some/restricted/below", true},
			},
		},
		{
			name: "pitfall: deny on topicfilter does not stop a/# from receiving",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/a/*"}`,
				`{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a/*"}`,
				`{"Effect":"Deny","Action":"iot:Subscribe","Resource":"topicfilter/a/restricted/*"}`,
			)},
			checks: []check{
				{ActionSubscribe, "a/restricted/x", false},
				{ActionSubscribe, "a/restricted/#", false},
				{ActionSubscribe, "a/#", true},          // the filter as written is not denied
				{ActionReceive, "a/restricted/x", true}, // ... so this is delivered
				{ActionSubscribe, "a/+/x", true},        // + is literal in policies
				{ActionReceive, "a/unrestricted/x", true},
			},
		},
		{
			name: "pitfall fixed: deny Receive on the topics",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/a/*"}`,
				`{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a/*"}`,
				`{"Effect":"Deny","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/a/restricted/*","topic/a/restricted/*"]}`,
			)},
			checks: []check{
				{ActionSubscribe, "a/#", true},
				{ActionReceive, "a/restricted/x", false},
				{ActionReceive, "a/open/x", true},
			},
		},
		{
			name: "NotAction",
			docs: []string{doc(`{"Effect":"Allow","NotAction":"iot:Publish","Resource":"*"}`)},
			checks: []check{
				{ActionConnect, "c", true},
				{ActionSubscribe, "a/#", true},
				{ActionReceive, "a", true},
				{ActionPublish, "a", false},
				{ActionListRetainedMessages, "", true},
			},
		},
		{
			name: "NotResource in an Allow",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","NotResource":["topic/admin/*","` + arn + `topic/$aws/*"]}`)},
			checks: []check{
				{ActionPublish, "telemetry", true},
				{ActionPublish, "admin/x", false},
				{ActionPublish, "$aws/things/x/shadow/update", false},
				{ActionPublish, "admin", true},
				{ActionConnect, "c", false},
			},
		},
		{
			name: "NotResource in a Deny",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:*","Resource":"*"}`,
				`{"Effect":"Deny","Action":"iot:Publish","NotResource":"topic/telemetry/*"}`,
			)},
			checks: []check{
				{ActionPublish, "telemetry/x", true},
				{ActionPublish, "cmd/x", false},
				{ActionConnect, "anything", true},
			},
		},
		{
			name: "? is one character",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/sensors/????/data"}`)},
			checks: []check{
				{ActionPublish, "sensors/abcd/data", true},
				{ActionPublish, "sensors/abc/data", false},
				{ActionPublish, "sensors/abcde/data", false},
				{ActionPublish, "sensors/a/cd/data", true}, // ? matches "/" too, as in IAM
				{ActionPublish, "sensors/ÄÖÜß/data", true}, // characters, not bytes
			},
		},
		{
			name: "+ and # are literal",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/some/+/topic"}`,
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/all/#"}`,
			)},
			checks: []check{
				{ActionSubscribe, "some/+/topic", true},
				{ActionSubscribe, "some/x/topic", false},
				{ActionSubscribe, "some/#", false},
				{ActionSubscribe, "all/#", true},
				{ActionSubscribe, "all/x", false},
			},
		},
		{
			name: "actions are case-insensitive, resources are not",
			docs: []string{doc(`{"Effect":"Allow","Action":["IOT:PUBLISH","iot:sub*"],"Resource":["topic/Foo","topicfilter/Foo"]}`)},
			checks: []check{
				{ActionPublish, "Foo", true},
				{ActionPublish, "foo", false},
				{ActionSubscribe, "Foo", true},
				{ActionSubscribe, "FOO", false},
			},
		},
		{
			name: "client id * does not widen access",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"}`,
				`{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/clients/${iot:ClientId}/*"}`,
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/clients/${iot:ClientId}/*"}`,
			)},
			ctx: Context{ClientID: "*"},
			checks: []check{
				{ActionConnect, "*", true},
				{ActionConnect, "other", false},
				{ActionPublish, "clients/*/x", true},
				{ActionPublish, "clients/other/x", false},
				{ActionSubscribe, "clients/*/x", true},
				{ActionSubscribe, "clients/other/#", false},
			},
		},
		{
			name: "client id ? does not widen access",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/c/${iot:ClientId}"}`)},
			ctx:  Context{ClientID: "a?c"},
			checks: []check{
				{ActionPublish, "c/a?c", true},
				{ActionPublish, "c/abc", false},
			},
		},
		{
			name: "client id + cannot subscribe to the wildcard filter (AWS pitfall closed)",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"}`,
				`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/my/${iot:ClientId}/topic"}`,
				`{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/my/${iot:ClientId}/topic"}`,
			)},
			ctx: Context{ClientID: "+"},
			checks: []check{
				{ActionConnect, "+", true},
				{ActionSubscribe, "my/+/topic", false},
				{ActionReceive, "my/other/topic", false},
			},
		},
		{
			name: "client id # cannot subscribe to the wildcard filter",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/my/${iot:ClientId}"}`)},
			ctx:  Context{ClientID: "#"},
			checks: []check{
				{ActionSubscribe, "my/#", false},
			},
		},
		{
			name: "special literals",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/a${*}b","topic/q${?}","topic/d${$}{x}","topic/$aws/x"]}`)},
			checks: []check{
				{ActionPublish, "a*b", true},
				{ActionPublish, "axb", false},
				{ActionPublish, "q?", true},
				{ActionPublish, "qx", false},
				{ActionPublish, "d${x}", true},
				{ActionPublish, "$aws/x", true},
			},
		},
		{
			name: "shadow topics under $aws",
			docs: []string{doc(`{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"` + arn + `topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"}`)},
			ctx:  Context{Thing: thing("lamp")},
			checks: []check{
				{ActionPublish, "$aws/things/lamp/shadow/update", true},
				{ActionReceive, "$aws/things/lamp/shadow/update/accepted", true},
				{ActionPublish, "$aws/things/other/shadow/update", false},
			},
		},
		{
			name: "shadow actions on thing resources",
			docs: []string{doc(`{"Effect":"Allow","Action":["iot:GetThingShadow","iot:UpdateThingShadow"],"Resource":"` + arn + `thing/${iot:Connection.Thing.ThingName}"}`)},
			ctx:  Context{Thing: thing("lamp")},
			checks: []check{
				{ActionGetThingShadow, "lamp", true},
				{ActionUpdateThingShadow, "lamp", true},
				{ActionDeleteThingShadow, "lamp", false},
				{ActionGetThingShadow, "other", false},
				{ActionPublish, "lamp", false},
			},
		},
		{
			name: "explicit deny wins across documents, order irrelevant",
			docs: []string{
				doc(`{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/secret/*"}`),
				doc(`{"Effect":"Allow","Action":"iot:*","Resource":"*"}`),
			},
			checks: []check{
				{ActionPublish, "secret/x", false},
				{ActionPublish, "public/x", true},
				{ActionSubscribe, "secret/#", true},
			},
		},
		{
			name:   "default deny",
			docs:   []string{doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"client/a"}`)},
			checks: []check{{ActionPublish, "x", false}, {ActionSubscribe, "x", false}, {ActionConnect, "b", false}},
		},
		{
			name: "wildcard actions",
			docs: []string{doc(`{"Effect":"Allow","Action":["iot:*Retained*","iot:?eceive"],"Resource":"*"}`)},
			checks: []check{
				{ActionGetRetainedMessage, "a", true},
				{ActionListRetainedMessages, "", true},
				{ActionReceive, "a", true},
				{ActionRetainPublish, "a", false},
				{ActionPublish, "a", false},
			},
		},
		{
			name: "ListRetainedMessages needs Resource *",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:ListRetainedMessages","Resource":["topic/*","arn:aws:iot:*:*:*"]}`)},
			checks: []check{
				{ActionListRetainedMessages, "", false},
			},
		},
		{
			name: "wildcards in the resource type",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:*:*:topic*"}`)},
			checks: []check{
				{ActionPublish, "x", true},
				{ActionSubscribe, "x/#", true},
				{ActionConnect, "x", false},
			},
		},
		{
			name: "region and account: any by default",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:eu-west-1:111122223333:topic/x"}`)},
			checks: []check{
				{ActionPublish, "x", true},
			},
		},
		{
			name: "region and account pinned by Options",
			opts: Options{Region: "us-east-1", Account: "123456789012"},
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Publish","Resource":["arn:aws:iot:eu-west-1:123456789012:topic/eu","arn:aws:iot:us-east-1:999999999999:topic/acct","arn:aws:iot:us-*:123456789012:topic/us","arn:aws:iot:*:*:topic/any","topic/short"]}`,
			)},
			checks: []check{
				{ActionPublish, "eu", false},
				{ActionPublish, "acct", false},
				{ActionPublish, "us", true},
				{ActionPublish, "any", true},
				{ActionPublish, "short", true},
			},
		},
		{
			name: "certificate common name, exactly one",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Certificate.Subject.CommonName}"}`)},
			ctx:  Context{Certificate: &Certificate{Subject: Name{CommonName: []string{"dev-7"}}}},
			checks: []check{
				{ActionConnect, "dev-7", true},
				{ActionConnect, "dev-8", false},
			},
		},
		{
			name: "certificate common name, ambiguous",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Certificate.Subject.CommonName}"}`)},
			ctx:  Context{Certificate: &Certificate{Subject: Name{CommonName: []string{"dev-7", "dev-8"}}}},
			checks: []check{
				{ActionConnect, "dev-7", false},
				{ActionConnect, "dev-8", false},
			},
		},
		{
			name: "certificate .List expands",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/ou/${iot:Certificate.Subject.OrganizationalUnit.List}/*"}`)},
			ctx:  Context{Certificate: &Certificate{Subject: Name{OrganizationalUnit: []string{"a", "b"}}}},
			checks: []check{
				{ActionPublish, "ou/a/x", true},
				{ActionPublish, "ou/b/x", true},
				{ActionPublish, "ou/c/x", false},
			},
		},
		{
			name: "token scope expands",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/scoped/${gatehouse:Token.Scope}/*"}`)},
			ctx:  Context{Token: &Token{Scope: []string{"read", "write"}}},
			checks: []check{
				{ActionPublish, "scoped/read/x", true},
				{ActionPublish, "scoped/write/x", true},
				{ActionPublish, "scoped/admin/x", false},
				{ActionPublish, "scoped/read write/x", false},
			},
		},
		{
			name: "token claims and subject",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/tenants/${gatehouse:Token.Claims[tenant]}/${gatehouse:Token.Subject}/*"}`)},
			ctx:  Context{Token: &Token{Subject: "dev1", Claims: map[string]string{"tenant": "acme"}}},
			checks: []check{
				{ActionPublish, "tenants/acme/dev1/x", true},
				{ActionPublish, "tenants/acme/dev2/x", false},
				{ActionPublish, "tenants/other/dev1/x", false},
			},
		},
		{
			name: "thing attributes and type",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.Attributes[site]}/*"}`)},
			ctx:  Context{Thing: &Thing{Name: "t", TypeName: "sensor", Attributes: map[string]string{"site": "berlin"}}},
			checks: []check{
				{ActionPublish, "sensor/berlin/x", true},
				{ActionPublish, "sensor/paris/x", false},
			},
		},
		{
			name: "unresolved variable: Allow value matches nothing, other values still do",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/things/${iot:Connection.Thing.ThingName}/*","topic/public/*"]}`)},
			ctx:  Context{ClientID: "c"},
			checks: []check{
				{ActionPublish, "things//x", false},
				{ActionPublish, "things/${iot:Connection.Thing.ThingName}/x", false},
				{ActionPublish, "things/c/x", false},
				{ActionPublish, "public/x", true},
			},
		},
		{
			name: "unresolved variable: Deny Resource covers every value",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}`,
				`{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/admin"}`,
			)},
			ctx: Context{ClientID: "https-has-no-thing"},
			checks: []check{
				{ActionPublish, "things/anyone/admin", false},
				{ActionPublish, "things/anyone/data", true},
			},
		},
		{
			name: "resolved variable in Deny",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}`,
				`{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/admin"}`,
			)},
			ctx: Context{Thing: thing("dev1")},
			checks: []check{
				{ActionPublish, "things/dev1/admin", false},
				{ActionPublish, "things/dev2/admin", true},
			},
		},
		{
			name: "unresolved variable: Allow NotResource grants nothing",
			docs: []string{doc(`{"Effect":"Allow","Action":"iot:Publish","NotResource":"topic/things/${iot:Connection.Thing.ThingName}/*"}`)},
			checks: []check{
				{ActionPublish, "anything", false},
			},
		},
		{
			name: "unresolved variable: Deny NotResource excludes nothing",
			docs: []string{doc(
				`{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}`,
				`{"Effect":"Deny","Action":"iot:Publish","NotResource":"topic/things/${iot:Connection.Thing.ThingName}/*"}`,
			)},
			checks: []check{
				{ActionPublish, "things/x/y", false},
				{ActionPublish, "other", false},
			},
		},
		{
			name: "invalid requests",
			docs: []string{doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`)},
			checks: []check{
				{0, "x", false},
				{numActions, "x", false},
				{ActionPublish, "", false},
				{ActionPublish, "bad\xffutf8", false},
				{ActionPublish, "ok", true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustSet(t, tt.opts, tt.docs...).Bind(tt.ctx)
			for _, c := range tt.checks {
				if got := b.Allowed(c.action, c.resource); got != c.want {
					t.Errorf("Allowed(%v, %q) = %v, want %v\n%s", c.action, c.resource, got, c.want, b.Explain(c.action, c.resource))
				}
				if got := b.Explain(c.action, c.resource).Allowed; got != c.want {
					t.Errorf("Explain(%v, %q).Allowed = %v, want %v", c.action, c.resource, got, c.want)
				}
			}
		})
	}
}

func TestConditions(t *testing.T) {
	const pub = `"Effect":"Allow","Action":"iot:Publish","Resource":"topic/t",`
	full := Context{
		ClientID: "dev1",
		SourceIP: netip.MustParseAddr("10.1.2.3"),
		Thing:    &Thing{Name: "dev1", TypeName: "sensor", Attributes: map[string]string{"site": "berlin", "Tier": "Gold"}},
		Token:    &Token{Subject: "u1", Scope: []string{"telemetry:write", "cmd:read"}, Claims: map[string]string{"email_verified": "true"}},
	}
	tests := []struct {
		name string
		cond string
		ctx  Context
		want bool
	}{
		{"StringEquals", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"}}`, full, true},
		{"StringEquals mismatch", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"gateway"}}`, full, false},
		{"StringEquals list is OR", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":["gateway","sensor"]}}`, full, true},
		{"StringEquals * is literal", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"*"}}`, full, false},
		{"StringEquals keys are AND", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"sensor","iot:Connection.Thing.Attributes[site]":"paris"}}`, full, false},
		{"operators are AND", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"},"StringLike":{"iot:ClientId":"dev*"}}`, full, true},
		{"key names are case-insensitive", `{"StringEquals":{"IOT:CONNECTION.THING.THINGTYPENAME":"sensor"}}`, full, true},
		{"attribute names are case-sensitive", `{"StringEquals":{"iot:Connection.Thing.Attributes[tier]":"Gold"}}`, full, false},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"iot:Connection.Thing.Attributes[Tier]":"gOLD"}}`, full, true},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"iot:Connection.Thing.Attributes[Tier]":"GOLD"}}`, full, false},
		{"StringNotEquals", `{"StringNotEquals":{"iot:Connection.Thing.ThingTypeName":["gateway","camera"]}}`, full, true},
		{"StringNotEquals hit", `{"StringNotEquals":{"iot:Connection.Thing.ThingTypeName":["gateway","sensor"]}}`, full, false},
		{"StringLike", `{"StringLike":{"iot:ClientId":"dev?"}}`, full, true},
		{"StringNotLike", `{"StringNotLike":{"iot:ClientId":"dev*"}}`, full, false},
		{"variable in value", `{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, full, true},
		{"variable in value, other client", `{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "x", Thing: thing("dev1")}, false},
		{"variable value is literal in StringLike", `{"StringLike":{"iot:ClientId":"${iot:Connection.Thing.Attributes[p]}"}}`, Context{ClientID: "abc", Thing: &Thing{Attributes: map[string]string{"p": "a*"}}}, false},
		{"Bool", `{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}`, full, true},
		{"Bool JSON boolean", `{"Bool":{"iot:Connection.Thing.IsAttached":true}}`, full, true},
		{"Bool false", `{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}`, Context{}, false},
		{"Bool on a claim", `{"Bool":{"gatehouse:Token.Claims[email_verified]":"true"}}`, full, true},
		{"IpAddress", `{"IpAddress":{"aws:SourceIp":["192.168.0.0/16","10.0.0.0/8"]}}`, full, true},
		{"IpAddress miss", `{"IpAddress":{"aws:SourceIp":"192.168.0.0/16"}}`, full, false},
		{"IpAddress single address", `{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}`, full, true},
		{"IpAddress mapped source", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, Context{SourceIP: netip.MustParseAddr("::ffff:10.9.9.9")}, true},
		{"IpAddress IPv6", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, Context{SourceIP: netip.MustParseAddr("2001:db8::1")}, true},
		{"NotIpAddress", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, full, false},
		{"NotIpAddress other", `{"NotIpAddress":{"aws:SourceIp":"192.168.0.0/16"}}`, full, true},
		{"IpAddress unknown source", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, Context{}, false},
		{"Null true on absent key", `{"Null":{"iot:Connection.Thing.ThingName":"true"}}`, Context{}, true},
		{"Null true on present key", `{"Null":{"iot:Connection.Thing.ThingName":"true"}}`, full, false},
		{"Null false on present key", `{"Null":{"iot:Connection.Thing.ThingName":"false"}}`, full, true},
		{"missing key: positive is false", `{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"}}`, Context{}, false},
		{"missing key: negated is true (IAM)", `{"StringNotEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"}}`, Context{}, true},
		{"missing key: IfExists is true", `{"StringEqualsIfExists":{"iot:Connection.Thing.ThingTypeName":"sensor"}}`, Context{}, true},
		{"present key: IfExists compares", `{"StringEqualsIfExists":{"iot:Connection.Thing.ThingTypeName":"gateway"}}`, full, false},
		{"empty value counts as absent", `{"Null":{"iot:ClientId":"true"}}`, Context{ClientID: ""}, true},
		{"ForAnyValue scope", `{"ForAnyValue:StringEquals":{"gatehouse:Token.Scope":"telemetry:write"}}`, full, true},
		{"ForAnyValue scope miss", `{"ForAnyValue:StringEquals":{"gatehouse:Token.Scope":"admin"}}`, full, false},
		{"ForAnyValue StringLike", `{"ForAnyValue:StringLike":{"gatehouse:Token.Scope":"cmd:*"}}`, full, true},
		{"ForAllValues subset", `{"ForAllValues:StringLike":{"gatehouse:Token.Scope":["telemetry:*","cmd:*"]}}`, full, true},
		{"ForAllValues not subset", `{"ForAllValues:StringEquals":{"gatehouse:Token.Scope":["telemetry:write"]}}`, full, false},
		{"ForAllValues on absent key is true (IAM)", `{"ForAllValues:StringEquals":{"gatehouse:Token.Scope":"x"}}`, Context{}, true},
		{"ForAnyValue on absent key is false", `{"ForAnyValue:StringEquals":{"gatehouse:Token.Scope":"x"}}`, Context{}, false},
		{"ForAnyValue StringNotEquals", `{"ForAnyValue:StringNotEquals":{"gatehouse:Token.Scope":"cmd:read"}}`, full, true},
		{"certificate fields", `{"StringEquals":{"iot:Certificate.Subject.Organization":"Acme","iot:Certificate.Issuer.CommonName":"Acme CA"}}`,
			Context{Certificate: &Certificate{Subject: Name{Organization: []string{"Acme"}}, Issuer: Name{CommonName: []string{"Acme CA"}}}}, true},
		{"certificate SAN IP", `{"IpAddress":{"iot:Certificate.Subject.AlternativeName.IPAddress":"10.0.0.0/8"}}`,
			Context{Certificate: &Certificate{SubjectAltName: AltName{IPAddress: []string{"10.0.0.1"}}}}, true},
		{"certificate .List", `{"ForAnyValue:StringLike":{"iot:Certificate.Subject.AlternativeName.DNSName.List":"*.example.com"}}`,
			Context{Certificate: &Certificate{SubjectAltName: AltName{DNSName: []string{"a.example.org", "b.example.com"}}}}, true},
		{"unresolved value in Allow positive: no match", `{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c"}, false},
		{"unresolved value in Allow negated: false", `{"StringNotEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustSet(t, Options{}, doc(`{`+pub+`"Condition":`+tt.cond+`}`)).Bind(tt.ctx)
			if got := b.Allowed(ActionPublish, "t"); got != tt.want {
				t.Errorf("Allowed = %v, want %v\n%s %+v", got, tt.want, b.Explain(ActionPublish, "t"), b.Explain(ActionPublish, "t").NotApplied)
			}
		})
	}
}

// TestDenyConditionUnresolved checks that missing information does not switch a Deny off.
func TestDenyConditionUnresolved(t *testing.T) {
	allowAll := `{"Effect":"Allow","Action":"iot:*","Resource":"*"}`
	tests := []struct {
		name string
		deny string
		ctx  Context
		want bool // Allowed(Publish, "t")
	}{
		{"positive op, value unresolved: treated as *", `{"StringLike":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c"}, false},
		{"positive op, value resolved, differs", `{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c", Thing: thing("d")}, true},
		{"negated op, value unresolved: dropped", `{"StringNotEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c"}, false},
		{"negated op, value resolved, equal", `{"StringNotEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}`, Context{ClientID: "c", Thing: thing("c")}, true},
		{"negated op, one value unresolved, other equal", `{"StringNotEquals":{"iot:ClientId":["${iot:Connection.Thing.ThingName}","c"]}}`, Context{ClientID: "c"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deny := `{"Effect":"Deny","Action":"iot:Publish","Resource":"*","Condition":` + tt.deny + `}`
			b := mustSet(t, Options{}, doc(allowAll, deny)).Bind(tt.ctx)
			if got := b.Allowed(ActionPublish, "t"); got != tt.want {
				t.Errorf("Allowed = %v, want %v\n%s", got, tt.want, b.Explain(ActionPublish, "t"))
			}
		})
	}
}

func TestExplain(t *testing.T) {
	s, err := Compile(
		NamedDocument{Name: "base", Document: mustParse(t, doc(
			`{"Sid":"Pub","Effect":"Allow","Action":"iot:Publish","Resource":"topic/things/${iot:Connection.Thing.ThingName}/*"}`,
			`{"Sid":"Typed","Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringEquals":{"iot:Connection.Thing.ThingTypeName":"gateway"}}}`,
		))},
		NamedDocument{Name: "guard", Document: mustParse(t, doc(
			`{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}`,
			`{"Sid":"NoAdmin","Effect":"Deny","Action":"iot:Publish","Resource":"topic/things/*/admin"}`,
		))},
	)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bind(Context{Thing: &Thing{Name: "d1", TypeName: "sensor"}})

	d := b.Explain(ActionPublish, "things/d1/admin")
	if d.Allowed || d.Reason != ExplicitDeny {
		t.Errorf("Explain(admin) = %v, %v, want false, ExplicitDeny", d.Allowed, d.Reason)
	}
	want := []StatementRef{
		{Policy: "guard", Index: 1, Sid: "NoAdmin", Effect: Deny},
		{Policy: "base", Index: 0, Sid: "Pub", Effect: Allow},
	}
	if len(d.Matched) != len(want) || d.Matched[0] != want[0] || d.Matched[1] != want[1] {
		t.Errorf("Explain(admin).Matched = %+v, want %+v", d.Matched, want)
	}
	if len(d.NotApplied) != 1 || d.NotApplied[0].Sid != "Typed" || !strings.Contains(d.NotApplied[0].Why, "ThingTypeName") {
		t.Errorf("Explain(admin).NotApplied = %+v, want the Typed statement with its condition", d.NotApplied)
	}
	if s := d.String(); !strings.Contains(s, "ExplicitDeny") || !strings.Contains(s, `"NoAdmin"`) {
		t.Errorf("Decision.String() = %q, want the reason and the Sid", s)
	}

	d = b.Explain(ActionPublish, "things/d1/data")
	if !d.Allowed || d.Reason != ExplicitAllow || len(d.Matched) != 1 {
		t.Errorf("Explain(data) = %v, %v, %v, want true, ExplicitAllow, one statement", d.Allowed, d.Reason, d.Matched)
	}
	d = b.Explain(ActionPublish, "elsewhere")
	if d.Allowed || d.Reason != ImplicitDeny || len(d.Matched) != 0 {
		t.Errorf("Explain(elsewhere) = %v, %v, %v, want false, ImplicitDeny, none", d.Allowed, d.Reason, d.Matched)
	}
	d = b.Explain(ActionPublish, "bad\xff")
	if d.Allowed || d.Problem == "" {
		t.Errorf("Explain(bad utf8) = %v, problem %q, want false and a problem", d.Allowed, d.Problem)
	}

	// Unresolved variables are explained.
	b = s.Bind(Context{})
	d = b.Explain(ActionPublish, "things/x/data")
	found := false
	for _, n := range d.NotApplied {
		if n.Sid == "Pub" && strings.Contains(n.Why, "${iot:Connection.Thing.ThingName} has no value") {
			found = true
		}
	}
	if !found {
		t.Errorf("Explain(unresolved).NotApplied = %+v, want Pub with the missing thing name", d.NotApplied)
	}
}

func TestExplainRegion(t *testing.T) {
	s := mustSet(t, Options{Region: "eu-west-1"}, doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:1:topic/x"}`))
	d := s.Bind(Context{}).Explain(ActionPublish, "x")
	if d.Allowed || len(d.NotApplied) != 1 || !strings.Contains(d.NotApplied[0].Why, "region") {
		t.Errorf("Explain = %v, %+v, want a denial explained by the region", d.Allowed, d.NotApplied)
	}
}

func TestNilSafety(t *testing.T) {
	var b *Bound
	if b.Allowed(ActionPublish, "x") {
		t.Error("nil Bound allowed a request")
	}
	var s *Set
	if s.Bind(Context{}).Allowed(ActionPublish, "x") {
		t.Error("nil Set allowed a request")
	}
	if d := s.Bind(Context{}).Explain(ActionPublish, "x"); d.Allowed {
		t.Error("nil Set explained an allow")
	}
	empty, err := Compile()
	if err != nil {
		t.Fatal(err)
	}
	if empty.Bind(Context{}).Allowed(ActionConnect, "x") {
		t.Error("empty Set allowed a request")
	}
}

func TestCompileErrors(t *testing.T) {
	d := mustParse(t, doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`))
	if _, err := Compile(NamedDocument{Name: "a", Document: d}, NamedDocument{Name: "a", Document: d}); err == nil {
		t.Error("Compile with duplicate names: err = nil, want an error")
	}
	if _, err := Compile(NamedDocument{Name: "a"}); err == nil {
		t.Error("Compile with a nil document: err = nil, want an error")
	}
}

// TestBoundConcurrent exercises a shared Bound from several goroutines (run with -race).
func TestBoundConcurrent(t *testing.T) {
	b := mustSet(t, Options{}, benchPolicy).Bind(benchContext)
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 1000 {
				ok = ok && b.Allowed(ActionPublish, "things/sensor-42/telemetry")
				ok = ok && !b.Allowed(ActionPublish, "things/sensor-42/admin/reboot")
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("concurrent Allowed gave a wrong answer")
		}
	}
}

func TestParseAction(t *testing.T) {
	for a := Action(1); a < numActions; a++ {
		got, err := ParseAction(strings.ToUpper(a.String()))
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v, want %v, nil", strings.ToUpper(a.String()), got, err, a)
		}
	}
	if _, err := ParseAction("iot:*"); err == nil {
		t.Error(`ParseAction("iot:*") err = nil, want an error`)
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse([]byte(doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`, `{"Effect":"Alow","Action":"*","Resource":"*"}`)))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Parse error %v is not a *Error", err)
	}
	if pe.Statement != 1 {
		t.Errorf("Error.Statement = %d, want 1", pe.Statement)
	}
	if got, want := err.Error(), `policy: statement 1: Effect "Alow" is not Allow or Deny`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
