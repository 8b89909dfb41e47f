package zlib

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"

	"modernc.org/libc"
	z "modernc.org/z/lib"
)

// refCompressor is the reference the native Compressor is tested against:
// zlib 1.2.11's own deflate, transpiled to Go by modernc.org/z, driven the
// way compress2() drives it (deflateInit2, one deflate(Z_FINISH) into a
// deflateBound-sized buffer, deflateReset).
//
// 1.2.11 differs from the 1.2.13 that Compress reproduces in one way that
// shows in deflate output: CVE-2018-25032, where compressed symbols
// overwrite the not yet emitted symbol buffer (small memLevels, or far
// matches in big inputs). Where that is reachable (needsCheck) the
// reference inflates its own output and reports errRefCorrupt if it does
// not round-trip; those cases are compared with the system zlib only.
type refCompressor struct {
	p       Params
	m       *cmem
	cleanup runtime.Cleanup
}

var errRefCorrupt = errors.New("reference zlib 1.2.11 output is corrupt (CVE-2018-25032)")

func deflateEnd(tls *libc.TLS, strm uintptr) int32 { return z.XdeflateEnd(tls, strm) }

func newRefCompressor(p Params) (*refCompressor, error) {
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
	c := &refCompressor{p: p, m: m}
	c.cleanup = runtime.AddCleanup(c, func(m *cmem) { m.free(deflateEnd) }, m)
	return c, nil
}

func (c *refCompressor) Close() {
	if c.m != nil {
		c.cleanup.Stop()
		c.m.free(deflateEnd)
		c.m = nil
	}
}

// Compress is the old cgo-free Compress: zlib's one-shot deflate.
func (c *refCompressor) Compress(dst, src []byte) ([]byte, error) {
	m := c.m
	defer runtime.KeepAlive(c)
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
		wb := c.p.WindowBits
		if wb == 8 {
			wb = 9 // the header says 9; inflateInit2(8) rejects it
		}
		if err := verify(out, src, wb); err != nil {
			return out, fmt.Errorf("%w: %w", errRefCorrupt, err)
		}
	}
	return out, nil
}

// needsCheck tells whether an input of n bytes could reach zlib 1.2.11's
// CVE-2018-25032. The overwrite needs a block's header plus its first i
// symbols to take more than lit_bufsize + 2*i bytes: over 24 bits per
// symbol on average across a full symbol buffer, which takes near-random
// long matches at far distances: out of reach with windows of 4 KiB or less
// and, for memLevel >= 8, for inputs much below ~1 MiB.
func (c *refCompressor) needsCheck(n int) bool {
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

var errMismatch = errors.New("output differs")

// verify checks that comp is exactly one stream that inflates to src.
func verify(comp, src []byte, windowBits int) error {
	consumed, produced, err := inflateStream(comp, windowBits, len(src), func(b []byte) error {
		if !bytes.HasPrefix(src, b) {
			return errMismatch
		}
		src = src[len(b):]
		return nil
	})
	if err == nil && (consumed != len(comp) || len(src) != 0) {
		err = fmt.Errorf("stream is %d of %d bytes, %d bytes of input left", consumed, len(comp), len(src))
	}
	if err != nil {
		return fmt.Errorf("%w: self-check of the compressed output failed after %d bytes: %w", ErrInternal, produced, err)
	}
	return nil
}
