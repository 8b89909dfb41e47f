// Package delta is a rolling-checksum delta engine: it encodes a target
// byte stream as a compact delta against one or more sources (a base disk
// image, say) and regenerates the target bit for bit from the delta and the
// same sources.
//
// # Encoding
//
// NewIndex reads the sources once and indexes a weak rolling hash of every
// block-aligned block that is not all zeros. Memory is O(total source size /
// block size): an open-addressing table of 8-byte slots, at most half full,
// plus a blocked Bloom filter of 16 bits per block in front of it.
//
// Index.Encode reads the target in 8 MiB buffers and rolls a block-sized
// window over it one byte at a time, so a match is found at any byte offset
// (cpio data at 4-byte offsets, tar data after 512-byte headers, data shifted
// by any amount). A window whose hash passes the filter and the table is
// confirmed by comparing its bytes with the source's, read through ReadAt,
// and the match is then extended byte by byte forward and backward into the
// pending literal. When a copy stops at a mismatch, the encoder first looks a
// little further along the same source-target diagonal (same relative offset)
// for the copy to resume: an in-place edit of a few bytes in a disk image
// then costs those bytes and two small ops. Zero runs become zero ops: runs of
// a block or more found by the scan, all-zero 4 KiB stretches met while
// extending a copy, and runs of 64 bytes or more inside literals.
//
// # Block size
//
// NewIndex(sources, 0) picks the block size: the smallest power of two from
// 1 KiB up to 64 KiB that leaves at most 512Ki non-zero source blocks. The
// encoder probes the filter at every target byte, and measurement on the
// 2-core build machines shows the scan of literal data keeping its speed
// while the filter fits in L2 cache (up to 1 MiB, about 512Ki blocks) and
// losing half of it or more beyond. Below 1 KiB, matches get shorter and more
// often spurious (on a qcow2 of a disk image, 512-byte blocks gave a delta
// 60% larger than 1 KiB blocks) and the index bigger; above it, short
// shifted matches are missed (a cpio archive of 3000 files of 64 B to 512 KiB
// cost 0.13% of its size at 1 KiB, 0.46% at 4 KiB). A base image of up to
// 512 MiB of data therefore gets 1 KiB blocks, one of 2 GiB 4 KiB blocks.
//
// # Wire format
//
// A delta is a small uncompressed header followed by one zstd frame:
//
//	magic      "RHDELTA1"
//	version    byte, 1
//	flags      byte, 0 (reserved)
//	target     uvarint: target size in bytes
//	nsources   uvarint: number of sources
//	size[i]    uvarint, nsources times: each source's size
//	hcrc       uint32 little-endian: CRC-32C of the header bytes above
//	ops        one zstd frame (window at most 8 MiB, content checksum)
//
// Varints are encoding/binary's. The decompressed frame is a sequence of
// ops, each starting with a uvarint tag = length<<2 | kind:
//
//	kind 1  zero     length zero bytes
//	kind 2  literal  followed by length literal bytes
//	kind 3  copy     followed by uvarint source index and varint (zigzag)
//	                 offset delta; copies length bytes of that source
//	kind 0  end      length 0, followed by a uint32 little-endian CRC-32C
//	                 of the whole target; must be the last bytes of the frame
//
// A copy's source offset is coded relative to the diagonal of the previous
// copy from the same source: offset = target position + diag[src] + delta,
// after which diag[src] = offset - target position (diag starts at 0). A copy
// that continues at the same relative offset after an edit, the common case
// in disk images, codes a delta of 0.
//
// Ops never have length 0, never run past the target size, and copies stay
// within their source. The ops must produce exactly the target size, then the
// end op, then the frame must end, and nothing may follow it. The encoder
// coalesces adjacent zero ops and contiguous copies, and writes literals of
// at most about 1 MiB per op.
//
// Encoding is deterministic: the same sources, block size and target give
// the same delta bytes, whatever the reads' sizes (fixed zstd level, one
// encoder goroutine, fixed hash seed).
//
// # Decoding
//
// NewReader checks the header against the sources given (count and sizes),
// so a mismatched source is rejected before any output. Reader then streams
// the target with bounded memory: the zstd window (at most 8 MiB, single
// goroutine) and one 1 MiB buffer, whatever the target size or the lengths an
// op claims. Every op is checked as it is read; a truncated, corrupt or
// over-long delta, a source read error, and a target checksum mismatch (a
// source with the right size but other content) are errors, returned at the
// latest with the target's last bytes.
package delta
