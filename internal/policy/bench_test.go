package policy

import (
	"net/netip"
	"testing"
)

// benchPolicy is a typical device policy: connect as the attached thing, publish and
// receive under its own subtree and shadow, subscribe to its subtree, publish a
// status for its site, and never to an admin topic.
const benchPolicy = `{"Version":"2012-10-17","Statement":[
 {"Sid":"Connect","Effect":"Allow","Action":"iot:Connect",
  "Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}",
  "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}},
 {"Sid":"Own","Effect":"Allow","Action":["iot:Publish","iot:Receive"],
  "Resource":["arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*",
              "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"]},
 {"Sid":"Subscribe","Effect":"Allow","Action":"iot:Subscribe",
  "Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/things/${iot:Connection.Thing.ThingName}/*"},
 {"Sid":"Site","Effect":"Allow","Action":"iot:Publish",
  "Resource":"arn:aws:iot:us-east-1:123456789012:topic/fleet/${iot:Connection.Thing.Attributes[site]}/??/status"},
 {"Sid":"NoAdmin","Effect":"Deny","Action":"iot:Publish",
  "Resource":"arn:aws:iot:us-east-1:123456789012:topic/things/*/admin/*"}
]}`

var benchContext = Context{
	ClientID: "sensor-42",
	SourceIP: netip.MustParseAddr("192.0.2.7"),
	Thing:    &Thing{Name: "sensor-42", TypeName: "sensor", Attributes: map[string]string{"site": "berlin"}},
}

func benchBound(b *testing.B) *Bound {
	b.Helper()
	return mustSet(b, Options{Region: "us-east-1", Account: "123456789012"}, benchPolicy).Bind(benchContext)
}

// benchAllowed benchmarks one Allowed call and fails if it allocates.
func benchAllowed(b *testing.B, a Action, resource string, want bool) {
	bound := benchBound(b)
	if got := bound.Allowed(a, resource); got != want {
		b.Fatalf("Allowed(%v, %q) = %v, want %v", a, resource, got, want)
	}
	if n := testing.AllocsPerRun(1000, func() { bound.Allowed(a, resource) }); n != 0 {
		b.Fatalf("Allowed(%v, %q) allocates %v times per call, want 0", a, resource, n)
	}
	b.ReportAllocs()
	for b.Loop() {
		bound.Allowed(a, resource)
	}
}

func BenchmarkAllowedPublish(b *testing.B) {
	benchAllowed(b, ActionPublish, "things/sensor-42/telemetry", true)
}

func BenchmarkAllowedPublishShadow(b *testing.B) {
	benchAllowed(b, ActionPublish, "$aws/things/sensor-42/shadow/update", true)
}

func BenchmarkAllowedPublishExplicitDeny(b *testing.B) {
	benchAllowed(b, ActionPublish, "things/sensor-42/admin/reboot", false)
}

func BenchmarkAllowedPublishImplicitDeny(b *testing.B) {
	benchAllowed(b, ActionPublish, "fleet/paris/01/status", false)
}

func BenchmarkAllowedSubscribe(b *testing.B) {
	benchAllowed(b, ActionSubscribe, "things/sensor-42/cmd/#", true)
}

func BenchmarkAllowedReceive(b *testing.B) {
	benchAllowed(b, ActionReceive, "things/sensor-42/cmd/reboot", true)
}

func BenchmarkBind(b *testing.B) {
	s := mustSet(b, Options{}, benchPolicy)
	b.ReportAllocs()
	for b.Loop() {
		s.Bind(benchContext)
	}
}

func BenchmarkParse(b *testing.B) {
	data := []byte(benchPolicy)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchFilter(b *testing.B) {
	if n := testing.AllocsPerRun(100, func() { MatchFilter("things/+/cmd/#", "things/sensor-42/cmd/reboot/now") }); n != 0 {
		b.Fatalf("MatchFilter allocates %v times per call, want 0", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		MatchFilter("things/+/cmd/#", "things/sensor-42/cmd/reboot/now")
	}
}

func BenchmarkValidateTopicFilter(b *testing.B) {
	if n := testing.AllocsPerRun(100, func() { _ = ValidateTopicFilter("things/+/cmd/#") }); n != 0 {
		b.Fatalf("ValidateTopicFilter allocates %v times per call, want 0", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateTopicFilter("things/+/cmd/#")
	}
}
