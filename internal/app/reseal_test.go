package app

import (
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// TestResealADCoversSealedColumns: ResealMasterKey knows the
// additional data of every column the store lists as sealed, so a new
// sealed column cannot be left out of a master key rotation.
func TestResealADCoversSealedColumns(t *testing.T) {
	for _, col := range store.SealedColumns() {
		ad, ok := resealAD(col)
		if !ok {
			t.Errorf("resealAD(%q): no additional data known", col)
			continue
		}
		if got := ad("x"); len(got) == 0 {
			t.Errorf("resealAD(%q)(\"x\") is empty", col)
		}
	}
}
