package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// fill sets every field of the struct v points to a distinct non-zero
// value, secrets included.
func fill(v any) {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + rv.Type().Field(i).Name)
		case reflect.Int64, reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.Uint8 {
				f.SetBytes([]byte("secret-bytes"))
			} else {
				f.Set(reflect.ValueOf([]string{"a", "b"}))
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeFor[time.Time]() {
				f.Set(reflect.ValueOf(time.Unix(int64(1_800_000_000+i), 0).UTC()))
			}
		}
	}
}

// TestViewsShowWhatRecordsShow: each API view writes exactly the JSON its
// store record writes with its secret fields hidden, so moving the API to
// views changed no answer; a field added to a record (secret or not)
// breaks this test until someone decides whether the API shows it.
func TestViewsShowWhatRecordsShow(t *testing.T) {
	tests := []struct {
		name   string
		record any
		view   func(any) any
	}{
		{"user", &store.User{}, func(r any) any { return viewUser(r.(*store.User)) }},
		{"api token", &store.APIToken{}, func(r any) any { return viewAPIToken(r.(*store.APIToken)) }},
		{"app", &store.App{}, func(r any) any { return viewApp(r.(*store.App)) }},
		{"aws key", &store.AWSAccessKey{}, func(r any) any { return viewAWSKey(r.(*store.AWSAccessKey)) }},
		{"lobby device", &store.LobbyDevice{}, func(r any) any { return viewLobbyDevice(r.(*store.LobbyDevice)) }},
	}
	for _, tc := range tests {
		fill(tc.record)
		want, _ := json.Marshal(tc.record)
		got, _ := json.Marshal(tc.view(tc.record))
		if string(got) != string(want) {
			t.Errorf("%s view:\n got %s\nwant %s", tc.name, got, want)
		}
	}
	// A lobby target's record also carries the API token it was given
	// (input only): the view never shows it.
	var lt store.LobbyTarget
	fill(&lt)
	lt.APIToken = ""
	want, _ := json.Marshal(&lt)
	got, _ := json.Marshal(viewLobbyTarget(&lt))
	if string(got) != string(want) {
		t.Errorf("lobby target view:\n got %s\nwant %s", got, want)
	}
	lt.APIToken = "ghat_secret"
	if got, _ := json.Marshal(viewLobbyTarget(&lt)); string(got) != string(want) {
		t.Errorf("lobby target view shows the API token: %s", got)
	}
}
