package squashfs

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"github.com/ulikunitz/xz/lzma"
)

// decoder decompresses one block: src is the block as stored, the result
// is appended to dst and holds at most limit bytes. Decoders are safe for
// concurrent use.
type decoder interface {
	decode(dst, src []byte, limit int) ([]byte, error)
}

var errTooBig = errors.New("decompresses to more than the block size")

// readLimit appends all of r to dst, failing if it holds more than limit
// bytes.
func readLimit(dst []byte, r io.Reader, limit int) ([]byte, error) {
	if cap(dst)-len(dst) < limit+1 {
		dst = append(make([]byte, 0, len(dst)+limit+1), dst...)
	}
	base := len(dst)
	for {
		if len(dst)-base > limit {
			return nil, errTooBig
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), base+limit+1)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			if len(dst)-base > limit {
				return nil, errTooBig
			}
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// zstdDecoder decodes zstd frames.
type zstdDecoder struct{ d *zstd.Decoder }

func (z zstdDecoder) decode(dst, src []byte, limit int) ([]byte, error) {
	base := len(dst)
	out, err := z.d.DecodeAll(src, dst)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out)-base > limit {
		return nil, fmt.Errorf("zstd: %w", errTooBig)
	}
	return out, nil
}

// zlibDecoder decodes zlib streams (squashfs calls them gzip).
type zlibDecoder struct{ pool sync.Pool }

func (z *zlibDecoder) decode(dst, src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
	}
	out, err := readLimit(dst, zr, limit)
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("zlib: %d bytes after the stream", br.Len())
	}
	z.pool.Put(zr)
	return out, nil
}

// xzDecoder decodes the xz streams mksquashfs writes: one stream, one
// block, the LZMA2 filter alone (a stream using branch filters gives
// ErrUnsupported). The container is parsed here so that the dictionary
// size is checked before the LZMA2 decoder allocates it.
type xzDecoder struct{}

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

const (
	xzFilterLZMA2 = 0x21
	xzMaxDict     = maxBlockSize // mksquashfs: dictionary ≤ block size
)

func (xzDecoder) decode(dst, src []byte, limit int) ([]byte, error) {
	out, err := xzDecode(dst, src, limit)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return out, nil
}

// xzUvarint reads an xz multibyte integer.
func xzUvarint(p []byte) (uint64, int, error) {
	v, n := binary.Uvarint(p)
	if n <= 0 || n > 9 {
		return 0, 0, errors.New("bad integer in block header")
	}
	return v, n, nil
}

func xzDecode(dst, src []byte, limit int) ([]byte, error) {
	le := binary.LittleEndian
	// Stream header: magic, flags (0, check type), CRC32 of the flags.
	if len(src) < 12+8 || !bytes.Equal(src[:6], xzMagic) {
		return nil, errors.New("no stream header")
	}
	if src[6] != 0 || src[7] > 0x0f || crc32.ChecksumIEEE(src[6:8]) != le.Uint32(src[8:]) {
		return nil, errors.New("bad stream flags")
	}
	var check hash.Hash
	switch src[7] {
	case 0:
	case 1:
		check = crc32.NewIEEE()
	case 4:
		check = crc64.New(crc64.MakeTable(crc64.ECMA))
	case 10:
		check = sha256.New()
	default:
		return nil, fmt.Errorf("%w: xz check type %d", ErrUnsupported, src[7])
	}
	// Block header: size byte, flags, optional sizes, filter flags,
	// zero padding, CRC32.
	p := src[12:]
	if p[0] == 0 {
		return nil, errors.New("stream holds no block")
	}
	hsize := (int(p[0]) + 1) * 4
	if len(p) < hsize || crc32.ChecksumIEEE(p[:hsize-4]) != le.Uint32(p[hsize-4:]) {
		return nil, errors.New("bad block header")
	}
	h := p[2 : hsize-4]
	flags := p[1]
	if flags&0x3c != 0 {
		return nil, errors.New("reserved block flags set")
	}
	csize, usize := int64(-1), int64(-1)
	if flags&0x40 != 0 {
		v, n, err := xzUvarint(h)
		if err != nil {
			return nil, err
		}
		csize, h = int64(min(v, 1<<62)), h[n:]
	}
	if flags&0x80 != 0 {
		v, n, err := xzUvarint(h)
		if err != nil {
			return nil, err
		}
		usize, h = int64(min(v, 1<<62)), h[n:]
	}
	if flags&3 != 0 {
		return nil, fmt.Errorf("%w: xz branch filters", ErrUnsupported)
	}
	id, n, err := xzUvarint(h)
	if err != nil {
		return nil, err
	}
	h = h[n:]
	if id != xzFilterLZMA2 {
		return nil, fmt.Errorf("%w: xz filter %#x", ErrUnsupported, id)
	}
	plen, n, err := xzUvarint(h)
	if err != nil {
		return nil, err
	}
	h = h[n:]
	if plen != 1 || len(h) < 1 {
		return nil, errors.New("bad LZMA2 properties")
	}
	dict, err := lzma.DecodeDictCap(h[0])
	if err != nil || dict > xzMaxDict {
		return nil, fmt.Errorf("LZMA2 dictionary property %#x", h[0])
	}
	for _, b := range h[1:] {
		if b != 0 {
			return nil, errors.New("block header padding is not zero")
		}
	}
	// LZMA2 chunks delimit themselves, so the stream's end is known.
	body := p[hsize:]
	br := bytes.NewReader(body)
	lr, err := lzma.Reader2Config{DictCap: max(int(dict), lzma.MinDictCap)}.NewReader2(br)
	if err != nil {
		return nil, err
	}
	base := len(dst)
	out, err := readLimit(dst, lr, limit)
	if err != nil {
		return nil, err
	}
	consumed := int64(len(body) - br.Len())
	if (csize >= 0 && csize != consumed) || (usize >= 0 && usize != int64(len(out)-base)) {
		return nil, errors.New("block sizes differ from the header's")
	}
	// Block padding to 4 bytes, then the check.
	rest := body[consumed:]
	pad := int((4 - (int64(hsize)+consumed)%4) % 4)
	if len(rest) < pad || !zeros.Is(rest[:pad]) {
		return nil, errors.New("bad block padding")
	}
	rest = rest[pad:]
	if check != nil {
		check.Write(out[base:])
		sum := check.Sum(nil)
		if len(rest) < len(sum) {
			return nil, errors.New("truncated check")
		}
		// CRC32 and CRC64 are stored little-endian; hash.Hash gives them
		// big-endian.
		if src[7] != 10 {
			for i, j := 0, len(sum)-1; i < j; i, j = i+1, j-1 {
				sum[i], sum[j] = sum[j], sum[i]
			}
		}
		if !bytes.Equal(sum, rest[:len(sum)]) {
			return nil, errors.New("check mismatch")
		}
	}
	// The index and stream footer follow; the block has been verified.
	return out, nil
}

// lzmaDecoder decodes the LZMA "alone" streams of squashfs's lzma
// compressor: a 13-byte header (properties byte, dictionary size u32,
// uncompressed size u64 or all ones), then the LZMA data. The dictionary
// size is checked before the decoder allocates it.
type lzmaDecoder struct{}

func (lzmaDecoder) decode(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < 13 {
		return nil, errors.New("lzma: short header")
	}
	if dict := binary.LittleEndian.Uint32(src[1:]); dict > maxBlockSize {
		return nil, fmt.Errorf("lzma: dictionary of %d bytes", dict)
	}
	if size := binary.LittleEndian.Uint64(src[5:]); size != ^uint64(0) && size > uint64(limit) {
		return nil, fmt.Errorf("lzma: %w", errTooBig)
	}
	br := bytes.NewReader(src)
	lr, err := lzma.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	out, err := readLimit(dst, lr, limit)
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return out, nil
}
