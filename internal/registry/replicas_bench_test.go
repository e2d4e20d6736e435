package registry_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// BenchmarkRegistryWritesPostgres measures registry writes per second
// (thing updates, each committed with its event) by 1 and by 3 replicas
// (stores of their own on one PostgreSQL schema), 8 writers each on
// things of their own: how far the event append's transaction-scoped
// advisory lock, which orders event ids, serializes writers.
func BenchmarkRegistryWritesPostgres(b *testing.B) {
	dsn := storetest.PostgresDSN(b)
	const writers = 8
	runs := 0 // sub-benchmarks run more than once: things of their own each time
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			var regs []*registry.Service
			for range n {
				regs = append(regs, testenv.Core(b, testenv.DSN(dsn)).Registry)
			}
			ctx := testenv.Core(b, testenv.DSN(dsn)).As("bench")
			runs++
			names := make([][]string, n)
			for r := range n {
				for w := range writers {
					name := fmt.Sprintf("w-%d-%d-%d", runs, r, w)
					if _, err := regs[0].CreateThing(ctx, registry.NewThing{Name: name}); err != nil {
						b.Fatal(err)
					}
					names[r] = append(names[r], name)
				}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for r := range n {
				for _, name := range names[r] {
					wg.Go(func() {
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							v := strconv.FormatInt(i, 10)
							if _, err := regs[r].UpdateThing(ctx, name, 0, registry.ThingPatch{Attributes: map[string]*string{"n": &v}}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		})
	}
}
