// Package zlib re-creates zlib's deflate output byte for byte.
//
// Go's compress/flate (and klauspost/compress/flate) produce valid but
// different deflate streams than zlib. Release artifacts written by qemu
// (qcow2 compressed clusters, streamOptimized VMDK grains) were made with
// zlib, so regenerating them bit for bit needs zlib's exact match finder,
// lazy evaluation and block splitting. Compressor is a native Go
// implementation of zlib 1.2.12/1.2.13's deflate (the version Debian 12's
// qemu and python link) that reproduces its output for every level 0..9,
// windowBits 8..15 with the raw, zlib and gzip wrappers, memLevel 1..9 and
// the default, filtered, Huffman-only and RLE strategies. Z_FIXED is
// refused.
//
// The implementation follows zlib's documented algorithm piece by piece:
//   - deflate.go: hash chains (insert/update rules), longest_match with the
//     good/lazy/nice/chain limits of each level, deflate_fast (levels 1-3),
//     deflate_slow (4-9), deflate_rle, deflate_huff and deflate_stored, the
//     sliding window's bookkeeping and the symbol buffer of
//     lit_bufsize = 1<<(memLevel+6) entries whose filling ends a block;
//   - trees.go: per-block Huffman trees (build_tree, gen_bitlen, gen_codes
//     with zlib's heap tie-breaking), the code-length run-length coding and
//     the stored/static/dynamic block choice;
//   - zlib.go: parameters, the zlib (RFC 1950) and gzip (RFC 1952)
//     wrappers.
//
// Compress matches zlib's one-shot deflate (deflateInit2, one
// deflate(Z_FINISH) with a deflateBound-sized output buffer, as compress2()
// and qemu do); only level 0 depends on that buffer size.
//
// Speed: on 64 KiB pieces, per core, about C zlib's for VMDK grains and
// faster for qcow2 clusters, whose 4 KiB window makes C zlib slide its
// tables every 4 KiB (see bench_test.go; ZLIB_SPEED=1 go test -run Speed
// measures against the system zlib). The chain walk uses unsafe 2- and
// 8-byte loads; walkChain documents why they stay inside the input.
//
// The tests compare Compress with the system zlib (python3's zlib module
// and libz.so.1 through ctypes) and with zlib 1.2.11 as transpiled to Go by
// modernc.org/z (ref_test.go), for every parameter combination.
//
// Inflate is zlib's own inflate, transpiled to Go by modernc.org/z, so that
// it accepts exactly what zlib accepts.
package zlib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"sync"
	"unsafe"
)

// Params are deflateInit2's parameters.
//
// WindowBits < 0 selects raw deflate (|WindowBits| = log2 of the window),
// 8..15 the zlib wrapper (RFC 1950) and 16+8..16+15 the gzip wrapper
// (RFC 1952), exactly as for deflateInit2/inflateInit2. For Inflate,
// 0 (zlib wrapper, window from header) and 32+8..32+15 (zlib or gzip,
// auto-detected) are accepted as well, as inflateInit2 does.
type Params struct {
	Level, WindowBits, MemLevel, Strategy int
}

var (
	// QCOW2 is how qemu writes compressed qcow2 clusters:
	// deflateInit2(6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY).
	QCOW2 = Params{Level: 6, WindowBits: -12, MemLevel: 9, Strategy: 0}
	// VMDK is zlib's compress() (level 6, windowBits 15, memLevel 8), as
	// qemu writes streamOptimized VMDK grains.
	VMDK = Params{Level: 6, WindowBits: 15, MemLevel: 8, Strategy: 0}
)

func (p Params) String() string {
	return fmt.Sprintf("level=%d windowBits=%d memLevel=%d strategy=%d", p.Level, p.WindowBits, p.MemLevel, p.Strategy)
}

// Errors returned by this package. Errors from zlib wrap one of these.
var (
	ErrClosed   = errors.New("zlib: compressor closed")
	ErrParams   = errors.New("zlib: invalid parameters")
	ErrData     = errors.New("zlib: invalid compressed data")
	ErrTooLarge = errors.New("zlib: decompressed output exceeds limit")
	ErrInternal = errors.New("zlib: internal error")
)

// maxInput bounds one Compress call, as zlib's 32-bit avail_in does for
// one deflate call.
const maxInput = 1 << 31

// Wrappers.
const (
	wrapRaw  = 0
	wrapZlib = 1
	wrapGzip = 2
)

// deflaters pools deflater states by windowBits (9..15) and memLevel
// (1..9), the parameters their table sizes depend on.
var deflaters [16][10]sync.Pool

// Compressor compresses independent buffers with fixed Params, reusing its
// state (hash tables, symbol buffer, output buffer) from call to call. Not
// safe for concurrent use; make one per goroutine.
type Compressor struct {
	p     Params
	wrap  int
	level int
	d     *deflater
}

// NewCompressor validates p as deflateInit2 does and sets up a Compressor.
// Its state takes 4<<(memLevel+6) bytes for the symbol buffer and, for
// levels 1..9 except with strategies Huffman-only and RLE, 192 KiB of hash
// heads and chain links, 256 KiB more once an input exceeds 64 KiB (QCOW2
// and VMDK for 64 KiB clusters: 320 and 256 KiB), plus an output buffer
// that grows to the largest output made into a too small dst. Close hands
// the state on to the next NewCompressor with the same windowBits and
// memLevel.
//
// Strategy Z_FIXED (4) is rejected: this package does not implement it.
func NewCompressor(p Params) (*Compressor, error) {
	level, wbits, wrap := p.Level, p.WindowBits, wrapZlib
	if level == -1 { // Z_DEFAULT_COMPRESSION
		level = 6
	}
	if wbits < 0 {
		wrap = wrapRaw
		wbits = -wbits
	} else if wbits > 15 {
		wrap = wrapGzip
		wbits -= 16
	}
	if p.MemLevel < 1 || p.MemLevel > 9 || wbits < 8 || wbits > 15 || level < 0 || level > 9 ||
		p.Strategy < 0 || p.Strategy > zFixed || wbits == 8 && wrap != wrapZlib {
		return nil, fmt.Errorf("%w: deflateInit2 %v", ErrParams, p)
	}
	if p.Strategy == zFixed {
		return nil, fmt.Errorf("%w: strategy Z_FIXED is not supported", ErrParams)
	}
	if wbits == 8 {
		wbits = 9 // as zlib does
	}
	var d *deflater
	if v := deflaters[wbits][p.MemLevel].Get(); v != nil {
		d = v.(*deflater)
	} else {
		d = newDeflater(wbits, p.MemLevel)
	}
	d.setLevel(level, p.Strategy)
	return &Compressor{p: p, wrap: wrap, level: level, d: d}, nil
}

// Params returns the parameters c was created with.
func (c *Compressor) Params() Params { return c.p }

// bound is zlib 1.2.13's deflateBound for an n-byte input. zlib's one-shot
// deflate fails when its output does not fit in this.
func (c *Compressor) bound(n int) int {
	wraplen := [...]int{wrapRaw: 0, wrapZlib: 6, wrapGzip: 18}[c.wrap]
	if c.d.wbits != 15 || c.d.memLevel != 8 {
		if c.d.wbits <= c.d.memLevel+7 {
			return n + n>>3 + n>>8 + n>>9 + 4 + wraplen
		}
		return n + n>>5 + n>>7 + n>>11 + 7 + wraplen
	}
	return n + n>>12 + n>>14 + n>>25 + 13 - 6 + wraplen
}

// Compress compresses src as one complete stream and returns it in
// dst[:0] (dst's capacity is reused if it holds deflateBound(len(src))
// bytes; otherwise the result is copied into dst[:0]). The bytes are those
// of zlib's one-shot deflate(Z_FINISH) with an output buffer of
// deflateBound bytes, which is what compress2() and qemu's qcow2/vmdk
// compressors do. (qemu gives deflate cluster_size-1 bytes of output space
// and stores the cluster uncompressed if that is not enough: compress,
// then compare the length.) src may be at most 2 GiB long; dst may share
// memory with src.
//
// Where zlib's one-shot deflate fails because the output exceeds
// deflateBound (level 0 on inputs of a few bytes with non-default
// windowBits/memLevel), Compress fails too, with ErrInternal.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	d := c.d
	if d == nil {
		return dst[:0], ErrClosed
	}
	if uint64(len(src)) > maxInput {
		return dst[:0], fmt.Errorf("%w: input of %d bytes exceeds one deflate call", ErrParams, len(src))
	}
	bound := c.bound(len(src))
	direct := cap(dst) >= bound+64 && !overlap(dst[:cap(dst)], src)
	w := &d.bw
	if direct {
		w.out = dst[:cap(dst)]
	} else {
		if len(d.scratch) < bound+64 {
			d.scratch = make([]byte, bound+64)
		}
		w.out = d.scratch
	}
	w.n, w.bits, w.nbits = 0, 0, 0
	w.ensure(32)
	switch c.wrap {
	case wrapZlib:
		header := uint32(8+(d.wbits-8)<<4) << 8 // CM 8, CINFO
		switch {
		case d.strategy >= zHuffmanOnly || c.level < 2:
		case c.level < 6:
			header |= 1 << 6
		case c.level == 6:
			header |= 2 << 6
		default:
			header |= 3 << 6
		}
		header += 31 - header%31
		binary.BigEndian.PutUint16(w.out, uint16(header))
		w.n = 2
	case wrapGzip:
		xfl := byte(0)
		if c.level == 9 {
			xfl = 2
		} else if d.strategy >= zHuffmanOnly || c.level < 2 {
			xfl = 4
		}
		copy(w.out, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3}) // OS_CODE 3: Unix
		w.n = 10
	}
	d.reset(len(src))
	switch {
	case c.level == 0:
		d.deflateStored(src)
	case d.strategy == zHuffmanOnly:
		d.deflateHuff(src)
	case d.strategy == zRLE:
		d.deflateRLE(src)
	case c.level <= 3 && len(src) <= 1<<16:
		deflateFast(d, d.head16, src)
	case c.level <= 3:
		deflateFast(d, d.head32, src)
	case len(src) <= 1<<16:
		deflateSlow(d, d.head16, src)
	default:
		deflateSlow(d, d.head32, src)
	}
	w.ensure(8)
	switch c.wrap {
	case wrapZlib:
		binary.BigEndian.PutUint32(w.out[w.n:], adler32.Checksum(src))
		w.n += 4
	case wrapGzip:
		binary.LittleEndian.PutUint32(w.out[w.n:], crc32.ChecksumIEEE(src))
		binary.LittleEndian.PutUint32(w.out[w.n+4:], uint32(len(src)))
		w.n += 8
	}
	out := w.out[:w.n]
	if !direct {
		d.scratch = w.out
		out = append(dst[:0], out...)
	}
	w.out = nil
	if len(out) > bound {
		return dst[:0], fmt.Errorf("%w: deflate output of %d bytes exceeds deflateBound %d, where zlib's one-shot deflate fails", ErrInternal, len(out), bound)
	}
	return out, nil
}

// overlap tells whether a and b share memory.
func overlap(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

// Close releases c's state for reuse. Using c afterwards returns ErrClosed.
func (c *Compressor) Close() error {
	if c.d == nil {
		return nil
	}
	deflaters[c.d.wbits][c.d.memLevel].Put(c.d)
	c.d = nil
	return nil
}
