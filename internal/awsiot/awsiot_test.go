package awsiot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/aws/smithy-go"

	"github.com/gatehouse-iot/gatehouse/internal/awsiot"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

type server struct {
	url            string
	reg            *registry.Service
	keys           *awsiot.Keys
	id, secret     string
	readID, readSK string
	skew           time.Duration
}

func newServer(t testing.TB, region string) *server {
	t.Helper()
	env := testenv.Core(t)
	s, reg, log := env.Store, env.Registry, env.Events
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{reg: reg, keys: awsiot.NewKeys(s, log, sealer, nil, time.Now)}
	key, secret, err := srv.keys.Create(t.Context(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.id, srv.secret = key.ID, secret
	ro, roSecret, err := srv.keys.Create(t.Context(), "read-only", []string{"operator"})
	if err != nil {
		t.Fatal(err)
	}
	srv.readID, srv.readSK = ro.ID, roSecret
	h := awsiot.New(awsiot.Config{Registry: reg, Keys: srv.keys, Prefix: "/aws-iot", Region: region, Now: func() time.Time { return time.Now().Add(srv.skew) }})
	mux := http.NewServeMux()
	mux.Handle("/aws-iot/", h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	srv.url = hs.URL + "/aws-iot"
	return srv
}

func (s *server) client(id, secret, region string) *iot.Client {
	return iot.New(iot.Options{Region: region, BaseEndpoint: aws.String(s.url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestThingsWithTheAWSSDK(t *testing.T) {
	ctx := t.Context()
	srv := newServer(t, "")
	c := srv.client(srv.id, srv.secret, "eu-west-1")

	if _, err := c.CreateThingType(ctx, &iot.CreateThingTypeInput{ThingTypeName: aws.String("sensor"),
		ThingTypeProperties: &types.ThingTypeProperties{ThingTypeDescription: aws.String("temperature sensors"), SearchableAttributes: []string{"site"}}}); err != nil {
		t.Fatalf("CreateThingType: %v", err)
	}
	_, err := c.CreateThingType(ctx, &iot.CreateThingTypeInput{ThingTypeName: aws.String("sensor")})
	var exists *types.ResourceAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("CreateThingType twice: err = %v, want ResourceAlreadyExistsException", err)
	}
	dt, err := c.DescribeThingType(ctx, &iot.DescribeThingTypeInput{ThingTypeName: aws.String("sensor")})
	if err != nil || aws.ToString(dt.ThingTypeProperties.ThingTypeDescription) != "temperature sensors" || !slices.Equal(dt.ThingTypeProperties.SearchableAttributes, []string{"site"}) || dt.ThingTypeMetadata.CreationDate == nil {
		t.Errorf("DescribeThingType = %+v, %v", dt, err)
	}

	for i, name := range []string{"s-1", "s-2", "s-3", "s-4", "s-5"} {
		in := &iot.CreateThingInput{ThingName: aws.String(name), AttributePayload: &types.AttributePayload{Attributes: map[string]string{"site": []string{"north", "south"}[i%2], "n": name}}}
		if i < 3 {
			in.ThingTypeName = aws.String("sensor")
		}
		out, err := c.CreateThing(ctx, in)
		if err != nil {
			t.Fatalf("CreateThing(%s): %v", name, err)
		}
		if aws.ToString(out.ThingName) != name || !strings.HasSuffix(aws.ToString(out.ThingArn), ":thing/"+name) || aws.ToString(out.ThingId) == "" {
			t.Errorf("CreateThing(%s) = %+v", name, out)
		}
	}
	// An identical CreateThing succeeds; a different one does not.
	if _, err := c.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("s-4"), AttributePayload: &types.AttributePayload{Attributes: map[string]string{"site": "south", "n": "s-4"}}}); err != nil {
		t.Errorf("identical CreateThing: %v", err)
	}
	if _, err := c.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("s-4")}); !errors.As(err, &exists) {
		t.Errorf("different CreateThing: err = %v, want ResourceAlreadyExistsException", err)
	}

	// Pagination and filters.
	list := func(in *iot.ListThingsInput) []string {
		t.Helper()
		var names []string
		p := iot.NewListThingsPaginator(c, in)
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListThings: %v", err)
			}
			pages++
			for _, th := range out.Things {
				names = append(names, aws.ToString(th.ThingName))
			}
		}
		return names
	}
	tests := []struct {
		name string
		in   *iot.ListThingsInput
		want []string
	}{
		{"all in pages of 2", &iot.ListThingsInput{MaxResults: aws.Int32(2)}, []string{"s-1", "s-2", "s-3", "s-4", "s-5"}},
		{"by type", &iot.ListThingsInput{ThingTypeName: aws.String("sensor"), MaxResults: aws.Int32(1)}, []string{"s-1", "s-2", "s-3"}},
		{"by attribute", &iot.ListThingsInput{AttributeName: aws.String("site"), AttributeValue: aws.String("south")}, []string{"s-2", "s-4"}},
		{"by attribute prefix", &iot.ListThingsInput{AttributeName: aws.String("site"), AttributeValue: aws.String("nor"), UsePrefixAttributeValue: true, MaxResults: aws.Int32(1)}, []string{"s-1", "s-3", "s-5"}},
		{"type and attribute", &iot.ListThingsInput{ThingTypeName: aws.String("sensor"), AttributeName: aws.String("site"), AttributeValue: aws.String("north")}, []string{"s-1", "s-3"}},
	}
	for _, tc := range tests {
		if got := list(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ListThings = %v, want %v", tc.name, got, tc.want)
		}
	}

	d, err := c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("s-1")})
	if err != nil || d.Version != 1 || aws.ToString(d.ThingTypeName) != "sensor" || d.Attributes["site"] != "north" || aws.ToString(d.DefaultClientId) != "s-1" {
		t.Fatalf("DescribeThing = %+v, %v", d, err)
	}
	// merge=true: add one attribute, remove one with "".
	if _, err := c.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("s-1"), ExpectedVersion: aws.Int64(1),
		AttributePayload: &types.AttributePayload{Attributes: map[string]string{"fw": "2.0", "n": ""}, Merge: true}}); err != nil {
		t.Fatalf("UpdateThing merge: %v", err)
	}
	d, _ = c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("s-1")})
	if d.Version != 2 || len(d.Attributes) != 2 || d.Attributes["fw"] != "2.0" || d.Attributes["site"] != "north" {
		t.Errorf("after merge: version %d attributes %v, want 2 {fw:2.0 site:north}", d.Version, d.Attributes)
	}
	// merge=false replaces; removeThingType drops the type.
	if _, err := c.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("s-1"), RemoveThingType: true,
		AttributePayload: &types.AttributePayload{Attributes: map[string]string{"only": "this"}}}); err != nil {
		t.Fatalf("UpdateThing replace: %v", err)
	}
	d, _ = c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("s-1")})
	if d.Version != 3 || len(d.Attributes) != 1 || d.Attributes["only"] != "this" || d.ThingTypeName != nil {
		t.Errorf("after replace: %+v", d)
	}
	_, err = c.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("s-1"), ExpectedVersion: aws.Int64(1), ThingTypeName: aws.String("sensor")})
	var conflict *types.VersionConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("stale UpdateThing: err = %v, want VersionConflictException", err)
	}
	_, err = c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("nope")})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("DescribeThing(nope): err = %v, want ResourceNotFoundException", err)
	}
	_, err = c.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("s-2"), AttributePayload: &types.AttributePayload{Attributes: map[string]string{"bad key!": "x"}}})
	var invalid *types.InvalidRequestException
	if !errors.As(err, &invalid) {
		t.Errorf("UpdateThing with a bad attribute: err = %v, want InvalidRequestException", err)
	}
	_, err = c.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("x"), ThingTypeName: aws.String("no-such-type")})
	if !errors.As(err, &invalid) {
		t.Errorf("CreateThing with an unknown type: err = %v, want InvalidRequestException", err)
	}
	if _, err := c.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String("s-2"), ExpectedVersion: aws.Int64(5)}); !errors.As(err, &conflict) {
		t.Errorf("stale DeleteThing: err = %v, want VersionConflictException", err)
	}
	if _, err := c.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String("s-2"), ExpectedVersion: aws.Int64(1)}); err != nil {
		t.Errorf("DeleteThing: %v", err)
	}
	if _, err := c.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String("s-2")}); err != nil {
		t.Errorf("DeleteThing of a missing thing: %v (AWS succeeds)", err)
	}
	if _, err := srv.reg.Thing(ctx, "s-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("s-2 after DeleteThing: %v, want gone", err)
	}
	// Names with characters the path escapes sign and resolve too.
	if _, err := c.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("plant:7_line-2")}); err != nil {
		t.Errorf("CreateThing(plant:7_line-2): %v", err)
	}
	if d, err := c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("plant:7_line-2")}); err != nil || aws.ToString(d.ThingName) != "plant:7_line-2" {
		t.Errorf("DescribeThing(plant:7_line-2) = %+v, %v", d, err)
	}
	tts, err := c.ListThingTypes(ctx, &iot.ListThingTypesInput{})
	if err != nil || len(tts.ThingTypes) != 1 || aws.ToString(tts.ThingTypes[0].ThingTypeName) != "sensor" {
		t.Errorf("ListThingTypes = %+v, %v", tts, err)
	}
	// Changes are recorded with the access key as actor.
	evs, _ := srv.reg.Store().ListEvents(ctx, store.EventFilter{Type: "thing.created", Limit: 10})
	if len(evs) == 0 || evs[0].Actor != "aws_key:"+srv.id {
		t.Errorf("thing.created events = %+v, want actor aws_key:%s", evs, srv.id)
	}
}

func TestSignatureVerification(t *testing.T) {
	ctx := t.Context()
	srv := newServer(t, "eu-west-1")
	if _, err := srv.reg.CreateThing(ctx, registry.NewThing{Name: "t-1"}); err != nil {
		t.Fatal(err)
	}
	describe := func(c *iot.Client) error {
		_, err := c.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("t-1")})
		return err
	}
	tests := []struct {
		name string
		call func() error
		skew time.Duration
		want string
	}{
		{"good", func() error { return describe(srv.client(srv.id, srv.secret, "eu-west-1")) }, 0, ""},
		{"wrong secret", func() error { return describe(srv.client(srv.id, srv.secret+"x", "eu-west-1")) }, 0, "InvalidSignatureException"},
		{"unknown key", func() error { return describe(srv.client("GHIAUNKNOWN", srv.secret, "eu-west-1")) }, 0, "UnrecognizedClientException"},
		{"wrong region", func() error { return describe(srv.client(srv.id, srv.secret, "us-east-1")) }, 0, "InvalidSignatureException"},
		{"clock skew", func() error { return describe(srv.client(srv.id, srv.secret, "eu-west-1")) }, 10 * time.Minute, "InvalidSignatureException"},
		{"read-only key reads", func() error { return describe(srv.client(srv.readID, srv.readSK, "eu-west-1")) }, 0, ""},
		{"read-only key writes", func() error {
			_, err := srv.client(srv.readID, srv.readSK, "eu-west-1").CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("t-2")})
			return err
		}, 0, "UnauthorizedException"},
		{"wrong service", func() error { return rawRequest(ctx, srv, "s3", "GET", "/things/t-1", "") }, 0, "InvalidSignatureException"},
		{"the AWS CLI's signing name", func() error { return rawRequest(ctx, srv, "execute-api", "GET", "/things/t-1", "") }, 0, ""},
		{"read-only key creates an authorizer", func() error {
			_, err := srv.client(srv.readID, srv.readSK, "eu-west-1").CreateAuthorizer(ctx, &iot.CreateAuthorizerInput{AuthorizerName: aws.String("a"),
				AuthorizerFunctionArn: aws.String("arn:aws:lambda:eu-west-1:1:function:f"), SigningDisabled: aws.Bool(true)})
			return err
		}, 0, "UnauthorizedException"},
		{"read-only key attaches a policy", func() error {
			_, err := srv.client(srv.readID, srv.readSK, "eu-west-1").AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("p"), Target: aws.String("arn:aws:iot:eu-west-1:1:thing/t-1")})
			return err
		}, 0, "UnauthorizedException"},
		{"tampered body", func() error {
			return rawRequest(ctx, srv, "iot", "PATCH", "/things/t-1", `{"attributePayload":{"attributes":{"a":"b"}}}`)
		}, 0, "InvalidSignatureException"},
		{"unsigned", func() error { return rawRequest(ctx, srv, "", "GET", "/things/t-1", "") }, 0, "MissingAuthenticationTokenException"},
		// Signed, unchanged (no "b" to replace): a null update is refused,
		// not saved as an empty one.
		{"null body", func() error { return rawRequest(ctx, srv, "iot", "PATCH", "/things/t-1", "null") }, 0, "InvalidRequestException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.skew = tc.skew
			defer func() { srv.skew = 0 }()
			err := tc.call()
			if got := errorCode(err); got != tc.want || (tc.want == "" && err != nil) {
				t.Errorf("err = %v (code %q), want code %q", err, got, tc.want)
			}
		})
	}
	if th, _ := srv.reg.Thing(ctx, "t-1"); th.Version != 1 {
		t.Errorf("t-1 version = %d after refused requests, want 1", th.Version)
	}
	if _, err := srv.reg.Thing(ctx, "t-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read-only key created t-2: %v", err)
	}
	if _, err := srv.reg.Authorizer(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read-only key created authorizer a: %v", err)
	}
}

// rawRequest sends a request signed for service (none when ""), and for
// "iot" with a body changed after signing, and returns the AWS error.
func rawRequest(ctx context.Context, srv *server, service, method, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, srv.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if service != "" {
		sum := sha256.Sum256([]byte(body))
		creds := aws.Credentials{AccessKeyID: srv.id, SecretAccessKey: srv.secret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, "eu-west-1", time.Now()); err != nil {
			return err
		}
		if service == "iot" && body != "" {
			// Same headers and signature, another body.
			tampered, _ := http.NewRequestWithContext(ctx, method, srv.url+path, strings.NewReader(strings.Replace(body, `"b"`, `"c"`, 1)))
			tampered.Header = req.Header
			req = tampered
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &smithy.GenericAPIError{Code: resp.Header.Get("X-Amzn-Errortype"), Message: resp.Status}
}
