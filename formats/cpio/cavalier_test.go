// Cross-check against github.com/cavaliergopher/cpio, an independent reader.

package cpio

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	ccpio "github.com/cavaliergopher/cpio"
)

// TestCavalier reads GNU cpio's archives with github.com/cavaliergopher/cpio
// too: the same entries, modes, sizes and data.
func TestCavalier(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	makeTree(t, dir)
	for _, opts := range [][]string{{"-H", "newc"}, {"-H", "crc"}} {
		file := gnuCPIO(t, dir, opts...)
		ms, err := Members(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		r := ccpio.NewReader(bytes.NewReader(file))
		for i := 0; ; i++ {
			h, err := r.Next()
			if err == io.EOF {
				if i != len(ms) {
					t.Fatalf("%v: cavaliergopher lists %d entries, Members %d", opts, i, len(ms))
				}
				break
			}
			if err != nil {
				t.Fatalf("%v: cavaliergopher: entry %d: %v", opts, i, err)
			}
			if i >= len(ms) {
				t.Fatalf("%v: cavaliergopher lists more than the %d entries of Members", opts, len(ms))
			}
			m := ms[i]
			data, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if h.Linkname != "" { // cavaliergopher gives a symlink's target so
				data = []byte(h.Linkname)
			}
			if h.Name != m.Name || uint32(h.Mode) != m.Mode || !bytes.Equal(data, file[m.Offset:m.Offset+m.Size]) {
				t.Errorf("%v: entry %d: cavaliergopher %q mode %o, %d bytes; Members %+v", opts, i, h.Name, h.Mode, len(data), m)
			}
		}
	}
}
