package fleetprov

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// sampleTemplate is the template of AWS's fleet provisioning sample
// (aws-iot-device-sdk-js-v2, samples/node/service_clients/fleet_provisioning).
const sampleTemplate = `{"Parameters": {"DeviceLocation": {"Type": "String"},"AWS::IoT::Certificate::Id": {"Type": "String"},"SerialNumber": {"Type": "String"}},
"Mappings": {"LocationTable": {"Seattle": {"LocationUrl": "https://example.aws"}}},
"Resources": {"thing": {"Type": "AWS::IoT::Thing","Properties": {"ThingName": {"Fn::Join": ["",["ThingPrefix_",{"Ref": "SerialNumber"}]]},"AttributePayload": {"version": "v1","serialNumber": "serialNumber"}},"OverrideSettings": {"AttributePayload": "MERGE","ThingTypeName": "REPLACE","ThingGroups": "DO_NOTHING"}},
"certificate": {"Type": "AWS::IoT::Certificate","Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},"Status": "Active"},"OverrideSettings": {"Status": "REPLACE"}},
"policy": {"Type": "AWS::IoT::Policy","Properties": {"PolicyDocument": {"Version": "2012-10-17","Statement": [{"Effect": "Allow","Action": ["iot:Connect","iot:Subscribe","iot:Publish","iot:Receive"],"Resource": "*"}]}}}},
"DeviceConfiguration": {"FallbackUrl": "https://www.example.com/test-site","LocationUrl": {"Fn::FindInMap": ["LocationTable",{"Ref": "DeviceLocation"},"LocationUrl"]}}}`

func TestEvaluateSample(t *testing.T) {
	tpl, err := Parse([]byte(sampleTemplate))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Evaluate(map[string]string{"SerialNumber": "1", "DeviceLocation": "Seattle", CertificateIDParameter: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Plan{
		Thing:             &ThingPlan{Name: "ThingPrefix_1", Attributes: map[string]string{"version": "v1", "serialNumber": "serialNumber"}},
		CertificateStatus: "ACTIVE", CertificateID: "abc",
		Policies:            []PolicyPlan{{Document: []byte(`{"Statement":[{"Action":["iot:Connect","iot:Subscribe","iot:Publish","iot:Receive"],"Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}`)}},
		DeviceConfiguration: map[string]string{"FallbackUrl": "https://www.example.com/test-site", "LocationUrl": "https://example.aws"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("Evaluate =\n%s\nwant\n%s", g, w)
	}
	if _, err := tpl.Evaluate(map[string]string{"DeviceLocation": "Seattle"}); !isTemplateError(err) {
		t.Errorf("Evaluate without SerialNumber: err = %v, want a TemplateError", err)
	}
	if _, err := tpl.Evaluate(map[string]string{"SerialNumber": "1", "DeviceLocation": "Paris", CertificateIDParameter: "abc"}); !isTemplateError(err) {
		t.Errorf("Evaluate with a location not in the mappings: err = %v, want a TemplateError", err)
	}
}

func isTemplateError(err error) bool {
	var te *TemplateError
	return errors.As(err, &te)
}

func TestEvaluateFunctions(t *testing.T) {
	const body = `{"Parameters":{"Serial":{"Type":"String"},"Kind":{"Type":"String","Default":"sensor"},"N":{"Type":"Number","Default":2}},
"Conditions":{"IsGateway":{"Fn::Equals":[{"Ref":"Kind"},"gateway"]},"NotGateway":{"Fn::Not":[{"Condition":"IsGateway"}]},
 "Both":{"Fn::And":[{"Condition":"NotGateway"},{"Fn::Or":[{"Fn::Equals":["a","b"]},{"Fn::Equals":[{"Ref":"N"},"2"]}]}]}},
"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Sub":"${Kind}-${Serial}-${!Literal}"},
  "ThingTypeName":{"Fn::If":["IsGateway","gw","sensor"]},
  "AttributePayload":{"part":{"Fn::Select":["1",{"Fn::Split":["-",{"Ref":"Serial"}]}]}},"ThingGroups":["fleet"]}},
 "gw":{"Type":"AWS::IoT::Policy","Condition":"IsGateway","Properties":{"PolicyName":"gateway"}},
 "both":{"Type":"AWS::IoT::Policy","Condition":"Both","Properties":{"PolicyName":"both"}}}}`
	tpl, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		params   map[string]string
		thing    ThingPlan
		policies []PolicyPlan
	}{
		{map[string]string{"Serial": "ab-12"}, ThingPlan{Name: "sensor-ab-12-${Literal}", Type: "sensor", Attributes: map[string]string{"part": "12"}, Groups: []string{"fleet"}},
			[]PolicyPlan{{Name: "both"}}},
		{map[string]string{"Serial": "x-9", "Kind": "gateway"}, ThingPlan{Name: "gateway-x-9-${Literal}", Type: "gw", Attributes: map[string]string{"part": "9"}, Groups: []string{"fleet"}},
			[]PolicyPlan{{Name: "gateway"}}},
	}
	for _, tc := range tests {
		got, err := tpl.Evaluate(tc.params)
		if err != nil {
			t.Errorf("Evaluate(%v): %v", tc.params, err)
			continue
		}
		if !reflect.DeepEqual(*got.Thing, tc.thing) || !reflect.DeepEqual(got.Policies, tc.policies) {
			t.Errorf("Evaluate(%v) = %+v, %+v; want %+v, %+v", tc.params, *got.Thing, got.Policies, tc.thing, tc.policies)
		}
	}
	if _, err := tpl.Evaluate(map[string]string{"Serial": "nodash"}); !isTemplateError(err) {
		t.Errorf("Fn::Select out of range: err = %v, want a TemplateError", err)
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not JSON", `{`},
		{"unknown section", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"x"}}},"Outputs":{}}`},
		{"no resources", `{"Parameters":{}}`},
		{"unknown resource type", `{"Resources":{"b":{"Type":"AWS::S3::Bucket"}}}`},
		{"two things", `{"Resources":{"a":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"x"}},"b":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"y"}}}}`},
		{"undeclared Ref", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Nope"}}}}}`},
		{"unknown function", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::GetAZs":""}}}}}`},
		{"Join arity", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Join":["-"]}}}}}`},
		{"undeclared condition", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Condition":"C","Properties":{"ThingName":"x"}}}}`},
		{"If with an unknown condition", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::If":["C","a","b"]}}}}}`},
		{"unterminated Sub", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Sub":"${x"}}}}}`},
		{"bad parameter type", `{"Parameters":{"P":{"Type":"List"}},"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"x"}}}}`},
		{"trailing data", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"x"}}}} {}`},
	}
	for _, tc := range tests {
		if _, err := Parse([]byte(tc.body)); !isTemplateError(err) {
			t.Errorf("%s: Parse err = %v, want a TemplateError", tc.name, err)
		}
	}
}

func TestEvaluateRefuses(t *testing.T) {
	tests := []struct{ name, body string }{
		{"no thing name", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{}}}}`},
		{"self-referring condition", `{"Conditions":{"C":{"Fn::Not":[{"Condition":"C"}]}},"Resources":{"t":{"Type":"AWS::IoT::Thing","Condition":"C","Properties":{"ThingName":"x"}}}}`},
		{"bad status", `{"Resources":{"c":{"Type":"AWS::IoT::Certificate","Properties":{"Status":"Maybe"}}}}`},
		{"policy with name and document", `{"Resources":{"p":{"Type":"AWS::IoT::Policy","Properties":{"PolicyName":"a","PolicyDocument":"{}"}}}}`},
		{"attribute not a string", `{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"x","AttributePayload":{"a":["b"]}}}}}`},
	}
	for _, tc := range tests {
		tpl, err := Parse([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: Parse: %v", tc.name, err)
			continue
		}
		if _, err := tpl.Evaluate(nil); !isTemplateError(err) {
			t.Errorf("%s: Evaluate err = %v, want a TemplateError", tc.name, err)
		}
	}
}

// FuzzTemplate: any body either fails to parse with a TemplateError or
// parses into a template whose evaluation, with any parameters, never
// panics and fails only with a TemplateError.
func FuzzTemplate(f *testing.F) {
	f.Add([]byte(sampleTemplate), "1", "Seattle")
	f.Add([]byte(`{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Select":["0",{"Fn::Split":[",",{"Ref":"SerialNumber"}]}]}}}},"Parameters":{"SerialNumber":{}}}`), "a,b", "")
	f.Add([]byte(`{"Conditions":{"C":{"Fn::Equals":[{"Ref":"DeviceLocation"},"x"]}},"Parameters":{"DeviceLocation":{}},"Resources":{"t":{"Type":"AWS::IoT::Thing","Condition":"C","Properties":{"ThingName":{"Fn::If":["C","a","b"]}}}}}`), "", "x")
	f.Fuzz(func(t *testing.T, body []byte, serial, location string) {
		tpl, err := Parse(body)
		if err != nil {
			if !isTemplateError(err) {
				t.Fatalf("Parse error %T %v is not a TemplateError", err, err)
			}
			return
		}
		p, err := tpl.Evaluate(map[string]string{"SerialNumber": serial, "DeviceLocation": location, CertificateIDParameter: "id"})
		if err != nil && !isTemplateError(err) {
			t.Fatalf("Evaluate error %T %v is not a TemplateError", err, err)
		}
		if err == nil && p.Thing != nil && p.Thing.Name == "" {
			t.Fatal("a plan with a thing of no name")
		}
	})
}
