package fleetprov

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"unicode/utf8"
)

// A minimal CBOR (RFC 8949) codec for the fleet provisioning API's /cbor
// topics: requests and answers are maps of text strings, numbers, booleans,
// null, arrays and maps. Indefinite lengths, tags and byte strings are not
// used by the API and are refused.

// maxCBORDepth bounds nesting when decoding.
const maxCBORDepth = 16

// maxCBORInt bounds integers both ways: numbers are float64, as
// encoding/json decodes them, and 2^53 is the largest magnitude below which
// every integer is exact, so what decodes encodes back to the same bytes.
const maxCBORInt = 1 << 53

var errCBOR = errors.New("malformed CBOR")

// decodeCBOR decodes one data item that must be the whole of b.
func decodeCBOR(b []byte) (any, error) {
	d := cborDecoder{b: b}
	v, err := d.item(0)
	if err != nil {
		return nil, err
	}
	if d.i != len(b) {
		return nil, fmt.Errorf("%w: data after the item", errCBOR)
	}
	return v, nil
}

type cborDecoder struct {
	b []byte
	i int
}

func (d *cborDecoder) head() (major byte, arg uint64, err error) {
	if d.i >= len(d.b) {
		return 0, 0, fmt.Errorf("%w: truncated", errCBOR)
	}
	ib := d.b[d.i]
	d.i++
	major, info := ib>>5, ib&0x1f
	if info < 24 {
		return major, uint64(info), nil
	}
	n := 0
	switch info {
	case 24:
		n = 1
	case 25:
		n = 2
	case 26:
		n = 4
	case 27:
		n = 8
	default:
		return 0, 0, fmt.Errorf("%w: indefinite or reserved length", errCBOR)
	}
	if len(d.b)-d.i < n {
		return 0, 0, fmt.Errorf("%w: truncated", errCBOR)
	}
	var buf [8]byte
	copy(buf[8-n:], d.b[d.i:d.i+n])
	d.i += n
	return major, binary.BigEndian.Uint64(buf[:]), nil
}

func (d *cborDecoder) item(depth int) (any, error) {
	if depth > maxCBORDepth {
		return nil, fmt.Errorf("%w: nested too deeply", errCBOR)
	}
	start := d.i
	major, arg, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0:
		if arg > maxCBORInt {
			return nil, fmt.Errorf("%w: integer out of range", errCBOR)
		}
		return float64(arg), nil
	case 1:
		if arg >= maxCBORInt {
			return nil, fmt.Errorf("%w: integer out of range", errCBOR)
		}
		return -1 - float64(arg), nil
	case 3:
		if arg > uint64(len(d.b)-d.i) {
			return nil, fmt.Errorf("%w: truncated", errCBOR)
		}
		s := d.b[d.i : d.i+int(arg)]
		d.i += int(arg)
		if !utf8.Valid(s) {
			return nil, fmt.Errorf("%w: text string is not UTF-8", errCBOR)
		}
		return string(s), nil
	case 4:
		if arg > uint64(len(d.b)-d.i) { // each element takes a byte at least
			return nil, fmt.Errorf("%w: truncated", errCBOR)
		}
		out := make([]any, 0, arg)
		for range arg {
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case 5:
		if arg > uint64(len(d.b)-d.i)/2 {
			return nil, fmt.Errorf("%w: truncated", errCBOR)
		}
		out := make(map[string]any, arg)
		for range arg {
			k, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%w: map key is not a text string", errCBOR)
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out[ks] = v
		}
		return out, nil
	case 7:
		switch {
		case d.b[start]&0x1f == 20:
			return false, nil
		case d.b[start]&0x1f == 21:
			return true, nil
		case d.b[start]&0x1f == 22:
			return nil, nil
		case d.b[start]&0x1f == 25, d.b[start]&0x1f == 26, d.b[start]&0x1f == 27:
			return nil, fmt.Errorf("%w: floating-point numbers are not used", errCBOR)
		}
	}
	return nil, fmt.Errorf("%w: major type %d is not used", errCBOR, major)
}

// encodeCBOR encodes a value made of what encoding/json decodes into
// (map[string]any, []any, string, float64, bool, nil); maps in key order.
func encodeCBOR(v any) ([]byte, error) {
	return appendCBOR(nil, v)
}

func appendHead(b []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(b, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(b, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), arg)
}

func appendCBOR(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0xf6), nil
	case bool:
		if x {
			return append(b, 0xf5), nil
		}
		return append(b, 0xf4), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > maxCBORInt {
			return nil, fmt.Errorf("fleetprov: cbor: %v is not an integer", x)
		}
		if x < 0 {
			return appendHead(b, 1, uint64(-1-x)), nil
		}
		return appendHead(b, 0, uint64(x)), nil
	case string:
		return append(appendHead(b, 3, uint64(len(x))), x...), nil
	case []any:
		b = appendHead(b, 4, uint64(len(x)))
		for _, e := range x {
			var err error
			if b, err = appendCBOR(b, e); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		b = appendHead(b, 5, uint64(len(x)))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			b = append(appendHead(b, 3, uint64(len(k))), k...)
			var err error
			if b, err = appendCBOR(b, x[k]); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("fleetprov: cbor: cannot encode %T", v)
}
