package zlib

import (
	"bytes"
	"testing"
)

// Inputs over 64 KiB keep uint32 positions off+index in the hash heads,
// with off growing from call to call and wrapping around (with a clear) near
// 2^32. Whatever off is, the bytes must be those of a fresh Compressor:
// entries from earlier calls must read as "no match".
func TestPositionEpochs(t *testing.T) {
	big := mixedData(200<<10, 9)
	small := diskImage(40<<10, 10)
	for _, p := range []Params{VMDK, QCOW2, {1, -15, 8, 0}, {9, 31, 9, 0}} {
		wantBig, wantSmall := mustCompress(t, p, big), mustCompress(t, p, small)
		c, err := NewCompressor(p)
		if err != nil {
			t.Fatal(err)
		}
		// off is a multiple of 64 Ki (so positions and indexes agree modulo
		// the window size): the last three force the wrap-around.
		for _, next := range []uint64{0, 1 << 31, 1<<32 - 5<<16, 1<<32 - 3<<16, 1<<32 - 1<<16, 1<<32 - 1} {
			if next < c.d.next && c.d.head32 != nil {
				// Stored positions only grow (or the heads are cleared).
				clear(c.d.head32[:])
			}
			c.d.next = next
			for i, in := range [][]byte{big, big, small, big} {
				want := wantBig
				if len(in) == len(small) {
					want = wantSmall
				}
				got, err := c.Compress(nil, in)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%v: next=%#x call %d: bytes differ from a fresh Compressor's at %d", p, next, i, firstDiff(got, want))
				}
			}
		}
		c.Close()
	}
}

// Compress writes straight into a dst that can hold deflateBound bytes and
// otherwise appends to dst[:0]; the bytes are the same, and dst's array is
// used whenever the result fits.
func TestCompressDst(t *testing.T) {
	data := diskImage(64<<10, 11)
	c, err := NewCompressor(VMDK)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := mustCompress(t, VMDK, data)
	for _, capacity := range []int{0, 10, len(want), c.bound(len(data)) + 64, 1 << 20} {
		dst := make([]byte, 5, max(capacity, 5))
		got, err := c.Compress(dst, data)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("cap %d: err %v, equal %v", capacity, err, bytes.Equal(got, want))
		}
		if fits := cap(dst) >= len(want); fits != (&got[0] == &dst[:1][0]) {
			t.Errorf("cap %d: dst reused = %v, want %v", capacity, !fits, fits)
		}
	}
	// dst may be src's own memory.
	buf := make([]byte, len(data), 4*len(data))
	copy(buf, data)
	if got, err := c.Compress(buf[:0], buf); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("dst overlapping src: err %v, equal %v", err, bytes.Equal(got, want))
	}
}
