// Package gnugzip re-creates GNU gzip's compressed output byte for byte.
//
// GNU gzip does not use zlib. It carries its own deflate.c and trees.c
// (Jean-loup Gailly's 1992-93 originals, the ancestors of zlib's), and its
// deflate streams differ from zlib's at every level, usually from the first
// byte. A file made with `gzip -6 -n` (a PXE initramfs, a release tarball)
// can be stored by its decompressed content only if the compressed bytes
// can be made again; this package makes them. The reference is GNU gzip
// 1.12 (Debian 12) at levels 1 to 9; --rsyncable is not reproduced.
//
// This package produces the raw deflate body (RFC 1951) of one gzip member.
// The 10-byte header (flags, mtime, XFL 4 for -1, 2 for -9, else 0, OS 3)
// and the 8-byte trailer (CRC-32, size) are the caller's.
//
// The implementation follows gzip's algorithm rule for rule; read it next
// to gzip's deflate.c and trees.c:
//
//   - deflate.go: the 64 KiB window (2*WSIZE) and how input enters it
//     (lm_init reads 2*WSIZE bytes; fill_window tops the window up to its
//     end whenever fewer than MIN_LOOKAHEAD = 262 bytes are left ahead,
//     first sliding the upper half down once strstart has reached
//     WSIZE+MAX_DIST = 65274), the hash chains (HASH_BITS 15, H_SHIFT 5,
//     INSERT_STRING), longest_match with the good, lazy, nice and chain
//     limits of each level, deflate_fast for levels 1-3 (the strings inside
//     a match are hashed only if it is at most "lazy" bytes long) and the
//     lazy deflate() for levels 4-9 (TOO_FAR 4096, match_available);
//   - trees.go: ct_tally's symbol buffer (LIT_BUFSIZE 0x8000: a block ends
//     at 32767 symbols) and its early end of block (every 4096 symbols at
//     levels 3-9, if under half the symbols are matches and an estimate of
//     the compressed size is under half the input), flush_block's choice
//     of a stored, static or dynamic block (a block whose start has slid
//     out of the window cannot be stored), and build_tree, gen_bitlen and
//     gen_codes with gzip's heap tie-breaking by subtree depth, and the
//     code-length run-length coding.
//
// Near the end of the input, gzip's longest_match compares bytes past the
// input's end, and the output depends on them: when fill_window meets the
// end it zeroes the two bytes after it (gzip 1.12 does; "Don't let garbage
// pollute the dictionary"), and beyond those the window still holds what
// it held before (zeros in a new process, else the data the last slide
// copied down). This package keeps its window exactly as gzip does when it
// reads a regular file, where every read returns all it asks for unless
// the input ends, so such matches come out the same. Two cases are not
// covered:
//
//   - gzip reading a pipe gets short reads; they change which stale bytes
//     lie past the end of the input (never the data before it), so in rare
//     cases gzip may pick a different, equally long match for the last few
//     bytes of its input than it would reading a file;
//   - one gzip process compressing several files (`gzip a b`) starts each
//     file after the first with the previous file's window contents.
//
// flush_block's special case that turns an incompressible single-block
// file into a "stored file" is dead code in gzip (seekable() is the
// constant 0 in gzip.h): gzip's output to a regular file and to a pipe are
// the same, and this package never produces that case.
package gnugzip

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package.
var (
	ErrLevel  = errors.New("gnugzip: level must be 1..9")
	ErrClosed = errors.New("gnugzip: writer closed")
)

// Compress appends to dst the raw deflate body that `gzip -level` writes
// for src, and returns the extended slice. It panics if level is not 1..9.
func Compress(dst, src []byte, level int) []byte {
	if level < 1 || level > 9 {
		panic(fmt.Sprintf("gnugzip: Compress level %d: %v", level, ErrLevel))
	}
	c := newCompressor(level)
	c.bw.out = dst
	c.in = src
	c.closed = true
	c.deflate()
	return c.bw.out
}

// inBuf is how much input a Writer buffers before compressing: a
// fill_window call asks for at most the whole window.
const inBuf = windowSize

// directStep is how much of a large Write a Writer compresses at a time.
const directStep = 256 << 10

// outFlush is how much compressed output a Writer collects before writing
// it on.
const outFlush = 64 << 10

// Writer streams the raw deflate body that `gzip -level` writes for the
// bytes written to it. Its memory use is bounded (under 1 MiB) whatever the
// input size and the sizes of the writes. The output does not depend on the
// sizes of the writes, and is complete only after Close.
type Writer struct {
	c     *compressor
	w     io.Writer
	buf   []byte // input not yet read into the window, at most inBuf bytes
	err   error
	level int
	done  bool
}

// NewWriter returns a Writer compressing at level (1..9) to w.
func NewWriter(w io.Writer, level int) (*Writer, error) {
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("gnugzip: level %d: %w", level, ErrLevel)
	}
	z := &Writer{c: newCompressor(level), w: w, level: level, buf: make([]byte, 0, inBuf)}
	return z, nil
}

// Reset discards z's state and makes it compress a new stream to w at the
// same level, as a fresh gzip process would.
func (z *Writer) Reset(w io.Writer) {
	z.c.reset(z.level)
	z.w = w
	z.buf = z.buf[:0]
	z.err = nil
	z.done = false
}

// Write compresses p.
func (z *Writer) Write(p []byte) (int, error) {
	if z.done {
		return 0, ErrClosed
	}
	if z.err != nil {
		return 0, z.err
	}
	n := len(p)
	for len(p) > 0 {
		if len(z.buf) == 0 && len(p) >= inBuf {
			// Compress straight from p, a step at a time so that the
			// output collected stays bounded. A step of at least inBuf
			// bytes always makes progress: no read asks for more.
			step := min(len(p), directStep)
			z.c.in = p[:step]
			z.c.deflate()
			p = p[step-len(z.c.in):]
			z.c.in = nil
		} else {
			k := min(len(p), inBuf-len(z.buf))
			z.buf = append(z.buf, p[:k]...)
			p = p[k:]
			if len(z.buf) == inBuf {
				z.c.in = z.buf
				z.c.deflate()
				rest := copy(z.buf, z.c.in)
				z.buf = z.buf[:rest]
				z.c.in = nil
			}
		}
		if err := z.flushOut(false); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// Close compresses what is left, ends the deflate stream and writes it
// out. It does not close the underlying writer.
func (z *Writer) Close() error {
	if z.done {
		return z.err
	}
	z.done = true
	if z.err != nil {
		return z.err
	}
	z.c.in = z.buf
	z.c.closed = true
	z.c.deflate()
	z.c.in = nil
	z.buf = z.buf[:0]
	return z.flushOut(true)
}

// flushOut writes the compressed bytes collected so far, once there are
// enough of them or at the end.
func (z *Writer) flushOut(all bool) error {
	if z.err != nil {
		return z.err
	}
	out := z.c.bw.out
	if len(out) == 0 || (!all && len(out) < outFlush) {
		return nil
	}
	if _, err := z.w.Write(out); err != nil {
		z.err = fmt.Errorf("gnugzip: write: %w", err)
		return z.err
	}
	z.c.bw.out = out[:0]
	return nil
}
