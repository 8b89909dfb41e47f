package formats

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/internal/zeros"
)

const (
	// diskWindow is how much of the file is read at once: the most Disk
	// holds of it. A multiple of DiskZeroPiece.
	diskWindow = 4 << 20
	// DiskZeroPiece is the granularity of zeros in disk data: a piece of
	// this many bytes (counted from the start of a block) that is all
	// zero is recorded as zeros, not content. 64 KiB is qemu's default
	// qcow2 cluster, so the content of a VHD or VHDX is the content of a
	// qcow2 image of the same disk.
	DiskZeroPiece = 64 << 10
	// diskMinZeroRun is the shortest run of zeros in bytes outside disk data
	// (structures, padding, unused space) recorded as zeros rather than
	// kept verbatim.
	diskMinZeroRun = 64
)

var errDiskShort = errors.New("file shorter than its stated size")

// diskReadAt fills p from src at off.
func diskReadAt(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errDiskShort
	}
	return fmt.Errorf("formats: reading %d bytes at %#x: %w", len(p), off, err)
}

// emitter describes a file to a Builder from its first byte on. pos is how
// far it has got. Verbatim bytes and zeros are held until something else
// is recorded, so neighbouring ranges merge into one op.
type diskEmitter struct {
	src   io.ReaderAt
	b     *Builder
	pos   int64
	buf   []byte // reading diskWindow
	lit   []byte // pending verbatim bytes
	zeros int64  // pending zeros after lit
}

// read returns the next n ≤ diskWindow bytes at e.pos, valid until the next
// call.
func (e *diskEmitter) read(n int64) ([]byte, error) {
	if int64(cap(e.buf)) < n {
		e.buf = make([]byte, max(n, min(2*int64(cap(e.buf)), diskWindow)))
	}
	p := e.buf[:n]
	return p, diskReadAt(e.src, p, e.pos)
}

// raw describes the bytes from e.pos to end as bytes outside disk data:
// runs of at least diskMinZeroRun zeros as zeros, the rest verbatim.
func (e *diskEmitter) raw(end int64) error {
	for e.pos < end {
		p, err := e.read(min(end-e.pos, diskWindow))
		if err != nil {
			return err
		}
		if err := e.write(p); err != nil {
			return err
		}
		e.pos += int64(len(p))
	}
	return nil
}

// data describes the n bytes at e.pos as disk data: each DiskZeroPiece (from
// e.pos) that is all zero as zeros, runs of the others as content.
func (e *diskEmitter) data(n int64) error {
	end := e.pos + n
	for e.pos < end {
		p, err := e.read(min(end-e.pos, diskWindow))
		if err != nil {
			return err
		}
		for i := 0; i < len(p); {
			j := min(i+DiskZeroPiece, len(p))
			if zeros.Is(p[i:j]) {
				e.zeros += int64(j - i)
				i = j
				continue
			}
			for j < len(p) {
				k := min(j+DiskZeroPiece, len(p))
				if zeros.Is(p[j:k]) {
					break
				}
				j = k
			}
			if err := e.flush(); err != nil {
				return err
			}
			if err := e.b.Content(bytes.NewReader(p[i:j]), int64(j-i)); err != nil {
				return fmt.Errorf("formats: data at %#x: %w", e.pos+int64(i), err)
			}
			i = j
		}
		e.pos += int64(len(p))
	}
	return nil
}

// write takes verbatim bytes, splitting off zero runs.
func (e *diskEmitter) write(p []byte) error {
	for len(p) > 0 {
		if z := diskZeroPrefix(p); z > 0 {
			e.zeros += int64(z)
			p = p[z:]
			continue
		}
		// A nonzero byte: the zeros pending before it end here.
		if e.zeros >= diskMinZeroRun {
			if err := e.flush(); err != nil {
				return err
			}
		} else {
			e.lit = append(e.lit, make([]byte, e.zeros)...)
			e.zeros = 0
		}
		n := bytes.IndexByte(p, 0)
		if n < 0 {
			n = len(p)
		}
		e.lit = append(e.lit, p[:n]...)
		p = p[n:]
		if len(e.lit) >= diskWindow {
			if err := e.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush records the pending verbatim bytes and zeros.
func (e *diskEmitter) flush() error {
	if e.zeros > 0 && e.zeros < diskMinZeroRun {
		e.lit = append(e.lit, make([]byte, e.zeros)...)
		e.zeros = 0
	}
	if err := e.b.Verbatim(e.lit); err != nil {
		return err
	}
	e.lit = e.lit[:0]
	if err := e.b.Zero(e.zeros); err != nil {
		return err
	}
	e.zeros = 0
	return nil
}

// zeroPrefix returns how many bytes at the start of p are zero.
func diskZeroPrefix(p []byte) int {
	n := 0
	for len(p)-n >= 32 && zeros.Is(p[n:n+32]) {
		n += 32
	}
	for n < len(p) && p[n] == 0 {
		n++
	}
	return n
}

// Extent is a byte range of a file: Off, N bytes long.
type Extent struct{ Off, N int64 }

// Disk describes a disk image container of size bytes in src from its first
// byte to its last: the data extents (sorted, not overlapping, inside the
// file) as content, except DiskZeroPiece-sized pieces of zeros (counted
// from each extent's start), which are zeros; everything else (headers,
// tables, padding) verbatim, with runs of zeros as zeros. VHD and VHDX
// describe their payload blocks this way.
func (b *Builder) Disk(src io.ReaderAt, size int64, data []Extent) error {
	e := &diskEmitter{src: src, b: b}
	for _, x := range data {
		if err := e.raw(x.Off); err != nil {
			return err
		}
		if err := e.data(x.N); err != nil {
			return err
		}
	}
	if err := e.raw(size); err != nil {
		return err
	}
	return e.flush()
}
