package store_test

import (
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	for _, d := range storetest.Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) string { return d.DSN(t) })
		})
	}
}
