package store

import "testing"

// TestEventHorizonNext walks SettleEvents' step through gaps that fill
// (a late commit), gaps that stay (a rollback) and fences that are not
// yet safe to pass (an append that started before the read still runs).
func TestEventHorizonNext(t *testing.T) {
	type read struct {
		xid    int64
		passed bool
		maxID  int64
		n      int64
	}
	tests := []struct {
		name  string
		reads []read
		want  []int64 // Settled after each read
	}{
		{"empty log", []read{{10, false, 0, 0}}, []int64{0}},
		{"contiguous", []read{{10, false, 3, 3}, {11, false, 5, 2}}, []int64{3, 5}},
		{"a gap waits for the appends in flight", []read{
			{10, false, 3, 2}, // 1..3 with one missing
			{11, false, 3, 2}, // an append older than the fence still runs: nothing settled
			{12, true, 3, 2},  // none left: the gap is final
		}, []int64{0, 0, 3}},
		{"a late commit fills the gap", []read{{10, false, 3, 2}, {11, false, 3, 3}}, []int64{0, 3}},
		{"the fence passes, a new gap above it", []read{
			{10, false, 3, 2},
			{12, true, 6, 4},  // four of 1..6: 1..3 final by the first fence, a new one at 6
			{13, false, 6, 2}, // an append older than the new fence still runs
			{14, true, 6, 2},  // final
		}, []int64{0, 3, 3, 6}},
		{"an older fence is kept until it passes", []read{
			{10, false, 3, 2},
			{11, false, 5, 3}, // still a gap; the fence from xid 10 stays
			{12, true, 5, 3},
		}, []int64{0, 0, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h EventHorizon
			for i, r := range tc.reads {
				h = h.next(r.xid, r.passed, r.maxID, r.n)
				if got, want := h.Settled, tc.want[i]; got != want {
					t.Fatalf("read %d (%+v): Settled = %d, want %d (horizon %+v)", i, r, got, want, h)
				}
			}
		})
	}
}

// TestOlderHolder: transaction IDs compare modulo 2^32 against the fence's
// 64-bit one, as PostgreSQL compares them, across a wraparound too.
func TestOlderHolder(t *testing.T) {
	tests := []struct {
		holders string
		fence   int64
		want    bool
	}{
		{"", 100, false},
		{"99", 100, true},
		{"100,101", 100, false},
		{"101,50", 100, true},
		{"4294967290", 1<<32 + 5, true}, // the epoch before: older
		{"3", 1<<32 + 5, true},
		{"7", 1<<32 + 5, false},
	}
	for _, tc := range tests {
		if got := olderHolder(tc.holders, tc.fence); got != tc.want {
			t.Errorf("olderHolder(%q, %d) = %v, want %v", tc.holders, tc.fence, got, tc.want)
		}
	}
}
