//go:build ignore

// fuzzcorpus writes the committed seed corpora of the fuzz targets
// (<pkg>/testdata/fuzz/<FuzzName>/<seed>, Go's "go test fuzz v1" format),
// which `go test` runs as regression inputs and `go test -fuzz` starts from:
// real AWS IoT policy documents from the source documents and their edge
// cases, CSRs of every key type, token and assertion shapes, token endpoint
// forms, custom-authorizer usernames and registration bodies.
//
//	go run scripts/fuzzcorpus.go [-force]
//
// Run it from the module root. Existing files are kept unless -force: keys
// (and so CSRs and signatures) are made fresh on each run, and the corpus
// should not change when nothing was added. Inputs the fuzzer found are
// copied in by hand next to these, named found-*.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/seal"
)

var force = flag.Bool("force", false, "rewrite existing corpus files")

// value is one argument of a fuzz function, in the corpus file syntax.
type value string

func str(s string) value   { return value("string(" + strconv.Quote(s) + ")") }
func byts(b []byte) value  { return value("[]byte(" + strconv.Quote(string(b)) + ")") }
func u8(n uint8) value     { return value("uint8(" + strconv.Itoa(int(n)) + ")") }
func boolean(b bool) value { return value("bool(" + strconv.FormatBool(b) + ")") }
func strs(s ...string) []value {
	out := make([]value, len(s))
	for i, x := range s {
		out[i] = str(x)
	}
	return out
}

var written, kept int

// write stores one corpus entry of pkg's target fuzz under name.
func write(pkg, fuzz, name string, args ...value) {
	dir := filepath.Join(pkg, "testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil && !*force {
		kept++
		return
	}
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		b.WriteString(string(a))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	written++
}

func main() {
	flag.Parse()
	if _, err := os.Stat("go.mod"); err != nil {
		log.Fatal("run from the module root: go run scripts/fuzzcorpus.go")
	}
	policyCorpus()
	csrs := pkiCorpus()
	sealCorpus()
	registerCorpus(csrs)
	oauthCorpus()
	authnCorpus()
	fleetprovCorpus()
	fmt.Printf("fuzz corpus: %d files written, %d kept\n", written, kept)
}

// registrationPolicy is the thing policy of the registration gateway
// of AWS IoT reference deployments, with the account id filled in.
const registrationPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "iot:Connect"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "iot:Publish"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:topic/tlm/*/${iot:Connection.Thing.ThingName}/d2c",
        "arn:aws:iot:us-east-1:123456789012:topic/cmd/*/${iot:Connection.Thing.ThingName}/d2c",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/get",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/update",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/defender/metrics/*"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "iot:Subscribe"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:topicfilter/cmd/*/${iot:Connection.Thing.ThingName}/c2d",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/update/*",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/get/*",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/defender/metrics/*/accepted",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/defender/metrics/*/rejected"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "iot:Receive"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/update/*",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/get/*",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/defender/metrics/*/accepted",
        "arn:aws:iot:us-east-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/defender/metrics/*/rejected"
      ]
    }
  ]
}`

// lobbyCommissionerPolicy is the target-account role policy of the device
// lobby of AWS reference deployments: IoT control-plane actions the MQTT engine does not
// know, on "*".
const lobbyCommissionerPolicy = `{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Action": [
                "iot:RegisterCertificateWithoutCA",
                "iot:RegisterThing",
                "iot:CreatePolicy",
                "iot:AttachPrincipalPolicy",
                "iot:CreateThing",
                "iot:AttachThingPrincipal",
                "iot:UpdateCertificate",
                "iot:DescribeEndpoint"
            ],
            "Resource": [
                "*"
            ],
            "Effect": "Allow"
         }
      ]
   }`

// lobbyAssumeRole (the same deployments) has a single Statement object, not a list,
// an action of another service and an ARN of IAM.
const lobbyAssumeRole = `{
   "Version": "2012-10-17",
   "Statement": {
      "Effect": "Allow",
      "Action": "sts:AssumeRole",
      "Resource": "arn:aws:iam::<TARGET_ACCOUNT_ID>:role/lobby_commissioner_role"
   }
}`

// authorizerResponse is the policy an AWS IoT custom authorizer returns
// (AWS IoT Core's custom authorizer response format).
const authorizerResponse = `{"Version":"2012-10-17","Statement":[
   {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/myClientName"},
   {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/telemetry/${iot:ClientId}"}]}`

func policyDoc(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

func policyCorpus() {
	const pkg = "internal/policy"
	parse := func(name, doc, resource, clientID string) {
		write(pkg, "FuzzParse", name, byts([]byte(doc)), str(resource), str(clientID))
	}
	parse("registration-policy", registrationPolicy, "tlm/x/sensor-42/d2c", "sensor-42")
	parse("registration-policy-shadow", registrationPolicy, "$aws/things/sensor-42/shadow/update/accepted", "sensor-42")
	parse("commissioner-role", lobbyCommissionerPolicy, "*", "lobby")
	parse("assume-role-single-statement", lobbyAssumeRole, "lobby_commissioner_role", "x")
	parse("aws-custom-authorizer-response", authorizerResponse, "telemetry/myClientName", "myClientName")
	parse("deny-wins", policyDoc(`{"Effect":"Allow","Action":"iot:*","Resource":"*"}`,
		`{"Effect":"Deny","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/$aws/*"}`), "$aws/things/a/shadow/update", "a")
	parse("thing-attributes-and-type", policyDoc(`{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe"],"Resource":[
		"arn:aws:iot:eu-west-1:123456789012:topic/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.Attributes[floor]}/${iot:Connection.Thing.ThingName}",
		"arn:aws:iot:eu-west-1:123456789012:topicfilter/${iot:Connection.Thing.ThingTypeName}/+/#"]}`), "t/3/lamp", "lamp")
	parse("certificate-variables", policyDoc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Certificate.Subject.CommonName}",
		"Condition":{"StringEquals":{"iot:Certificate.Subject.Organization":"Acme"}}}`), "dev-1", "dev-1")
	parse("conditions-all-operators", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{
		"StringEquals":{"iot:ClientId":"a"},"StringNotEquals":{"iot:ClientId":"b"},"StringLike":{"iot:ClientId":"a*"},
		"StringNotLike":{"iot:ClientId":"?z"},"Bool":{"iot:Connection.Thing.IsAttached":"true"},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::1/128"]},
		"NotIpAddress":{"aws:SourceIp":"10.9.0.0/16"},"Null":{"iot:ClientId":"false"},
		"ForAllValues:StringLike":{"gatehouse:Token.Scope":["read*","write"]},"ForAnyValue:StringEquals":{"gatehouse:Token.Scope":"publish"}}}`), "a/b", "a")
	parse("not-action-not-resource", policyDoc(`{"Effect":"Allow","NotAction":["iot:Connect"],"NotResource":"arn:aws:iot:*:*:topic/secret/*"}`), "open/x", "c")
	parse("unicode-and-escapes", policyDoc(`{"Sid":"\u00e9t\u00e9","Effect":"Allow","Action":"iot:Publish","Resource":"topic/capteur/température/🌡/${iot:ClientId}"}`), "capteur/température/🌡/c1", "c1")
	parse("escaped-variable-literals", policyDoc(`{"Effect":"Allow","Action":"*","Resource":"topic/${*}${?}${$}/x"}`), "*?$/x", "c")
	parse("wildcards-in-odd-places", policyDoc(`{"Effect":"Allow","Action":"iot:*","Resource":["arn:aws:iot:*:*:*","arn:*:iot:?s-east-?:*:topic*","topicfilter/*#","topic/+/?/*/","client/*${iot:ClientId}?"]}`), "a/+/#", "+")
	parse("wildcard-action-prefix", policyDoc(`{"Effect":"Allow","Action":["iot:Pub*","iot:?ubscribe","IOT:RECEIVE","iot:Connect*"],"Resource":"*"}`), "x", "x")
	parse("unknown-variable", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.Nope}/${aws:username}"}`), "x/y", "x")
	parse("unterminated-variable", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:ClientId"}`), "x", "x")
	parse("relation-variables", policyDoc(`{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topic/things/${gatehouse:User.Things.owner}/*",
		"Condition":{"ForAnyValue:StringEquals":{"gatehouse:User.Groups":"ops"}}}`), "things/lamp-1/cmd", "alice~1")
	parse("version-2008", `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`, "c", "c")
	parse("no-version", `{"Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}`, "c", "c")
	parse("effect-lowercase", policyDoc(`{"Effect":"allow","Action":"iot:Connect","Resource":"*"}`), "c", "c")
	parse("duplicate-keys", `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow","Action":"iot:Connect","Resource":"*","Resource":"client/x"}]}`, "x", "x")
	parse("unknown-field-principal", policyDoc(`{"Effect":"Allow","Principal":{"AWS":"arn"},"Action":"iot:Connect","Resource":"*"}`), "x", "x")
	parse("resource-without-type", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"*/*"}`), "x", "x")
	parse("empty-statement-list", `{"Version":"2012-10-17","Statement":[]}`, "x", "x")
	parse("null-and-wrong-types", `{"Version":"2012-10-17","Statement":[{"Effect":null,"Action":7,"Resource":{"a":1},"Condition":[]}]}`, "x", "x")
	parse("bom-and-trailing-garbage", "\ufeff"+policyDoc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}`)+` {}`, "x", "x")
	parse("truncated", registrationPolicy[:len(registrationPolicy)/2], "x", "x")
	parse("not-json", "Version: 2012-10-17\nStatement:\n - Effect: Allow\n", "x", "x")

	// Deep nesting inside Condition values, and a document of many statements
	// and huge arrays.
	deep := strings.Repeat(`{"a":`, 2000) + `"x"` + strings.Repeat(`}`, 2000)
	parse("deep-nesting-condition", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{"StringEquals":{"iot:ClientId":`+deep+`}}}`), "x", "x")
	parse("deep-nesting-arrays", `{"Version":"2012-10-17","Statement":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`, "x", "x")
	var many []string
	for i := range 100 { // the limit
		many = append(many, fmt.Sprintf(`{"Sid":"s%d","Effect":"Allow","Action":"iot:Publish","Resource":"topic/fleet/%d/${iot:ClientId}/*"}`, i, i))
	}
	parse("many-statements", policyDoc(many...), "fleet/99/c/x", "c")
	var resources []string
	for i := range 350 {
		resources = append(resources, fmt.Sprintf(`"arn:aws:iot:us-east-1:123456789012:topic/r/%d/*"`, i))
	}
	parse("huge-resource-array", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":[`+strings.Join(resources, ",")+`]}`), "r/349/x", "c")
	parse("oversized", policyDoc(strings.Repeat(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/a/very/long/topic/name/to/fill/the/document"},`, 300)+`{"Effect":"Deny","Action":"*","Resource":"*"}`), "a", "c")
	parse("pathological-stars", policyDoc(`{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/`+strings.Repeat("a*", 60)+`b"}`), strings.Repeat("a", 200), "c")

	for i, s := range [][2]string{
		{"arn:aws:iot:us-east-1:123456789012:topic/tlm/*/sensor-42/d2c", "topic/tlm/a/sensor-42/d2c"},
		{"*/shadow/*", "$aws/things/x/shadow/update/accepted"},
		{"a*?*?*b", "ab"}, {"a*?*?*b", "axyb"}, {"?*", ""}, {"*?", "é"}, {"🌡*", "🌡/temp"},
		{strings.Repeat("*a", 30), strings.Repeat("a", 100) + "b"}, {"x\x00*", "x\x00y"},
		{"topicfilter/a/+/#", "a/+/#"}, {"client/*", "client/"},
	} {
		write(pkg, "FuzzMatch", fmt.Sprintf("seed-%02d", i), str(s[0]), str(s[1]))
	}
	for i, s := range [][2]string{
		{"$aws/things/sensor-42/shadow/update/#", "$aws/things/sensor-42/shadow/update/accepted"},
		{"cmd/+/sensor-42/c2d", "cmd/fw/sensor-42/c2d"}, {"$share/grp/tlm/#", "tlm/a/b/d2c"},
		{"+/+/#", "$SYS/broker/load"}, {"#", "/"}, {"//", "//"}, {"+/", "a/"}, {"a/#/", "a/b/"},
		{"capteur/température/+", "capteur/température/°C"}, {"a/\u0000", "a/\u0000"}, {"a/\ufffe", "a/\ufffe"},
		{strings.Repeat("+/", 200) + "#", strings.Repeat("x/", 300)}, {"$share/", "a"}, {"$share/g/", "a"},
		{"$aws/rules/myrule/topic", "$aws/rules/myrule/topic"},
	} {
		write(pkg, "FuzzTopic", fmt.Sprintf("seed-%02d", i), str(s[0]), str(s[1]))
	}
	for i, s := range []struct {
		pattern, client, resource string
		kind                      uint8
		deny                      bool
	}{
		{"tlm/*/${iot:ClientId}/d2c", "sensor-42", "tlm/fw/sensor-42/d2c", 0, false},
		{"$aws/things/${iot:ClientId}/shadow/update/*", "sensor-42", "$aws/things/sensor-42/shadow/update/#", 1, false},
		{"${iot:ClientId}", "sensor-42", "sensor-42", 2, true},
		{"tlm/${iot:ClientId}/#", "+", "tlm/+/#", 1, false},
		{"tlm/${iot:ClientId}", "#", "tlm/#", 1, true},
		{"${iot:ClientId}${iot:ClientId}", "ab", "abab", 0, false},
		{"🌡/${iot:ClientId}/?", "é", "🌡/é/x", 0, false},
		{"x/${iot:ClientId}*", "*", "x/anything", 0, false},
		{"x/${iot:Connection.Thing.ThingName}", "c", "x/c", 0, true},
	} {
		write(pkg, "FuzzEval", fmt.Sprintf("seed-%02d", i), str(s.pattern), str(s.client), str(s.resource), u8(s.kind), boolean(s.deny))
	}
	for i, s := range [][2]string{
		{"lamp-1", "things/lamp-1/telemetry/temp"}, {"lamp-1", "things/lamp-1/telemetry/#"}, {"lamp+", "things/lamp+/telemetry/#"},
		{"lamp/../x", "things/lamp/../x/telemetry/a"}, {"🌡", "things/🌡/telemetry/x"}, {"${iot:ClientId}", "things/${iot:ClientId}/telemetry/x"},
		{"lamp-1", "things/lamp-1/telemetry"}, {"a*", "things/abc/telemetry/x"},
	} {
		write(pkg, "FuzzRelationInjection", fmt.Sprintf("seed-%02d", i), str(s[0]), str(s[1]))
	}
	for i, s := range [][]string{
		{"things/", "lamp-1", "lamp-10", "/telemetry/*", "things/lamp-10/telemetry/x"},
		{"things/", "lamp-1", "lamp-1", "/*", "things/lamp-1/a"},
		{"", "a/b", "a", "/?", "a/b/c"}, {"t/", "é", "🌡", "*", "t/🌡x"}, {"*", "a", "b", "*", "zzbzz"},
	} {
		write(pkg, "FuzzLevelSet", fmt.Sprintf("seed-%02d", i), strs(s...)...)
	}
}

// deterministic signs with RFC 6979 nonces, so ECDSA CSRs and JWTs do not
// change with every run.
type deterministic struct{ *ecdsa.PrivateKey }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.PrivateKey.Sign(nil, digest, opts)
}

func ecKey(curve elliptic.Curve, seed byte) *ecdsa.PrivateKey {
	raw := make([]byte, (curve.Params().BitSize+7)/8)
	raw[len(raw)-1], raw[0] = seed, 0x01
	k, err := ecdsa.ParseRawPrivateKey(curve, raw)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func csr(key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		key = deterministic{k}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		log.Fatal(err)
	}
	return der
}

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func rsaKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

// pkiCorpus writes the CSR and fingerprint corpora and returns PEM CSRs
// for the registration bodies, by name.
func pkiCorpus() map[string]string {
	const pkg = "internal/pki"
	p256, p384 := ecKey(elliptic.P256(), 1), ecKey(elliptic.P384(), 2)
	ed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	rsa2048 := rsaKey(2048)
	basic := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sensor-42"}}
	full := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "sensor-42", Organization: []string{"Acme Devices"}, Country: []string{"DE"}, SerialNumber: "SN-0042"},
		DNSNames:       []string{"sensor-42.fleet.example"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.42"), net.ParseIP("fe80::1")},
		EmailAddresses: []string{"ops@example.com"},
		URIs:           []*url.URL{{Scheme: "spiffe", Host: "fleet.example", Path: "/sensor-42"}},
	}
	caTrue, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	askCA := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "evil-ca"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: caTrue}}}
	unknownCritical := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-x"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}}}}

	csrs := map[string][]byte{
		"p256":                      csr(p256, basic),
		"p256-full-subject":         csr(p256, full),
		"p384":                      csr(p384, basic),
		"ed25519":                   csr(ed, basic),
		"rsa2048":                   csr(rsa2048, basic),
		"rsa1024-weak":              csr(rsaKey(1024), basic),
		"p256-asks-for-ca":          csr(p256, askCA),
		"p256-unknown-critical-ext": csr(p256, unknownCritical),
		"p256-empty-subject":        csr(p256, &x509.CertificateRequest{}),
		"p256-unicode-cn":           csr(p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "capteur-température-🌡"}}),
		"p256-long-cn":              csr(p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("c", 300)}}),
		"p256-wildcard-cn":          csr(p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "+/#"}, DNSNames: []string{"*.example"}}),
	}
	pems := map[string]string{}
	for name, der := range csrs {
		write(pkg, "FuzzParseCSR", "der-"+name, byts(der))
		write(pkg, "FuzzParseCSR", "pem-"+name, byts(pemCSR(der)))
		pems[name] = string(pemCSR(der))
	}
	good := csrs["p256"]
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-5] ^= 0x01 // inside the signature
	write(pkg, "FuzzParseCSR", "der-p256-bad-signature", byts(flipped))
	write(pkg, "FuzzParseCSR", "der-p256-truncated", byts(good[:len(good)/2]))
	write(pkg, "FuzzParseCSR", "der-p256-trailing-data", byts(append(append([]byte(nil), good...), 0, 0)))
	write(pkg, "FuzzParseCSR", "pem-new-certificate-request", byts(pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: good})))
	write(pkg, "FuzzParseCSR", "pem-crlf-and-preamble", byts([]byte("subject=CN=sensor-42\r\n"+strings.ReplaceAll(pems["p256"], "\n", "\r\n"))))
	write(pkg, "FuzzParseCSR", "pem-two-blocks", byts([]byte(pems["p256"]+pems["ed25519"])))
	write(pkg, "FuzzParseCSR", "pem-certificate-not-request", byts(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})))
	write(pkg, "FuzzParseCSR", "pem-private-key", byts(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0x00}})))
	write(pkg, "FuzzParseCSR", "der-indefinite-length", byts([]byte{0x30, 0x80, 0x30, 0x80, 0x00, 0x00, 0x00, 0x00}))
	write(pkg, "FuzzParseCSR", "der-huge-length", byts([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00}))
	write(pkg, "FuzzParseCSR", "oversized", byts(append(pemCSR(good), make([]byte, 17<<10)...)))

	fp := sha256.Sum256(good)
	hexfp := fmt.Sprintf("%x", fp)
	var colon []string
	for i := 0; i < len(hexfp); i += 2 {
		colon = append(colon, strings.ToUpper(hexfp[i:i+2]))
	}
	for name, s := range map[string]string{
		"hex":               hexfp,
		"openssl-x509":      "SHA256 Fingerprint=" + strings.Join(colon, ":"),
		"openssl-lowercase": "sha256 Fingerprint=" + strings.ToLower(strings.Join(colon, ":")),
		"colon":             strings.Join(colon, ":"),
		"spaces":            strings.Join(colon, " "),
		"qr-uri":            "gatehouse:lobby?fp=" + hexfp,
		"sha1-length":       hexfp[:40],
		"too-long":          hexfp + "00",
		"non-hex":           strings.Repeat("zz", 32),
		"unicode-digits":    strings.Repeat("٠", 64),
		"fullwidth":         strings.Repeat("ａ", 64),
		"trailing-newline":  hexfp + "\n",
		"sha256-prefix":     "sha256:" + hexfp,
		"SHA-256-prefix":    "SHA-256:" + strings.Join(colon, ":"),
		"double-colons":     strings.Join(colon, "::"),
	} {
		write(pkg, "FuzzParseFingerprint", name, str(s))
	}
	return pems
}

func sealCorpus() {
	const pkg = "internal/seal"
	// The fuzz target's sealer holds 32 bytes of 0x01 and treats every
	// successful Open other than of its own seed as a forgery, so no entry
	// here may be genuinely sealed under that key (the fuzzer would find its
	// additional data): values are sealed under another key, and the
	// "known key" ones carry the fuzz key's id, with a wrapped data key that
	// key cannot open.
	fuzzKey, err := seal.New(bytesOf(1, seal.KeySize))
	if err != nil {
		log.Fatal(err)
	}
	other, err := seal.New(bytesOf(2, seal.KeySize), seal.WithRand(mrand.NewChaCha8([32]byte{2})))
	if err != nil {
		log.Fatal(err)
	}
	ca, _ := other.Seal([]byte("-----BEGIN EC PRIVATE KEY-----\n...\n-----END EC PRIVATE KEY-----\n"), []byte("ca/root/key"))
	empty, _ := other.Seal(nil, []byte("ad"))
	secret, _ := other.Seal([]byte("secret"), []byte("ad"))
	asFuzzKey := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(c[1:5], fuzzKey.KeyID())
		return c
	}
	flip := func(b []byte, i int) []byte {
		c := asFuzzKey(b)
		c[i] ^= 0x80
		return c
	}
	v2 := asFuzzKey(ca)
	v2[0] = 2
	for name, e := range map[string][2][]byte{
		"unknown-key-id":         {secret, []byte("ad")},
		"unknown-key-id-empty":   {empty, []byte("ad")},
		"known-key-id-wrong-key": {asFuzzKey(secret), []byte("ad")},
		"known-key-id-ca":        {asFuzzKey(ca), []byte("ca/root/key")},
		"known-key-id-no-ad":     {asFuzzKey(ca), nil},
		"flipped-wrapped-key":    {flip(ca, 30), []byte("ca/root/key")},
		"flipped-data-nonce":     {flip(ca, 70), []byte("ca/root/key")},
		"flipped-tag":            {flip(ca, len(ca)-1), []byte("ca/root/key")},
		"version-2":              {v2, []byte("ca/root/key")},
		"truncated-header":       {ca[:5], []byte("ca/root/key")},
		"one-short-of-minimum":   {asFuzzKey(ca)[:92], []byte("ca/root/key")},
		"minimum-size":           {asFuzzKey(ca)[:93], []byte("ca/root/key")},
		"appended-byte":          {append(asFuzzKey(ca), 0), []byte("ca/root/key")},
		"large":                  {append(asFuzzKey(ca)[:77], bytes.Repeat([]byte("sealed"), 700)...), []byte("ca/root/key")},
	} {
		write(pkg, "FuzzOpen", name, byts(e[0]), byts(e[1]))
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func registerCorpus(csrs map[string]string) {
	const pkg = "internal/certs"
	body := func(v any) value {
		b, err := json.Marshal(v)
		if err != nil {
			log.Fatal(err)
		}
		return str(string(b))
	}
	// The registration contract: {"thingName", "version"}, optional csr.
	write(pkg, "FuzzRegister", "register-minimal", str(`{"thingName": "multa-sensor-0001", "version": "1.0.0"}`))
	write(pkg, "FuzzRegister", "register-pretty", str("{\n  \"thingName\": \"multa-sensor-0002\",\n  \"version\": \"v2\"\n}\n"))
	for _, name := range []string{"p256", "ed25519", "rsa2048", "rsa1024-weak", "p256-asks-for-ca", "p256-unknown-critical-ext", "p384"} {
		write(pkg, "FuzzRegister", "csr-"+name, body(map[string]string{"thingName": "sensor-42", "version": "1", "csr": csrs[name]}))
	}
	write(pkg, "FuzzRegister", "csr-other-cn", body(map[string]string{"thingName": "sensor-43", "version": "1", "csr": csrs["p256"]}))
	write(pkg, "FuzzRegister", "csr-unicode-cn", body(map[string]string{"thingName": "capteur-température-🌡", "csr": csrs["p256-unicode-cn"]}))
	write(pkg, "FuzzRegister", "csr-escaped-newlines", str(`{"thingName":"sensor-44","version":"1","csr":"`+strings.ReplaceAll(csrs["ed25519"], "\n", `\n`)+`"}`))
	for name, b := range map[string]string{
		"existing-thing-twice":   `{"thingName":"multa-sensor-0001","version":"1.0.0"}`,
		"unknown-field":          `{"thingName":"s-5","version":"1","attributes":{"floor":"3"}}`,
		"duplicate-thing-name":   `{"thingName":"s-6","thingName":"s-7","version":"1"}`,
		"version-number":         `{"thingName":"s-8","version":1}`,
		"null-name":              `{"thingName":null,"version":"1"}`,
		"empty-name":             `{"thingName":"","version":"1"}`,
		"mqtt-wildcards-in-name": `{"thingName":"+/#","version":"1"}`,
		"aws-reserved-name":      `{"thingName":"$aws","version":"1"}`,
		"slash-in-name":          `{"thingName":"a/../b","version":"1"}`,
		"nul-in-name":            `{"thingName":"a\u0000b","version":"1"}`,
		"long-name":              `{"thingName":"` + strings.Repeat("n", 300) + `","version":"1"}`,
		"long-version":           `{"thingName":"s-9","version":"` + strings.Repeat("9", 10000) + `"}`,
		"trailing-json":          `{"thingName":"s-10","version":"1"}{"thingName":"s-11"}`,
		"deep-nesting":           `{"thingName":"s-12","x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		"invalid-utf8":           "{\"thingName\":\"s-\xff\",\"version\":\"1\"}",
		"csr-not-pem":            `{"thingName":"s-13","csr":"MIIBCjCBsQIBADAPMQ0wCwYDVQQDDARkZXYx"}`,
		"csr-empty":              `{"thingName":"s-14","csr":""}`,
		"empty-object":           `{}`,
		"empty-body":             ``,
		"form-encoded":           `thingName=s-15&version=1`,
	} {
		write(pkg, "FuzzRegister", name, str(b))
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonPart(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	return b64(b)
}

// es256 signs header.payload with a fixed P-256 key (deterministic): a token
// of the right shape whose key the server does not hold.
func es256(header, payload map[string]any) string {
	input := jsonPart(header) + "." + jsonPart(payload)
	sum := sha256.Sum256([]byte(input))
	der, err := ecKey(elliptic.P256(), 7).Sign(nil, sum[:], crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		log.Fatal(err)
	}
	sig := make([]byte, 64)
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func hs256(header, payload map[string]any, secret []byte) string {
	input := jsonPart(header) + "." + jsonPart(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func oauthCorpus() {
	const pkg = "internal/oauth"
	now := int64(1796000000)
	access := map[string]any{"iss": "http://127.0.0.1:8080", "sub": "sensor-1", "aud": []string{"http://127.0.0.1:8080"}, "exp": now + 3600,
		"iat": now, "nbf": now, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "client_id": "sensor-1", "scope": "publish subscribe", "gatehouse:kind": "thing",
		"gatehouse:thing": "sensor-1", "gatehouse:thing_type": "sensor"}
	atHeader := map[string]any{"alg": "ES256", "kid": "kid-1", "typ": "at+jwt"}
	valid := es256(atHeader, access)
	parts := strings.Split(valid, ".")
	p := ecKey(elliptic.P256(), 7)
	spki, _ := x509.MarshalPKIXPublicKey(&p.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(p.PublicKey.X.FillBytes(make([]byte, 32))), "y": b64(p.PublicKey.Y.FillBytes(make([]byte, 32)))}
	withHeader := func(h map[string]any) string { return jsonPart(h) + "." + parts[1] + "." + parts[2] }
	tokens := map[string]string{
		"es256-valid-shape":           valid,
		"alg-none":                    jsonPart(map[string]any{"alg": "none", "typ": "at+jwt"}) + "." + parts[1] + ".",
		"alg-None-capital":            jsonPart(map[string]any{"alg": "None", "kid": "kid-1"}) + "." + parts[1] + ".",
		"hs256-with-es256-public-pem": hs256(map[string]any{"alg": "HS256", "kid": "kid-1", "typ": "at+jwt"}, access, pubPEM),
		"hs256-with-es256-public-der": hs256(map[string]any{"alg": "HS256", "kid": "kid-1", "typ": "at+jwt"}, access, spki),
		"embedded-jwk":                withHeader(map[string]any{"alg": "ES256", "jwk": jwk, "typ": "at+jwt"}),
		"jku-header":                  withHeader(map[string]any{"alg": "ES256", "jku": "http://evil.example/jwks", "kid": "x"}),
		"kid-path-traversal":          withHeader(map[string]any{"alg": "ES256", "kid": "../../../../dev/null"}),
		"crit-unknown":                withHeader(map[string]any{"alg": "ES256", "kid": "kid-1", "crit": []string{"exp"}, "exp": 1}),
		"b64-false":                   withHeader(map[string]any{"alg": "ES256", "kid": "kid-1", "b64": false, "crit": []string{"b64"}}),
		"typ-jwt-not-at":              withHeader(map[string]any{"alg": "ES256", "kid": "kid-1", "typ": "JWT"}),
		"rs256-header":                withHeader(map[string]any{"alg": "RS256", "kid": "kid-1"}),
		"eddsa-header":                withHeader(map[string]any{"alg": "EdDSA", "kid": "kid-1"}),
		"es256-der-signature":         parts[0] + "." + parts[1] + "." + b64(append([]byte{0x30, 0x44, 0x02, 0x20}, make([]byte, 68)...)),
		"signature-zero":              parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)),
		"signature-padded":            valid + "==",
		"std-base64":                  strings.NewReplacer("-", "+", "_", "/").Replace(valid),
		"whitespace":                  " " + valid + "\n",
		"bearer-prefix":               "Bearer " + valid,
		"four-parts":                  valid + ".x",
		"jwe-five-parts":              parts[0] + "..." + parts[1] + "." + parts[2],
		"expired":                     es256(atHeader, merge(access, map[string]any{"exp": 1000000000})),
		"exp-float-huge":              es256(atHeader, merge(access, map[string]any{"exp": 1e300})),
		"exp-string":                  es256(atHeader, merge(access, map[string]any{"exp": "never"})),
		"aud-object":                  es256(atHeader, merge(access, map[string]any{"aud": map[string]any{"a": 1}})),
		"payload-not-json":            parts[0] + "." + b64([]byte("not json")) + "." + parts[2],
		"payload-duplicate-sub":       parts[0] + "." + b64([]byte(`{"sub":"sensor-1","sub":"admin","exp":1796003600}`)) + "." + parts[2],
		"header-array":                b64([]byte(`[]`)) + "." + parts[1] + "." + parts[2],
		"oversized":                   parts[0] + "." + b64([]byte(`{"sub":"`+strings.Repeat("x", 12000)+`"}`)) + "." + parts[2],
		"opaque-refresh-shape":        "ghr_" + strings.Repeat("A", 43),
		"unicode":                     "eyJ🌡.é.ü",
	}
	for name, tok := range tokens {
		write(pkg, "FuzzVerifyAccessToken", name, str(tok))
		write(pkg, "FuzzVerifyCompact", name, str(tok))
	}
	// Client assertions (RFC 7523) as the assertion-authenticated thing
	// (signer-1) would send them, signed with a key the server does not
	// know, plus the classic attacks.
	asHeader := map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}
	claims := map[string]any{"iss": "signer-1", "sub": "signer-1", "aud": "http://127.0.0.1:8080/oauth2/token", "exp": now + 60, "iat": now, "jti": "a-1"}
	as := es256(asHeader, claims)
	ap := strings.Split(as, ".")
	for name, a := range map[string]string{
		"es256-valid-shape":         as,
		"alg-none":                  jsonPart(map[string]any{"alg": "none"}) + "." + ap[1] + ".",
		"hs256-with-public-key":     hs256(map[string]any{"alg": "HS256", "kid": "k1"}, claims, pubPEM),
		"iss-sub-mismatch":          es256(asHeader, merge(claims, map[string]any{"sub": "sensor-1"})),
		"aud-array-with-issuer":     es256(asHeader, merge(claims, map[string]any{"aud": []string{"http://127.0.0.1:8080", "x"}})),
		"no-jti":                    es256(asHeader, merge(claims, map[string]any{"jti": nil})),
		"exp-far-future":            es256(asHeader, merge(claims, map[string]any{"exp": int64(1) << 53})),
		"unknown-issuer":            es256(asHeader, merge(claims, map[string]any{"iss": "nobody", "sub": "nobody"})),
		"embedded-jwk":              jsonPart(map[string]any{"alg": "ES256", "jwk": jwk}) + "." + ap[1] + "." + ap[2],
		"access-token-as-assertion": valid,
		"oversized":                 ap[0] + "." + b64([]byte(`{"iss":"`+strings.Repeat("i", 12000)+`"}`)) + "." + ap[2],
	} {
		write(pkg, "FuzzClientAssertion", name, str(a))
	}
	for name, f := range map[string]string{
		"client-credentials-basic":  "grant_type=client_credentials",
		"client-credentials-scopes": "grant_type=client_credentials&scope=mqtt%3Apublish+mqtt%3Asubscribe+offline_access",
		"client-credentials-post":   "grant_type=client_credentials&client_id=sensor-1&client_secret=ghs_" + strings.Repeat("s", 43),
		"private-key-jwt":           "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + as,
		"device-code-grant":         "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=" + strings.Repeat("d", 43) + "&client_id=tv-1",
		"refresh":                   "grant_type=refresh_token&refresh_token=ghr_" + strings.Repeat("r", 43),
		"authorization-code":        "grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&code_verifier=" + strings.Repeat("v", 50),
		"token-exchange":            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
		"duplicate-grant-type":      "grant_type=client_credentials&grant_type=password",
		"duplicate-scope":           "scope=a&grant_type=client_credentials&scope=b",
		"empty-key":                 "=client_credentials&grant_type=client_credentials",
		"plus-and-space":            "grant_type=client+credentials&scope=a%20b+c",
		"percent-encoded-key":       "grant%5Ftype=client_credentials&%73cope=x",
		"bad-escape":                "grant_type=client_credentials&scope=%G0",
		"truncated-escape":          "grant_type=client_credentials&scope=%4",
		"semicolon":                 "grant_type=client_credentials;scope=x",
		"trailing-ampersands":       "grant_type=client_credentials&&&",
		"nul-byte":                  "grant_type=client_credentials&scope=a%00b",
		"raw-nul":                   "grant_type=client_credentials&scope=a\x00b",
		"unicode-raw":               "grant_type=client_credentials&scope=température🌡",
		"unicode-escaped":           "grant_type=client_credentials&scope=temp%C3%A9rature",
		"invalid-utf8-escaped":      "grant_type=client_credentials&scope=%ff%fe",
		"json-body":                 `{"grant_type":"client_credentials"}`,
		"many-params":               strings.Repeat("a=1&", 1000) + "grant_type=client_credentials",
		"long-scope":                "grant_type=client_credentials&scope=" + strings.Repeat("s+", 4000),
	} {
		write(pkg, "FuzzParseFastForm", name, str(f))
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func authnCorpus() {
	const pkg = "internal/authn"
	tok := es256(map[string]any{"alg": "ES256", "kid": "kid-1", "typ": "at+jwt"},
		map[string]any{"iss": "http://127.0.0.1:8080", "sub": "s-1", "exp": 1796003600, "jti": "j", "client_id": "s-1", "scope": "mqtt"})
	// An AWS-style signature: RSA-SHA256 of the token, base64, URL-escaped,
	// as AWS IoT's custom authorizers verify token signatures.
	sum := sha256.Sum256([]byte(tok))
	rsaSig, err := rsa.SignPKCS1v15(nil, rsaKey(2048), crypto.SHA256, sum[:])
	if err != nil {
		log.Fatal(err)
	}
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(rsaSig))
	ecSig, err := ecKey(elliptic.P256(), 9).Sign(nil, sum[:], crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	esc := url.QueryEscape(base64.StdEncoding.EncodeToString(ecSig))
	custom := func(name, authorizer, signature, token string) string {
		return name + "?x-amz-customauthorizer-name=" + authorizer + "&x-amz-customauthorizer-signature=" + signature + "&token=" + token
	}
	for name, up := range map[string][2]string{
		"token-as-password":             {"s-1", tok},
		"aws-custom-rsa-signature":      {custom("s-1", "gh", sig, tok), ""},
		"aws-custom-ecdsa-signature":    {custom("s-1", "gh", esc, tok), ""},
		"aws-custom-unescaped-base64":   {custom("s-1", "gh", base64.StdEncoding.EncodeToString(ecSig), tok), ""},
		"aws-custom-with-password":      {custom("s-1", "gh", esc, tok), "bXlQYXNzd29yZA=="},
		"aws-custom-token-key-name":     {"s-1?x-amz-customauthorizer-name=gh&x-amz-customauthorizer-signature=" + esc + "&myTokenKey=" + tok, ""},
		"aws-custom-params-reordered":   {"s-1?token=" + tok + "&x-amz-customauthorizer-signature=" + esc + "&x-amz-customauthorizer-name=gh", ""},
		"aws-custom-duplicate-name":     {"s-1?x-amz-customauthorizer-name=gh&x-amz-customauthorizer-name=other&x-amz-customauthorizer-signature=" + esc + "&token=" + tok, ""},
		"aws-custom-duplicate-token":    {custom("s-1", "gh", esc, tok) + "&token=x.y.z", ""},
		"aws-custom-other-thing":        {custom("s-2", "gh", esc, tok), ""},
		"aws-custom-empty-thing":        {custom("", "gh", esc, tok), ""},
		"aws-custom-two-question-marks": {custom("s-1?x", "gh", esc, tok), ""},
		"aws-custom-no-signature":       {"s-1?x-amz-customauthorizer-name=gh&token=" + tok, ""},
		"aws-custom-signature-bad-b64":  {custom("s-1", "gh", "%%%", tok), ""},
		"aws-custom-unknown-authorizer": {custom("s-1", "nope", esc, tok), ""},
		"aws-custom-authorizer-unicode": {custom("s-1", "g%C3%A9h", esc, tok), ""},
		"aws-custom-semicolons":         {"s-1?x-amz-customauthorizer-name=gh;x-amz-customauthorizer-signature=" + esc + ";token=" + tok, ""},
		"aws-custom-nul":                {custom("s-1%00", "gh", esc, tok), ""},
		"aws-custom-huge-token":         {custom("s-1", "gh", esc, strings.Repeat("t", 70000)), ""},
		"alg-none-password":             {"s-1", jsonPart(map[string]any{"alg": "none"}) + "." + jsonPart(map[string]any{"sub": "s-1", "client_id": "s-1", "exp": 1796003600}) + "."},
		"refresh-token-as-password":     {"s-1", "ghr_" + strings.Repeat("r", 43)},
		"thing-secret-as-password":      {"s-1", "ghs_" + strings.Repeat("s", 43)},
		"wildcard-username":             {"#", tok},
		"unicode-username":              {"capteur-🌡", tok},
		"empty-username":                {"", tok},
		"question-mark-only":            {"?", ""},
	} {
		write(pkg, "FuzzAuthenticateUsername", name, str(up[0]), str(up[1]))
	}
}

// fleetprovCorpus seeds the provisioning template evaluator (AWS's fleet
// provisioning sample template and the intrinsic functions it supports) and
// the CBOR decoder of the /cbor topics.
func fleetprovCorpus() {
	const pkg = "internal/fleetprov"
	sample := `{"Parameters":{"DeviceLocation":{"Type":"String"},"AWS::IoT::Certificate::Id":{"Type":"String"},"SerialNumber":{"Type":"String"}},` +
		`"Mappings":{"LocationTable":{"Seattle":{"LocationUrl":"https://example.aws"}}},` +
		`"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Join":["",["ThingPrefix_",{"Ref":"SerialNumber"}]]},"AttributePayload":{"version":"v1"}}},` +
		`"certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"},"Status":"Active"}},` +
		`"policy":{"Type":"AWS::IoT::Policy","Properties":{"PolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}}}},` +
		`"DeviceConfiguration":{"LocationUrl":{"Fn::FindInMap":["LocationTable",{"Ref":"DeviceLocation"},"LocationUrl"]}}}`
	write(pkg, "FuzzTemplate", "aws-sample", byts([]byte(sample)), str("1"), str("Seattle"))
	write(pkg, "FuzzTemplate", "conditions", byts([]byte(`{"Parameters":{"SerialNumber":{},"DeviceLocation":{"Default":"x"}},`+
		`"Conditions":{"Here":{"Fn::And":[{"Fn::Equals":[{"Ref":"DeviceLocation"},"x"]},{"Fn::Not":[{"Fn::Equals":["a","b"]}]}]},"There":{"Fn::Or":[{"Condition":"Here"},{"Fn::Equals":["1","1"]}]}},`+
		`"Resources":{"t":{"Type":"AWS::IoT::Thing","Condition":"There","Properties":{"ThingName":{"Fn::If":["Here",{"Fn::Sub":"s-${SerialNumber}-${!x}"},"other"]},`+
		`"ThingGroups":[{"Fn::Select":["1",{"Fn::Split":[",",{"Ref":"SerialNumber"}]}]}]}}}}`)), str("a,b"), str("x"))
	write(pkg, "FuzzTemplate", "self-condition", byts([]byte(`{"Conditions":{"C":{"Fn::Not":[{"Condition":"C"}]}},"Resources":{"t":{"Type":"AWS::IoT::Thing","Condition":"C","Properties":{"ThingName":"x"}}}}`)), str(""), str(""))
	write(pkg, "FuzzTemplate", "deep", byts([]byte(`{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":`+strings.Repeat(`{"Fn::Join":["",[`, 40)+`"x"`+strings.Repeat(`]]}`, 40)+`}}}}`)), str(""), str(""))
	write(pkg, "FuzzCBOR", "empty-map", byts([]byte{0xa0}))
	write(pkg, "FuzzCBOR", "register-thing", byts([]byte("\xa2\x78\x19certificateOwnershipToken\x63tok\x6aparameters\xa1\x6cSerialNumber\x611")))
	write(pkg, "FuzzCBOR", "huge-length", byts([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
	write(pkg, "FuzzCBOR", "nested", byts([]byte(strings.Repeat("\x81", 40)+"\x00")))
}
