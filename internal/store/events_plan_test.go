package store

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"key.", "key/"},
		{"manufacturer_ca.", "manufacturer_ca/"},
		{"a\xff", "b"},
		{"\xff\xff", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := prefixEnd(tc.prefix); got != tc.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// TestRareTypeUsesTheTypeIndex: on SQLite a follower of a rare type reads
// through events_type, not every event between its ID bounds (what the
// planner picks for the same filter without RareType).
func TestRareTypeUsesTheTypeIndex(t *testing.T) {
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan := func(f EventFilter) string {
		q, args := s.listEventsQuery(f)
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var steps []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, detail)
		}
		return strings.Join(steps, "; ")
	}
	tests := []struct {
		f         EventFilter
		wantIndex bool
	}{
		{EventFilter{Type: "key.", AfterID: 10, BeforeID: 5000, Limit: 100, RareType: true}, true},
		{EventFilter{Type: "key.rotated", AfterID: 10, BeforeID: 5000, Limit: 100, RareType: true}, true},
		{EventFilter{Type: "key.", AfterID: 10, BeforeID: 5000, Limit: 100}, false},
	}
	for _, tc := range tests {
		got := plan(tc.f)
		if strings.Contains(got, "events_type") != tc.wantIndex {
			t.Errorf("plan for %+v = %q, want events_type used: %v", tc.f, got, tc.wantIndex)
		}
	}
}
