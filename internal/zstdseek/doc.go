// Package zstdseek reads and writes the Zstandard seekable format.
//
// A seekable blob is a sequence of independent Zstandard frames followed by
// a seek table stored in a skippable frame, as described by the zstd
// project's contrib/seekable_format/zstd_seekable_compression_format.md:
//
//	frame 0 | frame 1 | ... | frame N-1 | seek table
//
//	seek table = skippable frame header: magic 0x184D2A5E (u32 LE),
//	                                     content size (u32 LE)
//	             N entries: compressed size   (u32 LE)
//	                        decompressed size (u32 LE)
//	                        [checksum         (u32 LE)]  if descriptor bit 7
//	             footer:    number of frames  (u32 LE)
//	                        descriptor        (u8)
//	                        seekable magic 0x8F92EAB1 (u32 LE)
//
// The checksum of an entry is the low 32 bits of the XXH64 (seed 0) of the
// frame's decompressed content, which is the same value a zstd frame stores
// as its content checksum.
//
// Because every frame is independent, any offset can be read by decoding a
// single frame, frames can be decoded in parallel, and because the seek table
// is a skippable frame, a standard decoder (zstd -d) still decompresses the
// whole blob to the original content.
//
// [Writer] produces such blobs deterministically: the same input and frame
// size always give the same bytes, whatever the number of CPUs (for a given
// version of github.com/klauspost/compress). [Reader]
// validates the seek table before trusting it and keeps its memory bounded
// (a few frames' worth) whatever the size of the blob.
package zstdseek
