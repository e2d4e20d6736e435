package awsiot_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/gatehouse-iot/gatehouse/internal/awsiot"
	"github.com/gatehouse-iot/gatehouse/internal/fleetprov"
	"github.com/gatehouse-iot/gatehouse/internal/seal"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestProvisioningTemplatesWithTheAWSSDK: the AWS SDK's provisioning
// template operations (what aws iot create-provisioning-template and
// friends send) against Gatehouse's templates, and CreateProvisioningClaim.
func TestProvisioningTemplatesWithTheAWSSDK(t *testing.T) {
	env := testenv.Core(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	keys := awsiot.NewKeys(env.Store, env.Events, sealer, nil, time.Now)
	id, secret, err := keys.Create(t.Context(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := env.Certs()
	fp, err := fleetprov.New(fleetprov.Config{Store: env.Store, Registry: env.Registry, Certs: cs, Events: env.Events})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/aws-iot/", awsiot.New(awsiot.Config{Registry: env.Registry, Keys: keys, Prefix: "/aws-iot", Certs: cs, FleetProv: fp}))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	srv := &server{url: hs.URL + "/aws-iot"}
	c := srv.client(id.ID, secret, "us-east-1")
	ctx := t.Context()

	body := `{"Parameters":{"SerialNumber":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"SerialNumber"}}}}}`
	created, err := c.CreateProvisioningTemplate(ctx, &iot.CreateProvisioningTemplateInput{TemplateName: aws.String("fleet"), TemplateBody: aws.String(body),
		ProvisioningRoleArn: aws.String("arn:aws:iam::123456789012:role/Provisioning"), Enabled: aws.Bool(true), Description: aws.String("sensors")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(created.TemplateName) != "fleet" || aws.ToInt32(created.DefaultVersionId) != 1 || !strings.Contains(aws.ToString(created.TemplateArn), ":provisioningtemplate/fleet") {
		t.Errorf("CreateProvisioningTemplate = %+v", created)
	}
	if _, err := c.CreateProvisioningTemplate(ctx, &iot.CreateProvisioningTemplateInput{TemplateName: aws.String("fleet"), TemplateBody: aws.String(body),
		ProvisioningRoleArn: aws.String("arn:aws:iam::123456789012:role/Provisioning")}); errorCode(err) != "ResourceAlreadyExistsException" {
		t.Errorf("CreateProvisioningTemplate twice: err = %v, want ResourceAlreadyExistsException", err)
	}
	if _, err := c.CreateProvisioningTemplate(ctx, &iot.CreateProvisioningTemplateInput{TemplateName: aws.String("bad"), TemplateBody: aws.String(`{"Resources":{"x":{"Type":"AWS::S3::Bucket"}}}`),
		ProvisioningRoleArn: aws.String("arn:aws:iam::123456789012:role/Provisioning")}); errorCode(err) != "InvalidRequestException" {
		t.Errorf("CreateProvisioningTemplate with a bad body: err = %v, want InvalidRequestException", err)
	}

	v2, err := c.CreateProvisioningTemplateVersion(ctx, &iot.CreateProvisioningTemplateVersionInput{TemplateName: aws.String("fleet"),
		TemplateBody: aws.String(strings.Replace(body, `{"Ref":"SerialNumber"}`, `{"Fn::Join":["-",["s",{"Ref":"SerialNumber"}]]}`, 1)), SetAsDefault: true})
	if err != nil || aws.ToInt32(v2.VersionId) != 2 || !v2.IsDefaultVersion {
		t.Fatalf("CreateProvisioningTemplateVersion = %+v, %v", v2, err)
	}
	d, err := c.DescribeProvisioningTemplate(ctx, &iot.DescribeProvisioningTemplateInput{TemplateName: aws.String("fleet")})
	if err != nil || aws.ToInt32(d.DefaultVersionId) != 2 || !strings.Contains(aws.ToString(d.TemplateBody), "Fn::Join") || !aws.ToBool(d.Enabled) || aws.ToString(d.Description) != "sensors" {
		t.Errorf("DescribeProvisioningTemplate = %+v, %v", d, err)
	}
	vs, err := c.ListProvisioningTemplateVersions(ctx, &iot.ListProvisioningTemplateVersionsInput{TemplateName: aws.String("fleet")})
	if err != nil || len(vs.Versions) != 2 || aws.ToInt32(vs.Versions[0].VersionId) != 2 || !vs.Versions[0].IsDefaultVersion {
		t.Errorf("ListProvisioningTemplateVersions = %+v, %v", vs, err)
	}
	if _, err := c.DeleteProvisioningTemplateVersion(ctx, &iot.DeleteProvisioningTemplateVersionInput{TemplateName: aws.String("fleet"), VersionId: aws.Int32(2)}); errorCode(err) != "InvalidRequestException" {
		t.Errorf("DeleteProvisioningTemplateVersion of the default: err = %v, want InvalidRequestException", err)
	}
	if _, err := c.DeleteProvisioningTemplateVersion(ctx, &iot.DeleteProvisioningTemplateVersionInput{TemplateName: aws.String("fleet"), VersionId: aws.Int32(1)}); err != nil {
		t.Errorf("DeleteProvisioningTemplateVersion 1: %v", err)
	}
	if _, err := c.UpdateProvisioningTemplate(ctx, &iot.UpdateProvisioningTemplateInput{TemplateName: aws.String("fleet"), Enabled: aws.Bool(false),
		PreProvisioningHook: &types.ProvisioningHook{TargetArn: aws.String("https://hooks.example/check")}}); err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeProvisioningTemplate(ctx, &iot.DescribeProvisioningTemplateInput{TemplateName: aws.String("fleet")})
	if err != nil || aws.ToBool(d.Enabled) || d.PreProvisioningHook == nil || aws.ToString(d.PreProvisioningHook.TargetArn) != "https://hooks.example/check" {
		t.Errorf("DescribeProvisioningTemplate after update = %+v, %v", d, err)
	}
	list, err := c.ListProvisioningTemplates(ctx, &iot.ListProvisioningTemplatesInput{})
	if err != nil || len(list.Templates) != 1 || aws.ToString(list.Templates[0].TemplateName) != "fleet" {
		t.Errorf("ListProvisioningTemplates = %+v, %v", list, err)
	}

	claim, err := c.CreateProvisioningClaim(ctx, &iot.CreateProvisioningClaimInput{TemplateName: aws.String("fleet")})
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(aws.ToTime(claim.Expiration)); left <= 0 || left > 6*time.Minute || claim.KeyPair == nil || aws.ToString(claim.KeyPair.PrivateKey) == "" {
		t.Errorf("CreateProvisioningClaim: expires in %v, key pair %v", left, claim.KeyPair != nil)
	}
	atts, err := env.Store.ListPolicyAttachments(ctx, store.AttachmentFilter{TargetKind: store.TargetCertificate, Target: aws.ToString(claim.CertificateId)})
	if err != nil || len(atts) != 1 || atts[0].Policy != fleetprov.ClaimPolicyName("fleet") {
		t.Errorf("policies of the claim certificate = %+v, %v; want %s", atts, err, fleetprov.ClaimPolicyName("fleet"))
	}

	if _, err := c.DeleteProvisioningTemplate(ctx, &iot.DeleteProvisioningTemplateInput{TemplateName: aws.String("fleet")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeProvisioningTemplate(ctx, &iot.DescribeProvisioningTemplateInput{TemplateName: aws.String("fleet")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("DescribeProvisioningTemplate after delete: err = %v, want ResourceNotFoundException", err)
	}
}
