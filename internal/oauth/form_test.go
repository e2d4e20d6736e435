package oauth

import (
	"net/url"
	"testing"
)

// FuzzParseFastForm: whenever the fast path's form parser accepts a body,
// url.ParseQuery (what op reads the form with) accepts it too and finds
// exactly the same parameters, each once.
func FuzzParseFastForm(f *testing.F) {
	for _, seed := range []string{
		"grant_type=client_credentials&scope=publish",
		"grant_type=client_credentials&scope=a+b%20c&client_id=x&client_secret=y%26z",
		"grant%5Ftype=client_credentials", "scope=", "scope", "a=1", "grant_type=x;scope=y", "scope=%zz", "&&", "=x",
		"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, ok := parseFastForm([]byte(body))
		if !ok {
			return
		}
		want, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("parseFastForm accepted %q, url.ParseQuery refuses it: %v", body, err)
		}
		if len(want) != len(got.values) {
			t.Fatalf("%q: parseFastForm %v, url.ParseQuery %v", body, got.values, want)
		}
		for k, v := range want {
			if len(v) != 1 || len(got.values[k]) != 1 || got.values[k][0] != v[0] {
				t.Fatalf("%q: %s = %q, url.ParseQuery says %q", body, k, got.values[k], v)
			}
		}
		fields := map[string]string{"grant_type": got.grantType, "scope": got.scope, "client_id": got.clientID,
			"client_secret": got.clientSecret, "client_assertion": got.assertion, "client_assertion_type": got.assertionType}
		for k, v := range fields {
			if want.Get(k) != v {
				t.Fatalf("%q: field %s = %q, want %q", body, k, v, want.Get(k))
			}
		}
		if _, has := want["scope"]; has != got.hasScope {
			t.Fatalf("%q: hasScope = %v", body, got.hasScope)
		}
	})
}
