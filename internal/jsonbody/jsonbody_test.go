package jsonbody_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/jsonbody"
)

type thing struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestRead(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		opts        jsonbody.Options
		wantReason  jsonbody.Reason // "" for success
		wantName    string
	}{
		{"object", "application/json", `{"name":"a","count":1}`, jsonbody.Options{}, "", "a"},
		{"+json media type", "application/merge-patch+json", `{"name":"b"}`, jsonbody.Options{}, "", "b"},
		{"no content type", "", `{"name":"c"}`, jsonbody.Options{}, "", "c"},
		{"form", "application/x-www-form-urlencoded", `name=a`, jsonbody.Options{}, jsonbody.MediaType, ""},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", 100) + `"}`, jsonbody.Options{}, jsonbody.TooLarge, ""},
		{"empty", "application/json", "  \n", jsonbody.Options{}, jsonbody.Empty, ""},
		{"empty allowed", "application/json", "", jsonbody.Options{AllowEmpty: true}, "", ""},
		{"null", "application/json", "null", jsonbody.Options{AllowEmpty: true}, jsonbody.Null, ""},
		{"syntax", "application/json", `{"name":`, jsonbody.Options{}, jsonbody.Syntax, ""},
		{"wrong type", "application/json", `{"count":"x"}`, jsonbody.Options{}, jsonbody.WrongType, ""},
		{"unknown field", "application/json", `{"colour":"red"}`, jsonbody.Options{}, jsonbody.UnknownField, ""},
		{"trailing", "application/json", `{"name":"a"} {}`, jsonbody.Options{}, jsonbody.Trailing, ""},
		{"array", "application/json", `[1]`, jsonbody.Options{}, jsonbody.WrongType, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got thing
			err := jsonbody.Read(tt.contentType, strings.NewReader(tt.body), 64, &got, tt.opts)
			if tt.wantReason == "" {
				if err != nil || got.Name != tt.wantName {
					t.Fatalf("Read = %+v, %v; want name %q", got, err, tt.wantName)
				}
				return
			}
			je, ok := errors.AsType[*jsonbody.Error](err)
			if !ok || je.Reason != tt.wantReason || je.Message == "" {
				t.Fatalf("Read error = %v (%T), want reason %q", err, err, tt.wantReason)
			}
		})
	}
}

// FuzzDecode: any body is either decoded or refused with a reason and a
// bounded message; nothing panics.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a","count":1}`, `null`, ``, `{"name":`, `{"x":1}`, `{} {}`, `[]`, `{"count":1e400}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v thing
		err := jsonbody.Decode(body, &v, jsonbody.Options{})
		if err == nil {
			return
		}
		je, ok := errors.AsType[*jsonbody.Error](err)
		if !ok || je.Reason == "" || je.Message == "" || len(je.Message) > 203 {
			t.Fatalf("Decode(%q) = %v (%T): want a *jsonbody.Error with a reason and a short message", body, err, err)
		}
	})
}
