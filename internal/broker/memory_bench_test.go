package broker_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/broker"
)

// idleConnections is how many connections BenchmarkIdleConnectionMemory
// opens.
const idleConnections = 2000

// connect311 is an MQTT 3.1.1 CONNECT with a clean session, keep-alive
// 600s and client id id, and no credentials.
func connect311(id string) []byte {
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0x02, 0x58}
	payload := append([]byte{byte(len(id) >> 8), byte(len(id))}, id...)
	rest := append(vh, payload...)
	return append([]byte{0x10, byte(len(rest))}, rest...)
}

// BenchmarkIdleConnectionMemory opens idleConnections real MQTT
// connections (TCP, MQTT 3.1.1, on the anonymous listener so that no
// token is needed; each is a session bound to a policy) that then stay
// idle, and reports the heap and stack the process holds per connection
// (KiB/conn; the client side, a net.Conn each, is included and small).
// Run it with -benchtime 1x.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	f := newFixtureWith(b, time.Hour, func(c *broker.Config) {
		c.AnonymousAddr = "127.0.0.1:0"
		c.AnonymousPolicy = mustCompile(b, "anonymous", anonymousDoc)
	})
	addr := f.broker.Addr("anonymous")
	for range b.N {
		before, goroutines := memStats(), runtime.NumGoroutine()
		conns := make([]net.Conn, 0, idleConnections)
		for i := range idleConnections {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(connect311(fmt.Sprintf("anon-%d", i))); err != nil {
				b.Fatal(err)
			}
			ack := make([]byte, 4)
			if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
				b.Fatalf("CONNACK %x: %v", ack, err)
			}
			conns = append(conns, c)
		}
		after := memStats()
		b.ReportMetric(float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse)/idleConnections/1024, "KiB/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/idleConnections/1024, "stack-KiB/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/idleConnections, "goroutines/conn")
		for _, c := range conns {
			c.Close()
		}
	}
	b.ReportMetric(0, "ns/op")
}

// memStats reads the memory statistics after a collection.
func memStats() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
