package awssync_test

import (
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/awssync"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// BenchmarkSyncInStep measures a periodic sync of 1000 things that are
// already in step: both registries listed (4 signed ListThings pages from
// the AWS-IoT-compatible API) and compared against the sync state.
func BenchmarkSyncInStep(b *testing.B) {
	local, ls, _ := newRegistry(b, storetest.SQLiteDSN(b))
	remoteReg, client := remote(b)
	const n = 1000
	for i := range n {
		if _, err := remoteReg.CreateThing(b.Context(), registry.NewThing{Name: fmt.Sprintf("thing-%04d", i), Attributes: map[string]string{"site": "north", "n": fmt.Sprint(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	s := &awssync.Syncer{Registry: local, Store: ls, Client: client}
	opts := awssync.Options{Direction: awssync.Both, Prefer: awssync.PreferNewer, Source: "aws-iot:bench"}
	rep, err := s.Run(b.Context(), opts)
	if err != nil || rep.Created != n {
		b.Fatalf("initial import: %+v, %v", rep, err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := s.Run(b.Context(), opts)
		if err != nil || rep.Unchanged != n {
			b.Fatalf("sync: %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "things/s")
}
