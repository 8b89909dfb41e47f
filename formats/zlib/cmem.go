package zlib

import (
	"fmt"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	z "modernc.org/z/lib"
)

// Inflate runs zlib's own inflate, as transpiled to pure Go by
// modernc.org/z (no cgo), so that it accepts and rejects exactly the
// streams zlib does. Its state and buffers live in libc-allocated memory
// outside the Go heap (see cmem).

const zStreamSize = int32(unsafe.Sizeof(z.Z_stream{}))

// zlibVersion is the version string handed to inflateInit2_, which only
// compares its first character with its own. C memory, never freed.
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

// cmem is the C-side state of an inflater: a libc thread context, a
// z_stream and input/output buffers, all outside the Go heap so transpiled
// zlib can hold raw addresses into them safely (zlib keeps strm and window
// addresses across calls; Go stacks move).
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

// free releases everything; end is inflateEnd (or deflateEnd), called only
// if the stream was initialized.
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

func inflateEnd(tls *libc.TLS, strm uintptr) int32 { return z.XinflateEnd(tls, strm) }
