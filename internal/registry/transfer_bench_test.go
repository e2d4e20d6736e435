package registry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

// BenchmarkImport1000 imports 1000 things with two attributes each into
// an empty SQLite registry (one transaction), and reports things/s.
func BenchmarkImport1000(b *testing.B) {
	const n = 1000
	d := &registry.Dump{}
	for i := range n {
		d.Things = append(d.Things, registry.DumpThing{Name: fmt.Sprintf("thing-%04d", i), Attributes: map[string]string{"site": "north", "n": fmt.Sprint(i)}})
	}
	for b.Loop() {
		b.StopTimer()
		s, err := store.Open(b.Context(), storetest.SQLiteDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		svc, err := registry.New(registry.Config{Store: s, Events: events.NewLog(s, time.Now), Hash: registry.HashParams{Memory: 64, Time: 1, Threads: 1}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := svc.Import(b.Context(), d, false)
		if err != nil || rep.Created != n {
			b.Fatalf("Import: %+v, %v", rep, err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "things/s")
}
