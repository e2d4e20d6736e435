package fleetprov

import (
	"reflect"
	"testing"
)

func TestCBORRoundTrip(t *testing.T) {
	tests := []any{
		map[string]any{},
		map[string]any{"certificateOwnershipToken": "tok", "parameters": map[string]any{"SerialNumber": "1"}},
		map[string]any{"statusCode": float64(400), "errorCode": "InvalidParameters", "n": float64(-70000), "ok": true, "none": nil, "list": []any{"a", float64(1 << 40)}},
	}
	for _, v := range tests {
		b, err := encodeCBOR(v)
		if err != nil {
			t.Fatalf("encodeCBOR(%v): %v", v, err)
		}
		got, err := decodeCBOR(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("decodeCBOR(encodeCBOR(%v)) = %v, %v", v, got, err)
		}
	}
	// RFC 8949 Appendix A: {"a": 1, "b": [2, 3]}.
	got, err := decodeCBOR([]byte{0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03})
	if want := map[string]any{"a": float64(1), "b": []any{float64(2), float64(3)}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeCBOR(RFC example) = %v, %v; want %v", got, err, want)
	}
	for _, bad := range [][]byte{{}, {0xa1, 0x01, 0x01}, {0x7f}, {0x62, 0xff, 0xfe}, {0xa1, 0x61}, {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0xf9, 0, 0}, {0x01, 0x02},
		{0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0x01}, {0x3b, 0x00, 0x20, 0, 0, 0, 0, 0, 0x00}, {0x1b, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30}} {
		if v, err := decodeCBOR(bad); err == nil {
			t.Errorf("decodeCBOR(% x) = %v, want an error", bad, v)
		}
	}
}

// FuzzCBOR: decoding never panics; what decodes encodes and decodes again
// to the same value.
func FuzzCBOR(f *testing.F) {
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03})
	f.Add([]byte{0xa1, 0x6a, 'p', 'a', 'r', 'a', 'm', 'e', 't', 'e', 'r', 's', 0xa1, 0x61, 'k', 0x61, 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeCBOR(b)
		if err != nil {
			return
		}
		out, err := encodeCBOR(v)
		if err != nil {
			t.Fatalf("encodeCBOR(%v): %v", v, err)
		}
		again, err := decodeCBOR(out)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("round trip of %v = %v, %v", v, again, err)
		}
	})
}
