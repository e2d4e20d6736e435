package awsiot_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// BenchmarkDescribeThing measures one DescribeThing through the real AWS
// SDK client: signing, HTTP, Signature V4 verification (key lookup and
// unsealing included) and the registry read.
func BenchmarkDescribeThing(b *testing.B) {
	srv := newServer(b, "")
	if _, err := srv.reg.CreateThing(b.Context(), registry.NewThing{Name: "pump-1", Attributes: map[string]string{"site": "north"}}); err != nil {
		b.Fatal(err)
	}
	c := srv.client(srv.id, srv.secret, "eu-west-1")
	in := &iot.DescribeThingInput{ThingName: aws.String("pump-1")}
	for b.Loop() {
		if _, err := c.DescribeThing(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}
