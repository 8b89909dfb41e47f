package delta

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// zeroPrefix returns the number of leading zero bytes of b.
func zeroPrefix(b []byte) int {
	n := 0
	for len(b)-n >= 8 {
		if v := binary.LittleEndian.Uint64(b[n:]); v != 0 {
			return n + bits.TrailingZeros64(v)/8
		}
		n += 8
	}
	for n < len(b) && b[n] == 0 {
		n++
	}
	return n
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	i := 0
	// Skip equal stretches with the vectorized bytes.Equal first.
	const step = 256
	for i+step <= n && bytes.Equal(a[i:i+step], b[i:i+step]) {
		i += step
	}
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns the length of the longest common suffix of a and b.
func commonSuffix(a, b []byte) int {
	la, lb := len(a), len(b)
	n := min(la, lb)
	i := 0
	for i+8 <= n {
		x := binary.LittleEndian.Uint64(a[la-i-8:]) ^ binary.LittleEndian.Uint64(b[lb-i-8:])
		if x != 0 {
			return i + bits.LeadingZeros64(x)/8
		}
		i += 8
	}
	for i < n && a[la-1-i] == b[lb-1-i] {
		i++
	}
	return i
}

// zeroSuffix returns the number of trailing zero bytes of b.
func zeroSuffix(b []byte) int {
	n := 0
	for len(b)-n >= 8 {
		if v := binary.LittleEndian.Uint64(b[len(b)-n-8:]); v != 0 {
			return n + bits.LeadingZeros64(v)/8
		}
		n += 8
	}
	for n < len(b) && b[len(b)-1-n] == 0 {
		n++
	}
	return n
}
