// Package zlib re-creates zlib's deflate output byte for byte.
//
// Go's compress/flate (and klauspost/compress/flate) produce valid but
// different deflate streams than zlib. Release artifacts written by qemu
// (qcow2 compressed clusters, streamOptimized VMDK grains) were made with
// zlib, so regenerating them bit for bit needs zlib's exact match finder,
// lazy evaluation and block splitting. This package drives zlib itself, as
// transpiled to pure Go by modernc.org/z (no cgo), with its state and
// buffers in libc-allocated memory outside the Go heap.
//
// Version note: modernc.org/z v1.7.3, the newest version the module proxy
// serves, carries zlib 1.2.11, while Debian 12 (qemu, python) links zlib
// 1.2.13. For levels 1..9 with strategies other than Z_FIXED, the deflate
// changes between the two do not change the output: the 1.2.12 sym_buf rework
// (CVE-2018-25032) flushes blocks at the same symbol count, and the 1.2.12/13
// block-type and deflateBound fixes concern Z_FIXED and level 0. The tests
// compare against the system zlib and against qemu-img output. Where 1.2.11
// differs, this package refuses (Z_FIXED) or checks its own output
// (parameter sets that could reach CVE-2018-25032; see needsCheck). Level 0
// output depends on the output buffer zlib is given; Compress matches
// compress2(), i.e. a deflateBound-sized buffer.
package zlib

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	z "modernc.org/z/lib"
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

const (
	zFixed      = z.Z_FIXED
	zStreamSize = int32(unsafe.Sizeof(z.Z_stream{}))
	// maxInput bounds what one deflate call is given: avail_in and
	// avail_out (deflateBound of the input) are 32-bit uInts.
	maxInput = 1 << 31
)

// zlibVersion is the version string handed to deflateInit2_/inflateInit2_,
// which only compare its first character with their own. C memory, never
// freed.
var zlibVersion = func() uintptr {
	p, err := libc.CString(z.ZLIB_VERSION)
	if err != nil {
		panic(err)
	}
	return p
}()

// ptr turns an address of C (non-Go) memory into an unsafe.Pointer without
// the uintptr->unsafe.Pointer conversion that vet flags; all such memory
// comes from libc's mmap-backed allocator and is never moved.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// cbytes views n bytes of C memory at p as a Go slice.
func cbytes(p uintptr, n int) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(ptr(p)), n)
}

func stream(p uintptr) *z.Z_stream { return (*z.Z_stream)(ptr(p)) }

// cmem is the C-side state shared by Compressor and the inflaters: a libc
// thread context, a z_stream and input/output buffers, all outside the Go
// heap so transpiled zlib can hold raw addresses into them safely (zlib keeps
// strm and window addresses across calls; Go stacks move).
type cmem struct {
	tls           *libc.TLS
	strm          uintptr
	in, out       uintptr
	inCap, outCap int
}

func newCmem() (*cmem, error) {
	tls := libc.NewTLS()
	strm := libc.Xcalloc(tls, 1, types.Size_t(zStreamSize))
	if strm == 0 {
		tls.Close()
		return nil, fmt.Errorf("%w: out of memory", ErrInternal)
	}
	return &cmem{tls: tls, strm: strm}, nil
}

// reserve makes sure the C buffers hold at least in and out bytes.
// Buffers only grow (rounded up to 4 KiB) and are reused across calls.
func (m *cmem) reserve(in, out int) error {
	grow := func(p *uintptr, capp *int, n int) error {
		if n <= *capp {
			return nil
		}
		n = (n + 0xfff) &^ 0xfff
		if *p != 0 {
			libc.Xfree(m.tls, *p)
			*p, *capp = 0, 0
		}
		q := libc.Xmalloc(m.tls, types.Size_t(n))
		if q == 0 {
			return fmt.Errorf("%w: out of memory (%d bytes)", ErrInternal, n)
		}
		*p, *capp = q, n
		return nil
	}
	if err := grow(&m.in, &m.inCap, in); err != nil {
		return err
	}
	return grow(&m.out, &m.outCap, out)
}

// free releases everything; end is deflateEnd or inflateEnd, called only if
// the stream was initialized.
func (m *cmem) free(end func(*libc.TLS, uintptr) int32) {
	if m.tls == nil {
		return
	}
	if end != nil && stream(m.strm).Fstate != 0 {
		end(m.tls, m.strm)
	}
	for _, p := range []uintptr{m.strm, m.in, m.out} {
		if p != 0 {
			libc.Xfree(m.tls, p)
		}
	}
	m.tls.Close()
	*m = cmem{}
}

func zerr(m *cmem, op string, ret int32) error {
	var msg string
	if m != nil && m.strm != 0 {
		if p := stream(m.strm).Fmsg; p != 0 {
			msg = libc.GoString(p)
		}
	}
	base := ErrInternal
	switch ret {
	case z.Z_STREAM_ERROR, z.Z_VERSION_ERROR:
		base = ErrParams
	case z.Z_DATA_ERROR, z.Z_NEED_DICT:
		base = ErrData
	}
	if msg == "" {
		msg = fmt.Sprintf("return code %d", ret)
	}
	return fmt.Errorf("%w: %s: %s", base, op, msg)
}

// Compressor compresses independent buffers with fixed Params, reusing its
// zlib state (deflateReset) so per-call setup is cheap. Not safe for
// concurrent use; make one per goroutine. Compressors in different
// goroutines run in parallel (each owns its libc context and zlib state).
type Compressor struct {
	p Params
	m *cmem
	// cleanup frees the C memory if the Compressor is dropped unclosed.
	cleanup runtime.Cleanup
}

func deflateEnd(tls *libc.TLS, strm uintptr) int32 { return z.XdeflateEnd(tls, strm) }
func inflateEnd(tls *libc.TLS, strm uintptr) int32 { return z.XinflateEnd(tls, strm) }

// NewCompressor sets up a zlib deflate stream with p (deflateInit2).
// It holds zlib's state, about (1<<(|windowBits|+2)) + (1<<(memLevel+9))
// bytes (QCOW2 277 KiB, VMDK 261 KiB), plus C-side input and output buffers
// that grow to the largest input seen (140 KiB for 64 KiB clusters), all
// outside the Go heap; Close releases them (so does the garbage collector,
// eventually, for a Compressor dropped unclosed).
//
// Strategy Z_FIXED (4) is rejected: zlib 1.2.11 picks block types for it
// differently from 1.2.12+ (and can exceed deflateBound), so its output
// would not match current zlib.
func NewCompressor(p Params) (*Compressor, error) {
	if p.Strategy == zFixed {
		return nil, fmt.Errorf("%w: strategy Z_FIXED is not byte-exact with zlib >= 1.2.12 in the embedded zlib %s", ErrParams, z.ZLIB_VERSION)
	}
	m, err := newCmem()
	if err != nil {
		return nil, err
	}
	ret := z.XdeflateInit2_(m.tls, m.strm, int32(p.Level), z.Z_DEFLATED, int32(p.WindowBits),
		int32(p.MemLevel), int32(p.Strategy), zlibVersion, zStreamSize)
	if ret != z.Z_OK {
		err := zerr(m, "deflateInit2 "+p.String(), ret)
		m.free(nil)
		return nil, err
	}
	c := &Compressor{p: p, m: m}
	c.cleanup = runtime.AddCleanup(c, func(m *cmem) { m.free(deflateEnd) }, m)
	return c, nil
}

// Params returns the parameters c was created with.
func (c *Compressor) Params() Params { return c.p }

// Compress compresses src as one complete stream and returns it in
// dst[:0] (dst's capacity is reused, its contents are overwritten).
// It is one deflate(Z_FINISH) call over all of src with an output buffer of
// deflateBound bytes, followed by deflateReset: exactly what zlib's
// compress2() and qemu's qcow2/vmdk compressors do, so the bytes match
// theirs. (qemu gives deflate cluster_size-1 bytes of output space and
// stores the cluster uncompressed if that is not enough: compress, then
// compare the length.) src may be at most 2 GiB long.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	m := c.m
	if m == nil || m.tls == nil {
		return dst[:0], ErrClosed
	}
	// m must not be freed by c's cleanup while zlib works on it.
	defer runtime.KeepAlive(c)
	if uint64(len(src)) > maxInput {
		return dst[:0], fmt.Errorf("%w: input of %d bytes exceeds one deflate call", ErrParams, len(src))
	}
	bound := int(z.XdeflateBound(m.tls, m.strm, z.ULong(len(src))))
	if err := m.reserve(len(src), bound); err != nil {
		return dst[:0], err
	}
	copy(cbytes(m.in, len(src)), src)
	s := stream(m.strm)
	s.Fnext_in = m.in
	s.Favail_in = z.UInt(len(src))
	s.Fnext_out = m.out
	s.Favail_out = z.UInt(bound)
	ret := z.Xdeflate(m.tls, m.strm, z.Z_FINISH)
	n := bound - int(s.Favail_out)
	if ret != z.Z_STREAM_END {
		err := zerr(m, "deflate", ret)
		z.XdeflateReset(m.tls, m.strm)
		return dst[:0], err
	}
	if r := z.XdeflateReset(m.tls, m.strm); r != z.Z_OK {
		return dst[:0], zerr(m, "deflateReset", r)
	}
	s.Fnext_in, s.Fnext_out = 0, 0
	out := append(dst[:0], cbytes(m.out, n)...)
	if c.needsCheck(len(src)) {
		if err := verify(out, src, c.p.WindowBits); err != nil {
			return dst[:0], err
		}
	}
	return out, nil
}

// needsCheck tells whether an input of n bytes could reach zlib 1.2.11's
// CVE-2018-25032 (compressed symbols overwriting the not yet emitted
// symbol buffer, fixed in 1.2.12), in which case Compress inflates its
// output and compares it with the input before returning it.
//
// The overwrite needs a block's header plus its first i symbols to take
// more than lit_bufsize + 2*i bytes: over 24 bits per symbol on average
// across a full symbol buffer. Z_FIXED is rejected outright. With dynamic
// codes that takes near-random long matches (>= 131 bytes, 5 extra bits) at
// far distances (13 extra bits): out of reach with windows of 4 KiB or less
// (at most 10 extra distance bits, ~22 bits per symbol at most) and, for
// memLevel >= 8 (16K-symbol buffers), for inputs much below ~1 MiB. So the
// hot paths (QCOW2 clusters of any size, VMDK grains) are never checked;
// small memLevels (tiny symbol buffers, where the block header alone eats
// most of the margin) and inputs over 256 KiB with larger windows are.
func (c *Compressor) needsCheck(n int) bool {
	if c.p.Level == 0 || n == 0 {
		return false
	}
	if c.p.MemLevel < 8 {
		return true
	}
	wb := c.p.WindowBits
	if wb < 0 {
		wb = -wb
	}
	return wb&15 > 12 && n > 256<<10
}

// Close frees the zlib state. Using c afterwards returns ErrClosed.
func (c *Compressor) Close() error {
	if c.m == nil {
		return nil
	}
	c.cleanup.Stop()
	c.m.free(deflateEnd)
	c.m = nil
	return nil
}
