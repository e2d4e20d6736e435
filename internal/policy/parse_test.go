package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	allow := func(fields string) string {
		return doc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/x"` + fields + `}`)
	}
	stmt := func(s string) string { return doc(s) }
	var many []string
	for range MaxStatements + 1 {
		many = append(many, `{"Effect":"Allow","Action":"*","Resource":"*"}`)
	}
	tests := []struct {
		name    string
		src     string
		wantErr string // substring of the error
	}{
		{"empty input", ``, "unexpected end"},
		{"truncated", `{"Version":"2012-10-17","Statement":[`, "unexpected end"},
		{"syntax error", `{"Version":"2012-10-17",}`, "invalid JSON"},
		{"not an object", `[]`, "document must be an object"},
		{"trailing data", doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`) + `{}`, "after the document"},
		{"trailing garbage", doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`) + `x`, "invalid JSON after the document"},
		{"invalid UTF-8", "{\"Version\":\"2012-10-17\",\"Id\":\"\xff\"}", "not valid UTF-8"},
		{"too large", `{"Version":"2012-10-17","Id":"` + strings.Repeat("a", MaxDocumentSize) + `"}`, "more than the limit"},
		{"too many statements", doc(many...), "more than 100 statements"},
		{"unknown top-level field", `{"Version":"2012-10-17","Foo":1,"Statement":[]}`, `unknown field "Foo"`},
		{"lower-case field", `{"version":"2012-10-17"}`, `did you mean "Version"`},
		{"duplicate field", `{"Version":"2012-10-17","Version":"2012-10-17"}`, `duplicate field "Version"`},
		{"missing version", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "Version is missing"},
		{"old version", `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "policy variables need"},
		{"bad version", `{"Version":"2012-10-18","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, `Version "2012-10-18" is not`},
		{"version not a string", `{"Version":2012}`, "Version must be a string, got a number"},
		{"missing statement", `{"Version":"2012-10-17"}`, "Statement is missing"},
		{"empty statement list", doc(), "Statement is an empty list"},
		{"statement not an object", `{"Version":"2012-10-17","Statement":"x"}`, "Statement must be an object or a list"},
		{"statement list of strings", doc(`"x"`), "a statement must be an object"},
		{"bad effect", stmt(`{"Effect":"Alow","Action":"*","Resource":"*"}`), `statement 0: Effect "Alow" is not Allow or Deny`},
		{"lower-case effect value", stmt(`{"Effect":"allow","Action":"*","Resource":"*"}`), `Effect "allow" is not Allow or Deny`},
		{"missing effect", stmt(`{"Action":"*","Resource":"*"}`), "Effect is missing"},
		{"missing action", stmt(`{"Effect":"Allow","Resource":"*"}`), "Action (or NotAction) is missing"},
		{"missing resource", stmt(`{"Effect":"Allow","Action":"*"}`), "Resource (or NotResource) is missing"},
		{"action and notaction", stmt(`{"Effect":"Allow","Action":"*","NotAction":"iot:Connect","Resource":"*"}`), "both Action and NotAction"},
		{"resource and notresource", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}`), "both Resource and NotResource"},
		{"duplicate effect", stmt(`{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}`), `duplicate field "Effect"`},
		{"unknown statement field", allow(`,"Foo":"x"`), `statement 0: unknown field "Foo"`},
		{"principal", allow(`,"Principal":"*"`), "Principal is not allowed"},
		{"sid not a string", allow(`,"Sid":1`), "Sid must be a string"},
		{"empty action list", stmt(`{"Effect":"Allow","Action":[],"Resource":"*"}`), "Action is an empty list"},
		{"action list with a number", stmt(`{"Effect":"Allow","Action":["iot:Publish",1],"Resource":"*"}`), "Action[1] must be a string, got a number"},
		{"action object", stmt(`{"Effect":"Allow","Action":{},"Resource":"*"}`), "Action must be a string or a list of strings, got an object"},
		{"unknown action", stmt(`{"Effect":"Allow","Action":"iot:Publsh","Resource":"*"}`), `Action[0]: unknown action "iot:Publsh"`},
		{"other service", stmt(`{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`), `service "s3" is not iot`},
		{"greengrass", stmt(`{"Effect":"Allow","Action":"greengrass:*","Resource":"*"}`), `service "greengrass" is not iot`},
		{"wildcard service", stmt(`{"Effect":"Allow","Action":"io*:Publish","Resource":"*"}`), "wildcards are not allowed in the service prefix"},
		{"no service", stmt(`{"Effect":"Allow","Action":"Publish","Resource":"*"}`), "no service prefix"},
		{"wildcard matching nothing", stmt(`{"Effect":"Allow","Action":"iot:Foo*","Resource":"*"}`), "matches no known iot action"},
		{"bad notaction", stmt(`{"Effect":"Allow","NotAction":"iot:Nope","Resource":"*"}`), `NotAction[0]: unknown action`},
		{"empty resource list", stmt(`{"Effect":"Allow","Action":"*","Resource":[]}`), "Resource is an empty list"},
		{"unknown short type", stmt(`{"Effect":"Allow","Action":"*","Resource":"topics/x"}`), `expected "*", an ARN`},
		{"bare name", stmt(`{"Effect":"Allow","Action":"*","Resource":"mytopic"}`), `expected "*", an ARN`},
		{"short ARN", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:us-east-1:topic/x"}`), "ARN must have the form"},
		{"ARN of another service", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::bucket/x"}`), `the ARN service "s3" is not iot`},
		{"ARN unknown type", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:r:1:cert/abc"}`), `unknown resource type "cert"`},
		{"ARN type without name", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:r:1:topic"}`), "expected topic/NAME"},
		{"ARN wildcard type matching nothing", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:r:1:x*"}`), "matches no client"},
		{"ARN empty partition", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn::iot:r:1:topic/x"}`), "partition is empty"},
		{"variable in region", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:${iot:ClientId}:1:topic/x"}`), "not allowed in the ARN region"},
		{"variable in type", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:r:1:${iot:ClientId}"}`), "is in the resource type"},
		{"variable in type with star", stmt(`{"Effect":"Allow","Action":"*","Resource":"arn:aws:iot:r:1:t*${iot:ClientId}/x"}`), "is in the resource type"},
		{"unknown variable", allow(`,"Resource":"topic/${iot:Foo}"`)[0:0] + stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:Foo}"}`), `variable ${iot:Foo}: unknown key`},
		{"unterminated variable", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:ClientId"}`), "is not closed"},
		{"empty variable", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${}"}`), "empty variable"},
		{"default value", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:ClientId, 'x'}"}`), "default values are not supported"},
		{"empty attribute", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:Connection.Thing.Attributes[]}"}`), "empty name in brackets"},
		{"bracket on wrong key", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:ClientId[x]}"}`), "take a name in brackets"},
		{"unknown cert field", stmt(`{"Effect":"Allow","Action":"*","Resource":"topic/${iot:Certificate.Subject.Nickname}"}`), "unknown certificate name attribute"},
		{"condition not an object", allow(`,"Condition":[]`), "Condition must be an object"},
		{"unknown operator", allow(`,"Condition":{"StringEqual":{"iot:ClientId":"a"}}`), `unknown condition operator "StringEqual"`},
		{"unsupported operator", allow(`,"Condition":{"NumericEquals":{"iot:ClientId":"1"}}`), "is not supported by Gatehouse"},
		{"bad qualifier", allow(`,"Condition":{"ForSomeValues:StringEquals":{"iot:ClientId":"a"}}`), "unknown condition operator qualifier"},
		{"Null with IfExists", allow(`,"Condition":{"NullIfExists":{"iot:ClientId":"true"}}`), "Null takes no qualifier"},
		{"unknown condition key", allow(`,"Condition":{"StringEquals":{"iot:Foo":"a"}}`), `condition key "iot:Foo": unknown key`},
		{"no keys", allow(`,"Condition":{"StringEquals":{}}`), "has no keys"},
		{"empty value list", allow(`,"Condition":{"StringEquals":{"iot:ClientId":[]}}`), "empty list of values"},
		{"null value", allow(`,"Condition":{"StringEquals":{"iot:ClientId":null}}`), "got null"},
		{"object value", allow(`,"Condition":{"StringEquals":{"iot:ClientId":["a",{}]}}`), "value [1] must be a string"},
		{"multi-valued key needs a qualifier", allow(`,"Condition":{"StringEquals":{"gatehouse:Token.Scope":"a"}}`), "use ForAnyValue:StringEquals or ForAllValues:StringEquals"},
		{"IpAddress on a string key", allow(`,"Condition":{"IpAddress":{"iot:ClientId":"10.0.0.0/8"}}`), "needs an IP address key"},
		{"Bool on an IP key", allow(`,"Condition":{"Bool":{"aws:SourceIp":"true"}}`), "is an IP address key"},
		{"bad CIDR", allow(`,"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}`), "not an IP address or CIDR block"},
		{"bad IP", allow(`,"Condition":{"NotIpAddress":{"aws:SourceIp":"example.com"}}`), "not an IP address or CIDR block"},
		{"bad Bool", allow(`,"Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"yes"}}`), `value "yes" is not true or false`},
		{"variable in Bool", allow(`,"Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"${iot:ClientId}"}}`), "is not true or false"},
		{"bad variable in condition", allow(`,"Condition":{"StringEquals":{"iot:ClientId":"${iot:Nope}"}}`), "unknown key"},
		{"duplicate operator", allow(`,"Condition":{"StringEquals":{"iot:ClientId":"a"},"StringEquals":{"iot:ClientId":"b"}}`), `duplicate field "StringEquals"`},
		{"duplicate condition key", allow(`,"Condition":{"StringEquals":{"iot:ClientId":"a","iot:ClientId":"b"}}`), `duplicate field "iot:ClientId"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse(%.80q) = %v, nil, want an error containing %q", tt.src, d, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%.80q) error = %q, want it to contain %q", tt.src, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "policy: ") {
				t.Errorf("Parse error %q does not start with \"policy: \"", err)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("Parse error %v (%T) is not a *Error", err, err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		len  int
	}{
		{"single statement object", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}`, 1},
		{"Id and Sid", `{"Version":"2012-10-17","Id":"p1","Statement":[{"Sid":"s","Effect":"Deny","Action":["iot:Publish"],"Resource":["topic/a"]}]}`, 1},
		{"white space", " \n{ \"Version\" : \"2012-10-17\" ,\n \"Statement\" : [ { \"Effect\":\"Allow\", \"Action\":\"*\", \"Resource\":\"*\" } ] }\n", 1},
		{"AWS custom authorizer example", `{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/myClientName"},
			{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/telemetry/${iot:ClientId}"}]}`, 2},
		{"all condition forms", doc(`{"Effect":"Allow","Action":"*","Resource":"*","Condition":{
			"StringEqualsIfExists":{"iot:ClientId":["a",1,true]},
			"ForAnyValue:StringLike":{"gatehouse:Token.Scope":"x*"},
			"ForAllValues:StringNotEqualsIgnoreCase":{"iot:Certificate.Subject.OrganizationalUnit.List":"x"},
			"Null":{"iot:Connection.Thing.ThingName":false},
			"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::1","::ffff:192.168.0.0/112"]}}}`), 1},
		{"every variable", doc(`{"Effect":"Allow","Action":"*","Resource":[
			"topic/${iot:ClientId}/${aws:SourceIp}/${iot:Connection.Thing.ThingName}/${iot:Connection.Thing.ThingTypeName}",
			"topic/${iot:Connection.Thing.Attributes[a.b-c]}/${iot:Connection.Thing.IsAttached}/${iot:Certificate.SerialNumber}",
			"topic/${iot:Certificate.Subject.CommonName}/${iot:Certificate.Issuer.GenerationQualifier}/${iot:Certificate.Subject.AlternativeName.DNSName}",
			"topic/${iot:Certificate.Issuer.AlternativeName.UniformResourceIdentifier.List}/${gatehouse:Token.Subject}/${gatehouse:Token.ClientId}",
			"topic/${gatehouse:Token.Scope}/${gatehouse:Token.Claims[tenant]}/${*}${?}${$}"]}`), 1},
		{"wildcards in region and account", doc(`{"Effect":"Allow","Action":"*","Resource":"arn:aws-cn:iot:*:????????????:topic/x"}`), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := d.Len(); got != tt.len {
				t.Errorf("Len() = %d, want %d", got, tt.len)
			}
		})
	}
}

func TestKeyNamesRoundTrip(t *testing.T) {
	names := []string{
		"aws:SourceIp", "iot:ClientId", "iot:Connection.Thing.ThingName", "iot:Connection.Thing.ThingTypeName",
		"iot:Connection.Thing.Attributes[x]", "iot:Connection.Thing.IsAttached", "iot:Certificate.SerialNumber",
		"gatehouse:Token.Subject", "gatehouse:Token.ClientId", "gatehouse:Token.Scope", "gatehouse:Token.Claims[x]",
		"gatehouse:User.Name", "gatehouse:User.Groups", "gatehouse:User.Things.owner", "gatehouse:Thing.Children",
	}
	for _, side := range []string{"Subject", "Issuer"} {
		for f := range numNameFields {
			names = append(names, "iot:Certificate."+side+"."+nameFieldName(f), "iot:Certificate."+side+"."+nameFieldName(f)+".List")
		}
		for f := range numAltFields {
			names = append(names, "iot:Certificate."+side+".AlternativeName."+altFieldName(f))
		}
	}
	for _, n := range names {
		k, err := parseKey(n)
		if err != nil {
			t.Errorf("parseKey(%q): %v", n, err)
			continue
		}
		if got := k.String(); got != n {
			t.Errorf("parseKey(%q).String() = %q, want %q", n, got, n)
		}
		if k2, err := parseKey(strings.ToLower(n)); err != nil || (k2.arg == k.arg && k2 != k) {
			t.Errorf("parseKey(%q) = %v, %v, want %v", strings.ToLower(n), k2, err, k)
		}
	}
}
