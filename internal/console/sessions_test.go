package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSessionsOfAUser: administrators list and end anyone's console
// sessions, every other person only their own; the list never shows a
// session's CSRF token, and an ended session signs its browser out.
func TestSessionsOfAUser(t *testing.T) {
	f := newFixture(t, options{})
	uma := f.login("uma", userPass)
	umaPhone := f.login("uma", userPass)
	ada := f.login("ada", adminPass)
	otto := f.login("otto", operatorPass)

	list := func(s *session, user string) (int, []string, string) {
		t.Helper()
		r := f.do(s, "GET", "/api/v1/users/"+user+"/sessions", "")
		if s == nil {
			r = f.bearer("GET", "/api/v1/users/"+user+"/sessions", "")
		}
		var body struct {
			Items []struct{ ID, Username string }
		}
		if r.status == http.StatusOK {
			r.json(t, &body)
		}
		var ids []string
		for _, it := range body.Items {
			ids = append(ids, it.ID)
		}
		return r.status, ids, r.raw
	}
	for _, tc := range []struct {
		name      string
		who       *session
		user      string
		want, ids int
	}{
		{"uma her own", uma, "uma", 200, 2},
		{"uma another's", uma, "ada", 403, 0},
		{"an operator another's", otto, "uma", 403, 0},
		{"the admin uma's", ada, "uma", 200, 2},
		{"an admin API token", nil, "uma", 200, 2},
		{"an unknown user", ada, "nobody", 404, 0},
	} {
		status, ids, raw := list(tc.who, tc.user)
		if status != tc.want || len(ids) != tc.ids {
			t.Errorf("%s: %d with %d sessions, want %d with %d: %s", tc.name, status, len(ids), tc.want, tc.ids, raw)
		}
		for _, s := range []*session{uma, umaPhone, ada} {
			if strings.Contains(raw, s.csrf) || strings.Contains(raw, s.cookie) {
				t.Errorf("%s: the list shows a session's secret: %s", tc.name, raw)
			}
		}
	}

	_, ids, _ := list(ada, "uma")
	if r := f.change(uma, "DELETE", "/api/v1/users/ada/sessions/"+ids[0], ""); r.status != http.StatusForbidden {
		t.Errorf("uma ends a session under ada's name: %d %s, want 403", r.status, r.raw)
	}
	if r := f.do(ada, "DELETE", "/api/v1/users/uma/sessions/"+ids[0], ""); r.status != http.StatusForbidden {
		t.Errorf("end without the CSRF token: %d, want 403", r.status)
	}
	if r := f.change(ada, "DELETE", "/api/v1/users/ada/sessions/"+ids[0], ""); r.status != http.StatusNotFound {
		t.Errorf("end uma's session as if it were ada's: %d %s, want 404", r.status, r.raw)
	}
	before := [2]int{f.do(uma, "GET", "/console/api/session", "").status, f.do(umaPhone, "GET", "/console/api/session", "").status}
	if r := f.change(ada, "DELETE", "/api/v1/users/uma/sessions/"+ids[0], ""); r.status != http.StatusNoContent {
		t.Fatalf("admin ends uma's session: %d %s", r.status, r.raw)
	}
	after := [2]int{f.do(uma, "GET", "/console/api/session", "").status, f.do(umaPhone, "GET", "/console/api/session", "").status}
	if before != [2]int{200, 200} || after[0]+after[1] != 200+401 {
		t.Errorf("uma's two sessions: %v before, %v after one was ended; want one of them signed out", before, after)
	}
	if _, left, _ := list(ada, "uma"); len(left) != 1 || left[0] == ids[0] {
		t.Errorf("sessions left = %v, want the other one", left)
	}
	if evs := f.eventsOf("console.session_revoked"); len(evs) != 1 || evs[0].Subject != "user/uma" || evs[0].Actor != "user:ada" {
		t.Errorf("console.session_revoked events = %+v", evs)
	}
	// A person ends their own other session.
	live := uma
	if after[0] != 200 {
		live = umaPhone
	}
	_, left, _ := list(live, "uma")
	if r := f.change(live, "DELETE", "/api/v1/users/uma/sessions/"+left[0], ""); r.status != http.StatusNoContent {
		t.Errorf("uma ends her own session: %d %s", r.status, r.raw)
	}
}

// TestWhatAUserMay: over HTTP with a console session, a person with role
// "user" reaches what the console shows them (their access requests, their
// own sessions) and is refused the administrators' objects the new pages
// show, reads and changes alike.
func TestWhatAUserMay(t *testing.T) {
	f := newFixture(t, options{})
	uma := f.login("uma", userPass)
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/access-requests", "", http.StatusOK},
		{"GET", "/api/v1/users/uma/sessions", "", http.StatusOK},
		{"GET", "/api/v1/users/uma", "", http.StatusForbidden},
		{"PATCH", "/api/v1/users/uma", `{"roles":["admin"]}`, http.StatusForbidden},
		{"GET", "/api/v1/users/ada/sessions", "", http.StatusForbidden},
		{"GET", "/api/v1/groups", "", http.StatusForbidden},
		{"POST", "/api/v1/groups", `{"name":"mine"}`, http.StatusForbidden},
		{"POST", "/api/v1/relationships", `{"subjectKind":"user","subject":"uma","relation":"owner","objectKind":"thing","object":"x"}`, http.StatusForbidden},
		{"GET", "/api/v1/authorizers", "", http.StatusForbidden},
		{"GET", "/api/v1/api-tokens", "", http.StatusForbidden},
		{"POST", "/api/v1/api-tokens", `{"name":"mine","roles":["admin"]}`, http.StatusForbidden},
	} {
		if r := f.change(uma, tc.method, tc.path, tc.body); r.status != tc.want {
			t.Errorf("uma %s %s = %d %s, want %d", tc.method, tc.path, r.status, r.raw, tc.want)
		}
	}
	if u, err := f.reg.User(t.Context(), "uma"); err != nil || len(u.Roles) != 1 || u.Roles[0] != "user" {
		t.Errorf("uma after the refused changes = %+v, %v", u, err)
	}
}
