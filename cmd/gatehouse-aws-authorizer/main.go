// Command gatehouse-aws-authorizer is an AWS IoT Core custom authorizer
// Lambda that accepts Gatehouse access tokens, so devices that hold a
// Gatehouse token can connect to AWS IoT Core over MQTT, MQTT over
// WebSocket or HTTPS.
//
// The Lambda has no database: it verifies the token's signature against the
// Gatehouse JWKS (fetched and cached), checks issuer, audience, lifetime and
// type (at+jwt; certificate-bound tokens are refused, as the certificate is
// not available to it), and turns the token's scopes into AWS IoT policy
// documents through a policy map. Revocation is not seen: a revoked token
// works until it expires (keep token lifetimes short).
//
// Environment:
//
//	GATEHOUSE_JWKS_URL          Gatehouse JWKS, e.g. https://gatehouse.example/oauth2/keys (required)
//	GATEHOUSE_ISSUER            expected "iss" (required)
//	GATEHOUSE_AUDIENCE          accepted "aud" values, comma-separated (default: the issuer)
//	GATEHOUSE_POLICY_MAP        the policy map as JSON, or
//	GATEHOUSE_POLICY_MAP_FILE   a file holding it (e.g. bundled next to bootstrap)
//	GATEHOUSE_JWKS_TTL          how long a fetched JWKS is used (default 10m; an
//	                            unknown kid triggers a refetch at most once a minute)
//	GATEHOUSE_REFRESH_AFTER     refreshAfterInSeconds (default 300, 300..86400)
//
// The policy map names, per scope, the statements a token with that scope
// gets; "default" statements go to every valid token:
//
//	{"default": [{"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:eu-west-1:123456789012:client/${gatehouse:ThingName}"]}],
//	 "scopes": {"mqtt": [{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],
//	                      "Resource":["arn:aws:iot:eu-west-1:123456789012:topic/things/${gatehouse:ThingName}/*"]}]}}
//
// ${gatehouse:ThingName}, ${gatehouse:Subject} and ${gatehouse:ClientId}
// (the OAuth client) are replaced by the token's values; AWS's own
// variables (${iot:ClientId}, ...) pass through for AWS to resolve. An
// Allow statement that needs a value the token lacks is dropped; in a Deny
// statement the missing value becomes "*". Values with characters outside
// [A-Za-z0-9_.:@-] are refused. Statements are packed into at most 10
// documents of at most 2,048 characters each; a token whose statements do
// not fit is refused. Conditions are not supported (the response type has
// none).
//
// The answer: principalId is the thing name (or subject) when it is
// alphanumeric, otherwise its alphanumeric characters and a hash;
// disconnectAfterInSeconds is the token's remaining lifetime clamped to
// 300..86400 (so a connection can outlive a token that had less than five
// minutes left by the rest of those five minutes).
//
// Build with `make lambda` (bootstrap for provided.al2023, zipped).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := configFromEnv(os.Getenv, os.ReadFile)
	if err != nil {
		log.Error("gatehouse-aws-authorizer: configuration", "err", err)
		os.Exit(1)
	}
	cfg.Logger = log
	a, err := newAuthorizer(cfg)
	if err != nil {
		log.Error("gatehouse-aws-authorizer: configuration", "err", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(a.Handle, lambda.WithContext(context.Background()))
}
