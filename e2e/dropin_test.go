package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// awsCLI returns the path of the AWS CLI v2 (Debian package awscli, which
// scripts/test-deps.sh installs). Missing, it fails the test under make
// test and skips it only under go test -short.
func awsCLI(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/aws"}
	if p, err := exec.LookPath("aws"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "aws-cli/2.") {
			return p
		}
	}
	if testing.Short() {
		t.Skip("the AWS CLI v2 is not installed (Debian package awscli)")
	}
	t.Fatal("the AWS CLI v2 is missing: run scripts/test-deps.sh (installs the Debian package awscli)")
	return ""
}

// awsShell runs the seed documents' shell lines with a real AWS CLI v2 on
// PATH as aws, Gatehouse access keys in the environment and $EP holding
// --endpoint-url for the server's /aws-iot.
type awsShell struct {
	dir string
	env []string
}

func newAWSShell(t *testing.T, s *server) *awsShell {
	t.Helper()
	cli := awsCLI(t)
	out, errOut, err := s.cli(t, "", "aws-keys", "create", "seed-scripts")
	if err != nil {
		t.Fatalf("aws-keys create: %v\n%s", err, errOut)
	}
	var key struct {
		ID     string `json:"accessKeyId"`
		Secret string `json:"secretAccessKey"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cli, filepath.Join(bin, "aws")); err != nil {
		t.Fatal(err)
	}
	return &awsShell{dir: dir, env: append(os.Environ(),
		"PATH="+bin+":"+os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID="+key.ID, "AWS_SECRET_ACCESS_KEY="+key.Secret, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "HOST="+s.URL,
		"EP=--endpoint-url "+s.URL+"/aws-iot")}
}

// run runs script with bash in the shell's directory; extra are more
// VAR=value settings.
func (a *awsShell) run(t *testing.T, script string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = a.dir, append(append([]string{}, a.env...), extra...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func (a *awsShell) must(t *testing.T, script string, extra ...string) string {
	t.Helper()
	out, err := a.run(t, script, extra...)
	if err != nil {
		t.Fatalf("%s\n: %v\n%s", script, err, out)
	}
	return out
}

func (a *awsShell) json(t *testing.T, script string, extra ...string) map[string]any {
	t.Helper()
	out := a.must(t, script, extra...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", script, err, out)
	}
	return m
}

// TestDropInSeed001AWSCLIAndOpenAM runs seed 001 as written: the AWS CLI v2
// sets up the custom authorizer (create-authorizer, describe-authorizer,
// set-default-authorizer), the device flow runs with the OpenAM-era curl
// lines (device/code without a secret for a public client, the legacy
// grant with code=, ?realm=), and the seed's curl publishes with the
// resulting token signed by openssl; test-invoke-authorizer agrees.
func TestDropInSeed001AWSCLIAndOpenAM(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	sh := newAWSShell(t, s)
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	s.admin(t, "POST", "/api/v1/apps", `{"name":"deviceagent","public":true,"scopes":["mail","cn"],"grantTypes":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"]}`, 201)
	s.admin(t, "POST", "/api/v1/policies", `{"name":"publish-customauth","document":{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/customauthtesting"}]}}`, 201)
	s.admin(t, "POST", "/api/v1/policies/publish-customauth/attachments", `{"targetKind":"scope","target":"mail"}`, 201)

	// Step 3 of the seed, verbatim but for the Lambda ARN and $EP.
	sh.must(t, `openssl genrsa -out private.pem 2048
openssl rsa -in private.pem -outform PEM -pubout -out public.pem`)
	created := sh.json(t, `aws iot create-authorizer --authorizer-name iot-openam-authorizer --authorizer-function-arn arn:aws:lambda:us-east-1:123456789012:function:iot-authorizer --token-key-name token --token-signing-public-keys FIRST_KEY="
$(cat public.pem)" --status ACTIVE $EP`)
	if created["authorizerName"] != "iot-openam-authorizer" || !strings.HasSuffix(created["authorizerArn"].(string), ":authorizer/iot-openam-authorizer") {
		t.Errorf("create-authorizer = %v", created)
	}
	desc := sh.json(t, `aws iot describe-authorizer --authorizer-name iot-openam-authorizer $EP`)["authorizerDescription"].(map[string]any)
	pub, _ := os.ReadFile(filepath.Join(sh.dir, "public.pem"))
	if desc["status"] != "ACTIVE" || desc["tokenKeyName"] != "token" || strings.TrimSpace(desc["tokenSigningPublicKeys"].(map[string]any)["FIRST_KEY"].(string)) != strings.TrimSpace(string(pub)) {
		t.Errorf("describe-authorizer = %v", desc)
	}
	sh.must(t, `aws iot set-default-authorizer --authorizer-name iot-openam-authorizer $EP`)
	if got := s.admin(t, "GET", "/api/v1/authorizers/iot-openam-authorizer", "", 200); got["default"] != true {
		t.Errorf("set-default-authorizer left %v", got)
	}

	// Step 4: the device flow as the seed's curl lines make it.
	var da map[string]any
	if err := json.Unmarshal([]byte(sh.must(t, `curl -sS --data response_type=token --data scope=mail%20cn --data client_id=app.deviceagent $HOST/am/oauth2/device/code?realm=awsiot`)), &da); err != nil {
		t.Fatal(err)
	}
	if da["verification_url"] == nil || da["verification_url"] != da["verification_uri"] || da["user_code"] == nil || da["device_code"] == nil {
		t.Fatalf("device/code = %v, want user_code, device_code and verification_url", da)
	}
	tokenCurl := `curl -sS \
--data client_id=app.deviceagent \
--data client_secret=$CLIENT_SECRET \
--data grant_type=http://oauth.net/grant_type/device/1.0 \
--data code=$DEVICE_CODE \
$HOST/am/oauth2/access_token?realm=awsiot`
	poll := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(sh.must(t, tokenCurl, "CLIENT_SECRET=none-for-a-public-client", "DEVICE_CODE="+da["device_code"].(string))), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := poll(); got["error"] != "authorization_pending" {
		t.Errorf("poll before approval = %v, want authorization_pending", got)
	}
	approveInBrowser(t, s, da["verification_uri_complete"].(string), "alice", "correct horse battery", "app.deviceagent")
	var tok map[string]any
	for i := 0; i < 10; i++ {
		if tok = poll(); tok["error"] != "slow_down" && tok["error"] != "authorization_pending" {
			break
		}
		time.Sleep(time.Duration(5+i) * time.Second / 5) // the interval the server asks for
	}
	access, _ := tok["access_token"].(string)
	if access == "" || tok["refresh_token"] == nil {
		t.Fatalf("access_token after approval = %v", tok)
	}

	// The seed's signature and publish, then the same through
	// test-invoke-authorizer.
	sig := strings.TrimSpace(sh.must(t, `echo -n "$ACCESS_TOKEN" | openssl dgst -sha256 -sign private.pem | openssl base64 -A`, "ACCESS_TOKEN="+access))
	publish := `curl -X POST -k -i -N -sS -H "X-Amz-CustomAuthorizer-Name: iot-openam-authorizer" -H "X-Amz-CustomAuthorizer-Signature: $SIG" -H "token: $ACCESS_TOKEN" -H "User-Agent: aws-cli/1.10.65 Python/2.7.11 Darwin/16.1.0 botocore/1.4.55" --data 'Test message from openam protected device' $HOST/topics/$TOPIC`
	tests := []struct{ name, topic, sig, want string }{
		{"allowed", "customauthtesting", sig, "HTTP/1.1 200"},
		{"policy denies the topic", "elsewhere", sig, "HTTP/1.1 403"},
		{"signature of another token", "customauthtesting", "c2lnbmF0dXJl", "HTTP/1.1 401"},
	}
	for _, tc := range tests {
		if out := sh.must(t, publish, "SIG="+tc.sig, "ACCESS_TOKEN="+access, "TOPIC="+tc.topic); !strings.HasPrefix(out, tc.want) {
			t.Errorf("%s: publish answered %q, want %s", tc.name, firstLine(out), tc.want)
		}
	}
	inv := sh.json(t, `aws iot test-invoke-authorizer --authorizer-name iot-openam-authorizer --token "$ACCESS_TOKEN" --token-signature "$SIG" $EP`, "SIG="+sig, "ACCESS_TOKEN="+access)
	if inv["isAuthenticated"] != true || inv["principalId"] != "alice" || !strings.Contains(jsonString(inv["policyDocuments"]), "customauthtesting") {
		t.Errorf("test-invoke-authorizer = %v", inv)
	}
	if inv := sh.json(t, `aws iot test-invoke-authorizer --authorizer-name iot-openam-authorizer --token "$ACCESS_TOKEN" --token-signature c2ln $EP`, "ACCESS_TOKEN="+access); inv["isAuthenticated"] != false {
		t.Errorf("test-invoke-authorizer with a bad signature = %v", inv)
	}
	// An inactive authorizer refuses the same publish, and is listed so.
	sh.must(t, `aws iot update-authorizer --authorizer-name iot-openam-authorizer --status INACTIVE $EP`)
	if got := sh.json(t, `aws iot list-authorizers --status INACTIVE $EP`); !strings.Contains(jsonString(got), "iot-openam-authorizer") {
		t.Errorf("list-authorizers --status INACTIVE = %v", got)
	}
	if out := sh.must(t, publish, "SIG="+sig, "ACCESS_TOKEN="+access, "TOPIC=customauthtesting"); !strings.HasPrefix(out, "HTTP/1.1 401") {
		t.Errorf("publish through an inactive authorizer answered %q, want 401", firstLine(out))
	}
	// The legacy grant gives the same tokens as the RFC form: the device
	// code is spent.
	if got := poll(); got["error"] != "invalid_grant" {
		t.Errorf("device code reuse = %v, want invalid_grant", got)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return strings.TrimSpace(l) }

// TestDropInAWSControlPlane runs the control-plane commands the seeds'
// scripts use with the AWS CLI v2 and with aws-sdk-go-v2: policies and
// versions, a key pair and a CSR certificate attached to a thing and a
// policy, a device CA registered as seed 004 does, the data endpoint; the
// certificate then logs in over MQTT TLS with what the policy allows.
func TestDropInAWSControlPlane(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	sh := newAWSShell(t, s)

	sh.must(t, `aws iot list-things $EP`) // the CLI's signing name (execute-api) is accepted
	sh.must(t, `aws iot create-thing --thing-name meter-7 $EP`)
	pol := sh.json(t, `aws iot create-policy --policy-name meter-pub --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}' $EP`)
	if pol["policyVersionId"] != "1" {
		t.Errorf("create-policy = %v", pol)
	}
	ver := sh.json(t, `aws iot create-policy-version --policy-name meter-pub --set-as-default --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"},{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/meters/${iot:Connection.Thing.ThingName}"}]}' $EP`)
	if ver["policyVersionId"] != "2" || ver["isDefaultVersion"] != true {
		t.Errorf("create-policy-version = %v", ver)
	}
	if got := sh.json(t, `aws iot get-policy --policy-name meter-pub $EP`); got["defaultVersionId"] != "2" || !strings.Contains(got["policyDocument"].(string), "iot:Publish") {
		t.Errorf("get-policy = %v", got)
	}

	kc := sh.json(t, `aws iot create-keys-and-certificate --set-as-active $EP`)
	certArn := kc["certificateArn"].(string)
	sh.must(t, `aws iot attach-policy --policy-name meter-pub --target "$CERT" $EP`, "CERT="+certArn)
	sh.must(t, `aws iot attach-thing-principal --thing-name meter-7 --principal "$CERT" $EP`, "CERT="+certArn)
	if got := sh.json(t, `aws iot list-attached-policies --target "$CERT" $EP`, "CERT="+certArn); !strings.Contains(jsonString(got), `"policyName":"meter-pub"`) {
		t.Errorf("list-attached-policies = %v", got)
	}
	if got := sh.json(t, `aws iot list-thing-principals --thing-name meter-7 $EP`); jsonString(got["principals"]) != `["`+certArn+`"]` {
		t.Errorf("list-thing-principals = %v", got)
	}
	kp := kc["keyPair"].(map[string]any)
	keyPEM := kp["PrivateKey"].(string)
	if !strings.Contains(keyPEM, "PRIVATE KEY") {
		t.Fatalf("keyPair = %v", kp)
	}
	if out := sh.must(t, `printf '%s' "$KEY" | openssl pkey -noout -text | head -1`, "KEY="+keyPEM); !strings.Contains(out, "2048 bit") {
		t.Errorf("create-keys-and-certificate key: %q, want RSA 2048 as AWS issues", firstLine(out))
	}

	// The certificate logs in over MQTT TLS and may publish what the
	// policy allows; INACTIVE, it is refused.
	ca, err := x509.SystemCertPool()
	if err != nil {
		ca = x509.NewCertPool()
	}
	_, caPEM := curl(t, "GET", s.URL+"/ca", "", "")
	ca.AppendCertsFromPEM([]byte(caPEM))
	pair, err := tls.X509KeyPair([]byte(kc["certificatePem"].(string)), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: ca, Certificates: []tls.Certificate{pair}, ServerName: "localhost"}
	connect := func(topic string) (byte, byte) {
		t.Helper()
		conn := dialMQTT(t, "mqtts", s, tlsCfg)
		defer conn.Close()
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "meter-7", KeepAlive: 30, CleanStart: true})
		if ack == nil { // refused at the TLS handshake or dropped
			t.Logf("connect as meter-7: %v", err)
			return 0xff, 0xff
		}
		if ack.ReasonCode != 0 {
			return ack.ReasonCode, 0xff
		}
		defer c.Disconnect(&paho.Disconnect{})
		pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("1")})
		if pr == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return 0, pr.ReasonCode
	}
	if ack, pub := connect("meters/meter-7"); ack != 0 || pub != 0 {
		t.Errorf("certificate from create-keys-and-certificate: CONNACK %#x, PUBACK %#x, want 0 0", ack, pub)
	}
	if _, pub := connect("meters/other"); pub == 0 {
		t.Error("published outside the attached policy")
	}
	sh.must(t, `aws iot update-certificate --certificate-id "$ID" --new-status INACTIVE $EP`, "ID="+kc["certificateId"].(string))
	if got := sh.json(t, `aws iot describe-certificate --certificate-id "$ID" $EP`, "ID="+kc["certificateId"].(string)); got["certificateDescription"].(map[string]any)["status"] != "INACTIVE" {
		t.Errorf("describe-certificate after update = %v", got)
	}
	if ack, _ := connect("meters/meter-7"); ack == 0 {
		t.Error("an INACTIVE certificate connected")
	}
	sh.must(t, `aws iot detach-policy --policy-name meter-pub --target "$CERT" $EP`, "CERT="+certArn)

	// A CSR's certificate keeps the device's key.
	sh.must(t, `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=meter-8 -out dev.csr 2>/dev/null`)
	fromCSR := sh.json(t, `aws iot create-certificate-from-csr --certificate-signing-request file://dev.csr --set-as-active $EP`)
	if !strings.Contains(sh.must(t, `printf '%s' "$PEM" > dev.crt; openssl x509 -in dev.crt -noout -subject`, "PEM="+fromCSR["certificatePem"].(string)), "meter-8") {
		t.Errorf("create-certificate-from-csr = %v", fromCSR)
	}

	// Seed 004's device CA, verbatim.
	sh.must(t, `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int1-ca.key -subj /CN=int1 -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out int1-ca.crt.pem 2>/dev/null`)
	reg := sh.json(t, `aws iot register-ca-certificate --ca-certificate file://int1-ca.crt.pem --certificate-mode SNI_ONLY --set-as-active --allow-auto-registration $EP`)
	mca := s.admin(t, "GET", "/api/v1/manufacturer-cas/"+reg["certificateId"].(string), "", 200)
	if mca["autoRegister"] != true || mca["status"] != "ACTIVE" {
		t.Errorf("register-ca-certificate made %v", mca)
	}
	if out, err := sh.run(t, `aws iot register-ca-certificate --ca-certificate file://int1-ca.crt.pem --certificate-mode SNI_ONLY --set-as-active --allow-auto-registration $EP`); err == nil || !strings.Contains(out, "ResourceAlreadyExistsException") {
		t.Errorf("registering the CA again: %v %s", err, out)
	}
	ep := sh.json(t, `aws iot describe-endpoint --endpoint-type iot:Data-ATS $EP`)
	if _, port, _ := strings.Cut(s.MQTTS, ":"); ep["endpointAddress"] != "localhost:"+port {
		t.Errorf("describe-endpoint = %v, want localhost:%s", ep, port)
	}
	if out, err := sh.run(t, `aws iot list-attached-policies --target arn:aws:cognito-identity:us-east-1:1:identity/x $EP`); err == nil || !strings.Contains(out, "InvalidRequestException") {
		t.Errorf("an unsupported target: %v %s", err, out)
	}

	// The same API through aws-sdk-go-v2 (signing name iot).
	key := sh.env
	var id, secret string
	for _, kv := range key {
		if v, ok := strings.CutPrefix(kv, "AWS_ACCESS_KEY_ID="); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(kv, "AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	client := iot.New(iot.Options{Region: "eu-west-1", BaseEndpoint: aws.String(s.URL + "/aws-iot"),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	ctx := t.Context()
	if _, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("sdk-pol"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`)}); err != nil {
		t.Fatalf("CreatePolicy: %v", err)
	}
	if _, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("sdk-thing")}); err != nil {
		t.Fatalf("CreateThing: %v", err)
	}
	ck, err := client.CreateKeysAndCertificate(ctx, &iot.CreateKeysAndCertificateInput{SetAsActive: true})
	if err != nil || ck.KeyPair == nil || aws.ToString(ck.KeyPair.PrivateKey) == "" {
		t.Fatalf("CreateKeysAndCertificate: %v %v", ck, err)
	}
	if _, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("sdk-pol"), Target: ck.CertificateArn}); err != nil {
		t.Fatalf("AttachPolicy: %v", err)
	}
	if _, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("sdk-thing"), Principal: ck.CertificateArn}); err != nil {
		t.Fatalf("AttachThingPrincipal: %v", err)
	}
	lp, err := client.ListThingPrincipals(ctx, &iot.ListThingPrincipalsInput{ThingName: aws.String("sdk-thing")})
	if err != nil || len(lp.Principals) != 1 || lp.Principals[0] != aws.ToString(ck.CertificateArn) {
		t.Errorf("ListThingPrincipals = %v %v", lp, err)
	}
	dc, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: ck.CertificateId})
	if err != nil || string(dc.CertificateDescription.Status) != "ACTIVE" {
		t.Errorf("DescribeCertificate = %v %v", dc, err)
	}
	da, err := client.DescribeAuthorizer(ctx, &iot.DescribeAuthorizerInput{AuthorizerName: aws.String("none")})
	if err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("DescribeAuthorizer of a missing one = %v %v", da, err)
	}
	la, err := client.ListAttachedPolicies(ctx, &iot.ListAttachedPoliciesInput{Target: ck.CertificateArn})
	if err != nil || len(la.Policies) != 1 || aws.ToString(la.Policies[0].PolicyName) != "sdk-pol" {
		t.Errorf("ListAttachedPolicies = %v %v", la, err)
	}
	// A second thing may not take the certificate: it belongs to one.
	if _, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("sdk-thing-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("sdk-thing-2"), Principal: ck.CertificateArn}); err == nil {
		t.Error("one certificate attached to two things")
	}
}

// TestDropInSeed003ForgeRockSession runs seed 003's curl lines: the thing
// logs in at /am/json/realms/root/authenticate with X-OpenAM-* headers,
// gets an access token at /am/json/things/* with the session cookie, and
// publishes with mosquitto_pub with the token as password.
func TestDropInSeed003ForgeRockSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	botSecret, _ := setupBot(t, s)
	s.admin(t, "POST", "/api/v1/users", `{"username":"carol","password":"carol-password"}`, 201)
	sh := &awsShell{dir: t.TempDir(), env: append(os.Environ(), "HOST="+s.URL)}

	authCurl := `curl -sS --request POST "$HOST/am/json/realms/root/authenticate?realm=/" \
    --header 'Content-Type: application/json' \
    --header "X-OpenAM-Username: $USERNAME" \
    --header "X-OpenAM-Password: $PASSWORD" \
    --header 'Accept-API-Version: resource=2.0, protocol=1.0'`
	auth := sh.json(t, authCurl, "USERNAME=thingymabot", "PASSWORD="+botSecret)
	thingTokenID, _ := auth["tokenId"].(string)
	if thingTokenID == "" || auth["realm"] != "/" || auth["successUrl"] == nil {
		t.Fatalf("authenticate = %v", auth)
	}
	thingsCurl := `curl -sS --request POST "$HOST/am/json/things/*?_action=get_access_token" \
    --header 'Accept-API-Version: protocol=2.0,resource=1.0' \
    --header 'Content-Type: application/json' \
    --header "Cookie: iPlanetDirectoryPro=${thingTokenId}" \
    --data-raw '{
        "scope":["publish"]
    }'`
	tok := sh.json(t, thingsCurl, "thingTokenId="+thingTokenID)
	accessToken, _ := tok["access_token"].(string)
	if accessToken == "" || tok["token_type"] != "Bearer" || tok["scope"] != "publish" {
		t.Fatalf("things/* = %v", tok)
	}
	// The same answer under the realm path.
	if tok := sh.json(t, strings.Replace(thingsCurl, "/am/json/things/", "/am/json/realms/root/things/", 1), "thingTokenId="+thingTokenID); tok["access_token"] == nil {
		t.Errorf("realms/root/things/* = %v", tok)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := mosquitto(t, ctx, "mosquitto_pub", s, "-t", "test", "-i", "thingymabot", "-u", "thingymabot", "-P", accessToken, "-m", "Time now is "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		t.Errorf("mosquitto_pub with the token: %v %s", err, out)
	}

	tests := []struct {
		name, user, pass, session, want string
	}{
		{"wrong password", "thingymabot", "wrong", "", "Authentication Failed"},
		{"tampered session", "", "", thingTokenID[:len(thingTokenID)-2] + "xx", "invalid_client"},
		{"a person's session is no thing's", "carol", "carol-password", "", "unauthorized_client"},
	}
	for _, tc := range tests {
		session := tc.session
		if tc.user != "" {
			a := sh.json(t, authCurl, "USERNAME="+tc.user, "PASSWORD="+tc.pass)
			if a["tokenId"] == nil {
				if !strings.Contains(jsonString(a), tc.want) {
					t.Errorf("%s: authenticate = %v, want %s", tc.name, a, tc.want)
				}
				continue
			}
			session = a["tokenId"].(string)
		}
		if got := sh.must(t, thingsCurl, "thingTokenId="+session); !strings.Contains(got, tc.want) || strings.Contains(got, "access_token") {
			t.Errorf("%s: things/* = %s, want %s", tc.name, got, tc.want)
		}
	}
	// Disabled after logging in, the thing gets no token with its session.
	s.admin(t, "PATCH", "/api/v1/things/thingymabot", `{"state":"disabled"}`, 200)
	if got := sh.must(t, thingsCurl, "thingTokenId="+thingTokenID); strings.Contains(got, "access_token") {
		t.Errorf("a disabled thing's session got a token: %s", got)
	}
	// Guessing passwords is limited per address (limits.deviceUserCodePerIP,
	// 10 per 5 minutes by default): then even the right one is refused.
	limited := false
	for i := 0; i < 12 && !limited; i++ {
		limited = strings.Contains(sh.must(t, authCurl+` -w ' %{http_code}'`, "USERNAME=thingymabot", "PASSWORD=guess"), " 429")
	}
	if !limited {
		t.Error("12 wrong passwords in a row were not rate-limited")
	}
	if got := sh.must(t, authCurl+` -w ' %{http_code}'`, "USERNAME=thingymabot", "PASSWORD="+botSecret); !strings.HasSuffix(got, " 429") {
		t.Errorf("the right password while limited = %s, want 429", got)
	}
}

// TestDropInOpenAMDeviceFlowRFCForm runs the device flow through the /am
// paths in the RFC 8628 form, with the realm segment, and introspects and
// reads the keys there.
func TestDropInOpenAMDeviceFlowRFCForm(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	s.admin(t, "POST", "/api/v1/users", `{"username":"alice","password":"correct horse battery"}`, 201)
	s.admin(t, "POST", "/api/v1/apps", `{"name":"tv","public":true,"scopes":["openid"],"grantTypes":["urn:ietf:params:oauth:grant-type:device_code"]}`, 201)
	code, da := postForm(t, s.URL+"/am/oauth2/realms/root/device/code", url.Values{"client_id": {"app.tv"}, "scope": {"openid"}})
	if code != 200 || da["verification_url"] == nil {
		t.Fatalf("device/code = %d %v", code, da)
	}
	approveInBrowser(t, s, da["verification_uri_complete"].(string), "alice", "correct horse battery", "app.tv")
	var tok map[string]any
	for i := 0; i < 10; i++ {
		code, tok = postForm(t, s.URL+"/am/oauth2/realms/root/access_token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da["device_code"].(string)}, "client_id": {"app.tv"}})
		if code == 200 || (tok["error"] != "slow_down" && tok["error"] != "authorization_pending") {
			break
		}
		time.Sleep(time.Duration(5+i) * time.Second / 5) // the interval the server asks for (device flow under test)
	}
	if code != 200 || tok["access_token"] == nil {
		t.Fatalf("access_token = %d %v", code, tok)
	}
	if code, keys := curl(t, "GET", s.URL+"/am/oauth2/realms/root/connect/jwk_uri", "", ""); code != 200 || !strings.Contains(keys, `"keys"`) {
		t.Errorf("jwk_uri = %d %s", code, keys)
	}
	if code, in := postForm(t, s.URL+"/am/oauth2/realms/root/introspect", url.Values{"token": {tok["access_token"].(string)}}); code != 401 {
		t.Errorf("introspect without client authentication = %d %v, want 401", code, in)
	}
	// A confidential client's secret is not dropped: a wrong one fails.
	if code, _ := postForm(t, s.URL+"/am/oauth2/access_token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nosuch"}, "client_secret": {"x"}}); code != 401 {
		t.Errorf("unknown confidential client = %d, want 401", code)
	}
}

// TestDropInSmallerDivergences: /register's rootCa verifies the
// certificate with openssl alone, keys are EC P-256 unless the thing type
// asks for RSA 2048, and "already exists" is said once; an
// unlimited registration token reads unlimited; lobby reset --reason keeps
// the reason in the device's history.
func TestDropInSmallerDivergences(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	sh := &awsShell{dir: t.TempDir(), env: append(os.Environ(), "HOST="+s.URL)}
	caPEM, _, _, fp := manufacturer(t, "meter-9")
	setupLobby(t, s, caPEM) // makes the thing type meter
	tok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":-1,"expiresInSeconds":3600}`, 201)
	if tok["maxUses"] != "unlimited" {
		t.Errorf("created unlimited token shows maxUses %v", tok["maxUses"])
	}
	if got := s.admin(t, "GET", "/api/v1/registration-tokens/"+tok["id"].(string), "", 200); got["maxUses"] != "unlimited" {
		t.Errorf("unlimited token shows maxUses %v", got["maxUses"])
	}
	if out, _, err := s.cli(t, "", "registration-tokens", "list"); err != nil || !strings.Contains(out, `"maxUses": "unlimited"`) {
		t.Errorf("registration-tokens list: %v\n%s", err, out)
	}
	if one := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"meter","maxUses":3}`, 201); one["maxUses"] != 3.0 {
		t.Errorf("a 3-use token shows maxUses %v", one["maxUses"])
	}

	register := `curl -sS -X POST -H "Authorization: DeviceToken $TOKEN" -H 'Content-Type: application/json' -d '{"thingName":"meter-1","version":"1.0"}' $HOST/register`
	reg := sh.json(t, register+` | tee reg.json`, "TOKEN="+tok["token"].(string))
	if reg["rootCa"] == nil {
		t.Fatalf("register = %v", reg)
	}
	if out := sh.must(t, `jq -r .rootCa reg.json > rootCa.pem; jq -r .certificateData.pem reg.json > cert.pem; openssl verify -CAfile rootCa.pem cert.pem`); !strings.Contains(out, "cert.pem: OK") {
		t.Errorf("openssl verify -CAfile rootCa cert.pem: %s", out)
	}
	if out := sh.must(t, `jq -r .certificateData.key_pair.private_key reg.json | openssl pkey -noout -text | head -1`); !strings.Contains(out, "256 bit") {
		t.Errorf("default key: %q, want EC P-256", firstLine(out))
	}
	// RSA 2048 keys for a thing type that asks for them, as AWS issues.
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"aws-style","keyAlgorithm":"rsa-1024"}`, 400)
	s.admin(t, "POST", "/api/v1/thing-types", `{"name":"aws-style","keyAlgorithm":"rsa-2048"}`, 201)
	rsaTok := s.admin(t, "POST", "/api/v1/registration-tokens", `{"thingType":"aws-style"}`, 201)["token"].(string)
	sh.must(t, strings.Replace(register, "meter-1", "legacy-1", 1)+` > rsa.json`, "TOKEN="+rsaTok)
	if out := sh.must(t, `jq -r .certificateData.key_pair.private_key rsa.json | openssl pkey -noout -text | head -1`); !strings.Contains(out, "2048 bit") {
		t.Errorf("aws-style key: %q, want RSA 2048", firstLine(out))
	}
	if out := sh.must(t, `jq -r .rootCa rsa.json > rootCa2.pem; jq -r .certificateData.pem rsa.json > rsa.pem; openssl verify -CAfile rootCa2.pem rsa.pem`); !strings.Contains(out, "rsa.pem: OK") {
		t.Errorf("openssl verify of the RSA thing's certificate: %s", out)
	}

	again := sh.must(t, register, "TOKEN="+tok["token"].(string))
	if !strings.Contains(again, `Thing exists, exiting: \"meter-1\" is registered already`) || strings.Count(again, "exist") > 1 {
		t.Errorf("registering again = %s, want the fact said once", again)
	}

	// A pre-claimed device reset with a reason.
	s.admin(t, "POST", "/api/v1/lobby/claims", `{"device":"`+fp+`","target":"here"}`, 200)
	if _, errOut, err := s.cli(t, "", "lobby", "reset", fp, "--reason", "returned by the customer"); err != nil {
		t.Fatalf("lobby reset: %v %s", err, errOut)
	}
	dev := s.admin(t, "GET", "/api/v1/lobby/devices/"+fp, "", 200)
	if h := jsonString(dev["history"]); !strings.Contains(h, `"reason":"returned by the customer"`) {
		t.Errorf("history after reset --reason = %s", h)
	}
}

// TestDropInSyncWatchFromEnvironment: `gatehouse sync aws-iot --watch`
// keeps importing what appears on the AWS side, as seed 000's connector
// does, with the credentials in the environment alone; a key id flag takes
// its secret from AWS_SECRET_ACCESS_KEY.
func TestDropInSyncWatchFromEnvironment(t *testing.T) {
	t.Parallel()
	dirA := t.TempDir()
	a := startServer(t, "--data-dir", dirA)
	b := startServer(t, "--data-dir", t.TempDir())
	out, errOut, err := b.cli(t, "", "aws-keys", "create", "connector")
	if err != nil {
		t.Fatalf("aws-keys create: %v\n%s", err, errOut)
	}
	var key struct {
		ID     string `json:"accessKeyId"`
		Secret string `json:"secretAccessKey"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		t.Fatal(err)
	}
	noAWS := func() []string {
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "AWS_") {
				env = append(env, kv)
			}
		}
		return append(env, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+filepath.Join(dirA, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dirA, "none"))
	}
	mustCurl(t, b, "POST", "/api/v1/things", `{"name":"first","attributes":{"site":"north"}}`, 201)

	// One round with the key id as a flag and the secret from the
	// environment.
	once := exec.CommandContext(t.Context(), binary, "sync", "aws-iot", "--data-dir", dirA, "--endpoint", b.URL+"/aws-iot", "--region", "eu-west-1",
		"--direction", "import", "--access-key-id", key.ID)
	once.Env = append(noAWS(), "AWS_SECRET_ACCESS_KEY="+key.Secret)
	if out, err := once.CombinedOutput(); err != nil {
		t.Fatalf("sync with --access-key-id and AWS_SECRET_ACCESS_KEY: %v\n%s", err, out)
	}
	if got := registryState(t, a); !strings.Contains(got, "first") {
		t.Fatalf("after one round A has %s", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watch := exec.CommandContext(ctx, binary, "sync", "aws-iot", "--data-dir", dirA, "--endpoint", b.URL+"/aws-iot", "--region", "eu-west-1",
		"--direction", "import", "--watch", "1s", "--json")
	watch.Env = append(noAWS(), "AWS_ACCESS_KEY_ID="+key.ID, "AWS_SECRET_ACCESS_KEY="+key.Secret)
	var wout, werr bytes.Buffer
	watch.Stdout, watch.Stderr = &wout, &werr // read after Wait only
	watch.Cancel = func() error { return watch.Process.Signal(os.Interrupt) }
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"second", "third"} {
		mustCurl(t, b, "POST", "/api/v1/things", `{"name":"`+name+`"}`, 201)
		testenv.Eventually(t, 30*time.Second, name+" synced by --watch", func() bool { return strings.Contains(registryState(t, a), name) })
	}
	cancel()
	// Wait reports the cancellation itself; the exit status tells how
	// the watcher took the interrupt.
	if err := watch.Wait(); watch.ProcessState == nil || watch.ProcessState.ExitCode() != 0 {
		t.Errorf("sync --watch stopped with %v\n%s", err, werr.String())
	}
	if strings.Contains(werr.String(), "sync aws-iot:") {
		t.Errorf("a round failed: %s", werr.String())
	}
}

// TestDropInProvisioningTemplatesAWSCLI: the AWS CLI v2's fleet
// provisioning commands, as an AWS IoT user types them, against /aws-iot.
func TestDropInProvisioningTemplatesAWSCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--data-dir", t.TempDir())
	sh := newAWSShell(t, s)
	body := `{"Parameters":{"SerialNumber":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"SerialNumber"}}}}}`
	role := "ROLE=arn:aws:iam::123456789012:role/Provisioning"
	created := sh.json(t, `aws iot create-provisioning-template --template-name fleet --description sensors --enabled --provisioning-role-arn "$ROLE" --template-body "$BODY" $EP`, role, "BODY="+body)
	if created["templateName"] != "fleet" || created["defaultVersionId"] != float64(1) || !strings.Contains(fmt.Sprint(created["templateArn"]), ":provisioningtemplate/fleet") {
		t.Errorf("create-provisioning-template = %v", created)
	}
	if out, err := sh.run(t, `aws iot create-provisioning-template --template-name fleet --provisioning-role-arn "$ROLE" --template-body "$BODY" $EP`, role, "BODY="+body); err == nil || !strings.Contains(out, "ResourceAlreadyExistsException") {
		t.Errorf("create-provisioning-template twice: %v\n%s", err, out)
	}
	if out, err := sh.run(t, `aws iot create-provisioning-template --template-name bad --provisioning-role-arn "$ROLE" --template-body '{"Resources":{"x":{"Type":"AWS::S3::Bucket"}}}' $EP`, role); err == nil || !strings.Contains(out, "InvalidRequestException") {
		t.Errorf("create-provisioning-template with a bad body: %v\n%s", err, out)
	}
	v2 := sh.json(t, `aws iot create-provisioning-template-version --template-name fleet --set-as-default --template-body "$BODY" $EP`,
		"BODY="+strings.Replace(body, `{"Ref":"SerialNumber"}`, `{"Fn::Join":["-",["s",{"Ref":"SerialNumber"}]]}`, 1))
	if v2["versionId"] != float64(2) || v2["isDefaultVersion"] != true {
		t.Errorf("create-provisioning-template-version = %v", v2)
	}
	sh.must(t, `aws iot update-provisioning-template --template-name fleet --no-enabled $EP`)
	d := sh.json(t, `aws iot describe-provisioning-template --template-name fleet $EP`)
	if d["defaultVersionId"] != float64(2) || d["enabled"] != false || !strings.Contains(fmt.Sprint(d["templateBody"]), "Fn::Join") {
		t.Errorf("describe-provisioning-template = %v", d)
	}
	if vs := sh.json(t, `aws iot list-provisioning-template-versions --template-name fleet $EP`); len(vs["versions"].([]any)) != 2 {
		t.Errorf("list-provisioning-template-versions = %v", vs)
	}
	if l := sh.json(t, `aws iot list-provisioning-templates $EP`); !strings.Contains(jsonString(l), `"templateName":"fleet"`) {
		t.Errorf("list-provisioning-templates = %v", l)
	}
	sh.must(t, `aws iot update-provisioning-template --template-name fleet --enabled $EP`)
	claim := sh.json(t, `aws iot create-provisioning-claim --template-name fleet $EP`)
	if kp, _ := claim["keyPair"].(map[string]any); kp == nil || !strings.Contains(fmt.Sprint(kp["PrivateKey"]), "PRIVATE KEY") || !strings.Contains(fmt.Sprint(claim["certificatePem"]), "BEGIN CERTIFICATE") {
		t.Errorf("create-provisioning-claim = %v", claim)
	}
	sh.must(t, `aws iot delete-provisioning-template --template-name fleet $EP`)
	if out, err := sh.run(t, `aws iot describe-provisioning-template --template-name fleet $EP`); err == nil || !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("describe-provisioning-template after delete: %v\n%s", err, out)
	}
}
