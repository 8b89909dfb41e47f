package iso9660

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats"
)

// minZeroRun is the shortest run of zeros outside file extents recorded as
// a zero op rather than verbatim: a block.
const minZeroRun = blockSize

// rawChunk is how much of a verbatim range is read at once.
const rawChunk = 1 << 20

// Split describes the ISO 9660 image in src (size bytes) to b from its
// first byte to its last, in order: each file extent Files lists as a
// member (Builder.Member: a nested format, such as the cpio rootfs or the
// FAT efiboot.img of a live ISO, else content), everything else verbatim,
// with runs of zeros of a block or more, and the zeros padding a file
// extent to its block, as zeros. The boot catalog, though a file in the
// tree, stays verbatim. An extent that another contains is described
// once, with the containing one; the part of an extent past the one
// before it, which it overlaps, is content.
//
// The whole layout is read and checked before anything is recorded, so an
// error about the image's structure leaves b untouched; an error reading
// src afterwards leaves b partly written, to be discarded.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	l, err := readLayout(src, size)
	if err != nil {
		return err
	}
	w := &writer{b: b, src: src}
	var pos int64
	for _, f := range l.files {
		end := f.Offset + f.Size
		if end <= pos || f.Offset == l.catalog && f.Size <= maxCatalogEntries*entrySize {
			continue
		}
		if f.Offset < pos {
			if err := w.flush(); err != nil {
				return err
			}
			if err := b.Content(io.NewSectionReader(src, pos, end-pos), end-pos); err != nil {
				return fmt.Errorf("iso9660: %s, from %#x: %w", f.Path, pos, err)
			}
			pos = end
			continue
		}
		if err := w.verbatim(pos, f.Offset); err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		if err := b.Member(io.NewSectionReader(src, f.Offset, f.Size), f.Size); err != nil {
			return fmt.Errorf("iso9660: %s at %#x: %w", f.Path, f.Offset, err)
		}
		pos = end
		n, err := w.padding(pos, size)
		if err != nil {
			return err
		}
		pos += n
	}
	if err := w.verbatim(pos, size); err != nil {
		return err
	}
	return w.flush()
}

// padding records the zeros from off, the end of a file extent, to the
// end of its block as zeros, however few, and returns their number; 0,
// recording nothing, if they are not all zeros.
func (w *writer) padding(off, size int64) (int64, error) {
	n := min((off+blockSize-1)/blockSize*blockSize, size) - off
	if n == 0 {
		return 0, nil
	}
	var p [blockSize]byte
	if m, err := w.src.ReadAt(p[:n], off); int64(m) < n {
		if err == nil || err == io.EOF {
			err = errShort
		}
		return 0, fmt.Errorf("iso9660: reading %#x: %w", off, err)
	}
	if !allZero(p[:n]) {
		return 0, nil
	}
	return n, w.b.Zero(n)
}

// writer records verbatim ranges to a Builder, turning runs of at least
// minZeroRun zeros into zero ops. Verbatim bytes are held until the next
// op, so ranges that follow each other merge.
type writer struct {
	b     *formats.Builder
	src   io.ReaderAt
	buf   []byte // reading buffer
	lit   []byte // pending verbatim bytes
	zeros int64  // pending zeros after lit
}

// verbatim records the image's bytes [start, end).
func (w *writer) verbatim(start, end int64) error {
	for start < end {
		n := int(min(end-start, rawChunk))
		if cap(w.buf) < n {
			w.buf = make([]byte, n)
		}
		p := w.buf[:n]
		if m, err := w.src.ReadAt(p, start); m < n {
			if err == nil || err == io.EOF {
				err = errShort
			}
			return fmt.Errorf("iso9660: reading %#x: %w", start, err)
		}
		if err := w.write(p); err != nil {
			return err
		}
		start += int64(n)
	}
	return nil
}

// write takes verbatim bytes, splitting off zero runs.
func (w *writer) write(p []byte) error {
	for len(p) > 0 {
		if z := zeroPrefix(p); z > 0 {
			w.zeros += int64(z)
			p = p[z:]
			continue
		}
		// A nonzero byte: the zeros pending before it end here.
		if w.zeros >= minZeroRun {
			if err := w.flush(); err != nil {
				return err
			}
		} else {
			w.lit = append(w.lit, make([]byte, w.zeros)...)
			w.zeros = 0
		}
		n := bytes.IndexByte(p, 0)
		if n < 0 {
			n = len(p)
		}
		w.lit = append(w.lit, p[:n]...)
		p = p[n:]
		if len(w.lit) >= rawChunk {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush records the pending verbatim bytes and zeros.
func (w *writer) flush() error {
	if w.zeros < minZeroRun {
		w.lit = append(w.lit, make([]byte, w.zeros)...)
		w.zeros = 0
	}
	if err := w.b.Verbatim(w.lit); err != nil {
		return err
	}
	w.lit = w.lit[:0]
	if err := w.b.Zero(w.zeros); err != nil {
		return err
	}
	w.zeros = 0
	return nil
}

// zeroPrefix returns how many bytes p starts with are zero.
func zeroPrefix(p []byte) int {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) != 0 {
			break
		}
	}
	for ; i < len(p) && p[i] == 0; i++ {
	}
	return i
}
