package policy_test

import (
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

func Example() {
	doc, err := policy.Parse([]byte(`{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Effect": "Allow", "Action": "iot:Connect",
	     "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
	    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
	     "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*"},
	    {"Effect": "Deny", "Action": "iot:Publish",
	     "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/*/admin/*"}
	  ]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	set, err := policy.Compile(policy.NamedDocument{Name: "device", Document: doc})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Once per connection:
	b := set.Bind(policy.Context{ClientID: "sensor-1", Thing: &policy.Thing{Name: "sensor-1"}})
	// On every packet:
	fmt.Println(b.Allowed(policy.ActionConnect, "sensor-1"))
	fmt.Println(b.Allowed(policy.ActionPublish, "things/sensor-1/telemetry"))
	fmt.Println(b.Allowed(policy.ActionPublish, "things/sensor-2/telemetry"))
	fmt.Println(b.Allowed(policy.ActionPublish, "things/sensor-1/admin/reboot"))
	// Output:
	// true
	// true
	// false
	// false
}

func ExampleBound_Explain() {
	doc, _ := policy.Parse([]byte(`{"Version": "2012-10-17", "Statement": [
	  {"Sid": "Telemetry", "Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/things/${iot:ClientId}/*"},
	  {"Sid": "NoAdmin", "Effect": "Deny", "Action": "iot:Publish", "Resource": "topic/things/*/admin/*"}]}`))
	set, _ := policy.Compile(policy.NamedDocument{Name: "device", Document: doc})
	b := set.Bind(policy.Context{ClientID: "sensor-1"})

	d := b.Explain(policy.ActionPublish, "things/sensor-1/admin/reboot")
	fmt.Println(d.Allowed, d.Reason)
	for _, m := range d.Matched {
		fmt.Println(m.Effect, m)
	}
	// Output:
	// false ExplicitDeny
	// Deny "device" statement 1 (Sid "NoAdmin")
	// Allow "device" statement 0 (Sid "Telemetry")
}

func ExampleParse_error() {
	_, err := policy.Parse([]byte(`{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
	  {"Effect": "Alow", "Action": "iot:Publish", "Resource": "*"}]}`))
	fmt.Println(err)
	var pe *policy.Error
	if errors.As(err, &pe) {
		fmt.Println("statement", pe.Statement)
	}
	// Output:
	// policy: statement 1: Effect "Alow" is not Allow or Deny
	// statement 1
}

func ExampleMatchFilter() {
	fmt.Println(policy.MatchFilter("sport/tennis/+/score", "sport/tennis/player1/score"))
	fmt.Println(policy.MatchFilter("sport/#", "sport"))
	fmt.Println(policy.MatchFilter("#", "$SYS/broker/uptime"))
	// Output:
	// true
	// true
	// false
}

func ExampleValidateTopicFilter() {
	fmt.Println(policy.ValidateTopicFilter("sport/+/score/#"))
	fmt.Println(policy.ValidateTopicFilter("sport/tennis#"))
	err := policy.ValidateTopicName("sport/+/score")
	var te *policy.TopicError
	if errors.As(err, &te) && te.Reason == policy.TopicWildcard {
		fmt.Println("wildcards are not allowed in topic names")
	}
	// Output:
	// <nil>
	// policy: topic filter "sport/tennis#" has a wildcard that is not a whole level (+), or # that is not the last level
	// wildcards are not allowed in topic names
}
