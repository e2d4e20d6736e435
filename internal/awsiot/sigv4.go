package awsiot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Signature V4 constants.
const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	// Service is the signing name aws-sdk-go-v2 (and AWS's own
	// documentation) puts in a request's credential scope.
	Service = "iot"
	// ServiceCLI is the signing name the AWS CLI's (botocore's) model gives
	// the iot API: AWS accepts both, and so does Gatehouse.
	ServiceCLI = "execute-api"
)

// authHeader is a parsed SigV4 Authorization header.
type authHeader struct {
	keyID, date, region, service string
	signedHeaders                []string
	signature                    string
}

var errMalformedAuth = errors.New("malformed Authorization header")

func parseAuthHeader(h string) (authHeader, error) {
	var a authHeader
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != sigAlgorithm {
		return a, fmt.Errorf("%w: want %s", errMalformedAuth, sigAlgorithm)
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, errMalformedAuth
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return a, fmt.Errorf("%w: credential scope", errMalformedAuth)
			}
			a.keyID, a.date, a.region, a.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	if a.keyID == "" || len(a.signedHeaders) == 0 || a.signature == "" {
		return a, errMalformedAuth
	}
	return a, nil
}

// uriEscape escapes s as SigV4 wants: every byte but A-Z a-z 0-9 - . _ ~
// (and / when keepSlash) as %XX with upper-case hex.
func uriEscape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keepSlash) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var params []string
	for k, vs := range q {
		for _, v := range vs {
			params = append(params, uriEscape(k, false)+"="+uriEscape(v, false))
		}
	}
	sort.Strings(params)
	return strings.Join(params, "&")
}

// stripSpaces trims s and folds runs of spaces, as canonical headers want.
func stripSpaces(s string) string { return strings.Join(strings.Fields(s), " ") }

// canonicalRequest builds the SigV4 canonical request of r with body hash
// payloadHash. The URI is the escaped path as sent, escaped once more (the
// AWS SDKs' default for every service but S3).
func canonicalRequest(r *http.Request, path string, signed []string, payloadHash string) string {
	if path == "" {
		path = "/"
	}
	var hb strings.Builder
	for _, h := range signed {
		var vals []string
		switch h {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			if v := r.Header.Get("Content-Length"); v != "" {
				vals = []string{v}
			} else {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			vals = r.Header.Values(h)
		}
		for i := range vals {
			vals[i] = stripSpaces(vals[i])
		}
		hb.WriteString(h + ":" + strings.Join(vals, ",") + "\n")
	}
	return strings.Join([]string{r.Method, uriEscape(path, true), canonicalQuery(r.URL.Query()), hb.String(), strings.Join(signed, ";"), payloadHash}, "\n")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// signature computes the SigV4 signature of a canonical request.
func signature(secret []byte, a authHeader, amzDate, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	scope := strings.Join([]string{a.date, a.region, a.service, "aws4_request"}, "/")
	toSign := strings.Join([]string{sigAlgorithm, amzDate, scope, hex.EncodeToString(sum[:])}, "\n")
	k := hmacSHA256(append([]byte("AWS4"), secret...), a.date)
	k = hmacSHA256(k, a.region)
	k = hmacSHA256(k, a.service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

// checkScope validates the parts of a request's signature that need no
// secret: date and skew, region, service, signed headers.
func checkScope(r *http.Request, a authHeader, now time.Time, maxSkew time.Duration, region string) (string, error) {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		return "", errors.New("X-Amz-Date is missing or not in the form 20060102T150405Z")
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return "", fmt.Errorf("signature expired: request time %s is more than %s from server time %s", amzDate, maxSkew, now.UTC().Format(amzDateFmt))
	}
	if a.date != amzDate[:8] {
		return "", errors.New("credential scope date does not match X-Amz-Date")
	}
	if a.service != Service && a.service != ServiceCLI {
		return "", fmt.Errorf("credential should be scoped to correct service: %q or %q", Service, ServiceCLI)
	}
	if region != "" && a.region != region {
		return "", fmt.Errorf("credential should be scoped to a valid region: %q", region)
	}
	has := map[string]bool{}
	for i, h := range a.signedHeaders {
		if h != strings.ToLower(h) || (i > 0 && a.signedHeaders[i-1] >= h) {
			return "", errors.New("SignedHeaders must be lower case and sorted")
		}
		has[h] = true
	}
	if !has["host"] || !has["x-amz-date"] {
		return "", errors.New("host and x-amz-date must be signed")
	}
	return amzDate, nil
}
