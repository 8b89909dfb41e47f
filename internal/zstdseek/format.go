package zstdseek

import (
	"encoding/binary"
	"errors"
)

const (
	// DefaultFrameSize is the uncompressed frame size NewWriter uses when
	// given a frame size of 0.
	DefaultFrameSize = 4 << 20

	// MaxFrameSize is the largest uncompressed frame size NewWriter accepts
	// and the largest decompressed frame size NewReader accepts in a seek
	// table. It bounds the memory a hostile blob can make a Reader use.
	MaxFrameSize = 64 << 20
)

// Format constants of the seekable format and of zstd frames.
const (
	skippableMagic   = 0x184D2A5E // the seek table's skippable frame magic
	seekableMagic    = 0x8F92EAB1 // last four bytes of a seekable blob
	zstdFrameMagic   = 0xFD2FB528 // magic of a regular zstd frame
	skippableHdrSize = 8          // skippable magic + frame size
	footerSize       = 9          // number of frames + descriptor + seekable magic
	entrySize        = 8          // compressed + decompressed size
	entrySizeSum     = 12         // ... + checksum
	checksumFlag     = 1 << 7     // descriptor: entries carry a checksum
	reservedMask     = 0x7c       // descriptor bits 2-6 must be zero
	minFrameSize     = 8          // the smallest possible frame (empty skippable frame)
)

// ErrFormat is wrapped by every error that reports a blob that is not a
// valid seekable zstd blob: a malformed or inconsistent seek table, or a
// frame that is not a zstd frame or disagrees with the seek table about its
// size or checksum. Corrupt frame content is reported with the zstd
// decoder's own errors (such as zstd.ErrCRCMismatch). Either way the error
// names the frame and its offset in the blob.
var ErrFormat = errors.New("zstdseek: invalid seekable format")

// ErrClosed is returned by methods called on a closed Writer or Reader.
var ErrClosed = errors.New("zstdseek: use of closed Writer or Reader")

// maxCompressedSize bounds the compressed size of a frame that decompresses
// to d bytes. Any real encoder stays well below it: zstd's own
// ZSTD_compressBound is d + d/256 + 64 at most, and a frame made only of raw
// blocks costs 3 bytes per 128 KiB block plus at most 22 bytes of header and
// checksum.
func maxCompressedSize(d int64) int64 {
	return d + d>>7 + 4096
}

// minCompressedSize is the smallest compressed size of a frame that
// decompresses to d bytes: a block yields at most 128 KiB and costs at least
// 4 bytes (an RLE block: 3-byte header and the byte to repeat). It bounds how
// much memory a small hostile blob can make a Reader allocate.
func minCompressedSize(d int64) int64 {
	const maxBlock = 128 << 10
	return max(minFrameSize, 4*((d+maxBlock-1)/maxBlock))
}

// appendSeekTable appends the seek table for the given entries (each
// entrySizeSum bytes, with checksum) to dst.
func appendSeekTable(dst, entries []byte, frames uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, skippableMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entries)+footerSize))
	dst = append(dst, entries...)
	dst = binary.LittleEndian.AppendUint32(dst, frames)
	dst = append(dst, checksumFlag)
	dst = binary.LittleEndian.AppendUint32(dst, seekableMagic)
	return dst
}

// frameChecksum reports the content checksum a zstd frame stores in its last
// four bytes, and whether the frame has one. It only inspects the frame
// header descriptor; the decoder verifies that the checksum matches.
func frameChecksum(frame []byte) (uint32, bool) {
	// magic (4) + frame header descriptor (1) + ... + checksum (4)
	if len(frame) < 4+1+3+4 || binary.LittleEndian.Uint32(frame) != zstdFrameMagic {
		return 0, false
	}
	const contentChecksumFlag = 1 << 2
	if frame[4]&contentChecksumFlag == 0 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(frame[len(frame)-4:]), true
}

// frameContentSize returns the content size a zstd frame declares in its
// header, if it is a zstd frame that declares one.
func frameContentSize(frame []byte) (int64, bool) {
	if len(frame) < 5 || binary.LittleEndian.Uint32(frame) != zstdFrameMagic {
		return 0, false
	}
	fhd := frame[4]
	single := fhd&(1<<5) != 0
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += [4]int{0, 1, 2, 4}[fhd&3] // dictionary ID
	var size int
	switch fhd >> 6 {
	case 0:
		if !single {
			return 0, false // size not declared
		}
		size = 1
	case 1:
		size = 2
	case 2:
		size = 4
	case 3:
		size = 8
	}
	if len(frame) < pos+size {
		return 0, false
	}
	b := frame[pos : pos+size]
	switch size {
	case 1:
		return int64(b[0]), true
	case 2:
		return int64(binary.LittleEndian.Uint16(b)) + 256, true
	case 4:
		return int64(binary.LittleEndian.Uint32(b)), true
	default:
		v := binary.LittleEndian.Uint64(b)
		if v > 1<<62 {
			return 1 << 62, true // absurd; any value > MaxFrameSize will do
		}
		return int64(v), true
	}
}
