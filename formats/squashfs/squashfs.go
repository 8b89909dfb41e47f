// Package squashfs reads the regular files of a squashfs 4.0 image (as
// mksquashfs writes it) and presents their uncompressed contents as one
// byte range, a View, that the delta engine can use as a source.
//
// rehydrator does not re-create squashfs images: an image holding the same
// files as a base image is only a cheaper source for a delta against that
// base, because the View holds the files' bytes uncompressed, in the order
// mksquashfs stored them. Decoding is always exact, so no compressor ever
// has to be reproduced.
//
// The layout, after the kernel's Documentation/filesystems/squashfs.rst and
// squashfs-tools' squashfs_fs.h (all numbers little-endian):
//
//	0      superblock (96 bytes, see the offsets below)
//	96     compressor options: one metadata block, if flag 0x400 is set
//	       data blocks and fragment blocks of the files
//	inode_table_start      inode table: metadata blocks
//	directory_table_start  directory table: metadata blocks
//	       fragment table metadata blocks, then at fragment_table_start
//	       the lookup table: one u64 pointer per 512 fragment entries
//	       export, id and xattr tables (not used here)
//	bytes_used             end of the filesystem (the file may be padded)
//
// A metadata block is a u16 header, bit 15 set when the block is stored
// uncompressed, the low 15 bits its size on disk, then that many bytes
// holding at most 8 KiB once decompressed. Tables made of metadata blocks
// are streams: an inode may straddle two blocks.
//
// Each inode starts with a 16-byte header: type u16, mode u16, uid u16,
// gid u16, mtime u32, inode number u32. Regular files are types 2 (basic:
// blocks_start u32, fragment u32, offset u32, file_size u32) and 9
// (extended: blocks_start u64, file_size u64, sparse u64, nlink u32,
// fragment u32, offset u32, xattr u32), each followed by one u32 per data
// block. A file's data blocks lie one after another from blocks_start; a
// block size word holds the size on disk in its low 24 bits, bit 24 set
// when the block is stored uncompressed, and 0 for a sparse (all-zero)
// block, which takes no space. Every block but a file's last holds
// block_size bytes. A file whose fragment index is not 0xffffffff has
// file_size/block_size blocks (rounded down) and keeps its tail at offset
// bytes into a fragment block, shared by many files' tails; the fragment
// table maps the index to the block's {start u64, size u32 (as a block size
// word), unused u32}. Other inode types are skipped: directories (1, 8),
// symlinks (3, 10), devices (4, 5, 11, 12), fifos and sockets (6, 7, 13,
// 14).
//
// Open walks the inode table once, in order, and the fragment table, and
// checks that every block it will ever read lies in the data area. It holds
// about 12 bytes per data block and 48 per regular file; the limits below
// bound the metadata it decodes, so hostile images cannot make it allocate
// without bound. Files lists the files' contents in inode-table order:
// mksquashfs writes a directory's entries sorted by name, descending into
// subdirectories as it meets them, so this is also the order of
// `unsquashfs -pf`. Files that mksquashfs found to be duplicates share
// their blocks on disk but appear once per inode; hard links are one
// inode and appear once.
//
// Data is decoded lazily, one block at a time, with a small cache and read
// ahead for sequential readers. Compressors: gzip (zlib streams), lzma
// (LZMA "alone" streams), xz (LZMA2, no branch filters) and zstd; lzo and
// lz4 give ErrUnsupported.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Superblock layout.
const (
	superSize = 96
	magic     = 0x73717368 // "hsqs" read little-endian

	offMagic      = 0  // u32
	offInodes     = 4  // u32: inode count
	offBlockSize  = 12 // u32
	offFragments  = 16 // u32: fragment entry count
	offComp       = 20 // u16: compression id
	offBlockLog   = 22 // u16
	offFlags      = 24 // u16
	offMajor      = 28 // u16: 4
	offMinor      = 30 // u16: 0
	offBytesUsed  = 40 // u64
	offInodeTable = 64 // u64
	offDirTable   = 72 // u64
	offFragTable  = 80 // u64

	flagCompOptions = 0x400 // compressor options follow the superblock
)

// Compression is a squashfs compression id.
type Compression uint16

// Compression ids.
const (
	Gzip Compression = 1 // zlib streams
	LZMA Compression = 2
	LZO  Compression = 3
	XZ   Compression = 4
	LZ4  Compression = 5
	Zstd Compression = 6
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case LZMA:
		return "lzma"
	case LZO:
		return "lzo"
	case XZ:
		return "xz"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression %d", uint16(c))
}

// Sizes from the format.
const (
	metaSize     = 8192    // a metadata block's most bytes, decompressed
	minBlockSize = 4 << 10 // data block size bounds
	maxBlockSize = 1 << 20

	noFragment     = 0xffffffff
	blockRawBit    = 1 << 24 // in a block size word: stored uncompressed
	blockSizeMask  = blockRawBit - 1
	metaRawBit     = 1 << 15 // in a metadata block header
	fragmentsPer   = metaSize / fragEntrySize
	fragEntrySize  = 16
	inodeHeader    = 16
	maxSymlinkSize = 1 << 16 // generous: Linux allows 4 KiB targets
	maxNameSize    = 256     // directory index names (SQUASHFS_NAME_LEN)
)

// Limits that keep hostile images from allocating without bound. Real
// images are far below them: a Fedora CoreOS root filesystem has a few MiB
// of inode table and some 10⁴ fragments.
const (
	// maxInodeTable bounds the decompressed inode table Open walks.
	maxInodeTable = 64 << 20
	// maxFragments bounds the fragment entry count (16 bytes each).
	maxFragments = 1 << 24
	// maxViewSize bounds the sum of the file sizes, so that offsets never
	// overflow.
	maxViewSize = 1 << 62
)

// ErrUnsupported reports a valid image that this package cannot decode:
// its compressor (lzo, lz4) or xz filters are not supported.
var ErrUnsupported = errors.New("squashfs: unsupported")

// ErrFormat reports a malformed image.
var ErrFormat = errors.New("squashfs: malformed image")

// Detect reports whether header (the file's first ≥ 32 bytes) starts a
// squashfs 4.0 image.
func Detect(header []byte) bool {
	if len(header) < offMinor+2 {
		return false
	}
	le := binary.LittleEndian
	return le.Uint32(header[offMagic:]) == magic && le.Uint16(header[offMajor:]) == 4 && le.Uint16(header[offMinor:]) == 0
}

// File is where one regular file's contents lie in the View.
type File struct {
	Inode  uint32 // inode number
	Offset int64  // in the View
	Size   int64
}

// Image is an opened squashfs image.
type Image struct {
	r         io.ReaderAt
	comp      Compression
	blockSize int64
	inodes    uint32
	bytesUsed uint64
	dataEnd   uint64 // data and fragment blocks lie in [superSize, dataEnd)
	dec       decoder

	files []file
	// A file's data blocks: disk offsets and size words, files[i].first
	// onwards.
	blockAt   []uint64
	blockWord []uint32
	frags     []fragment
	size      int64 // of the View

	bufs sync.Pool // *[]byte of compressed bytes read from disk
	view *View
}

// file is a regular file's layout.
type file struct {
	inode   uint32
	off     int64 // in the View
	size    int64
	first   int    // index of its first block in blockAt/blockWord
	nblocks int64  // data blocks
	frag    uint32 // fragment index, or noFragment
	fragOff uint32 // offset of the tail in the fragment block
}

// fragment is one fragment table entry.
type fragment struct {
	start uint64
	word  uint32
}

// Open parses image r of size bytes: superblock, inode table and fragment
// table. It checks that every block a file refers to lies in the image's
// data area; blocks themselves are decoded only when the View is read.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	var sb [superSize]byte
	if size < superSize {
		return nil, fmt.Errorf("%w: %d bytes is too short for a superblock", ErrFormat, size)
	}
	if err := readFull(r, sb[:], 0); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", err)
	}
	if !Detect(sb[:]) {
		return nil, fmt.Errorf("%w: no squashfs 4.0 superblock", ErrFormat)
	}
	le := binary.LittleEndian
	im := &Image{
		r:         r,
		comp:      Compression(le.Uint16(sb[offComp:])),
		inodes:    le.Uint32(sb[offInodes:]),
		bytesUsed: le.Uint64(sb[offBytesUsed:]),
	}
	bs := le.Uint32(sb[offBlockSize:])
	blockLog := le.Uint16(sb[offBlockLog:])
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 || uint32(1)<<blockLog != bs {
		return nil, fmt.Errorf("%w: block size %d, log %d", ErrFormat, bs, blockLog)
	}
	im.blockSize = int64(bs)
	if im.bytesUsed < superSize || im.bytesUsed > uint64(size) {
		return nil, fmt.Errorf("%w: bytes_used %d, file has %d", ErrFormat, im.bytesUsed, size)
	}
	inodeTable := le.Uint64(sb[offInodeTable:])
	dirTable := le.Uint64(sb[offDirTable:])
	if inodeTable < superSize || inodeTable >= dirTable || dirTable > im.bytesUsed {
		return nil, fmt.Errorf("%w: inode table at %#x, directory table at %#x, bytes_used %#x", ErrFormat, inodeTable, dirTable, im.bytesUsed)
	}
	im.dataEnd = inodeTable

	var opts []byte
	if le.Uint16(sb[offFlags:])&flagCompOptions != 0 {
		var err error
		// The options block is never compressed, so no decoder yet.
		if opts, _, err = im.readMeta(superSize, inodeTable); err != nil {
			return nil, fmt.Errorf("squashfs: compressor options: %w", err)
		}
	}
	dec, err := newDecoder(im.comp, opts)
	if err != nil {
		return nil, err
	}
	im.dec = dec

	if err := im.readFragments(le.Uint32(sb[offFragments:]), le.Uint64(sb[offFragTable:])); err != nil {
		return nil, err
	}
	if err := im.readInodes(inodeTable, dirTable); err != nil {
		return nil, err
	}
	im.view = &View{im: im, cache: newCache(cacheUnits)}
	return im, nil
}

// Compression reports the image's compressor.
func (im *Image) Compression() Compression { return im.comp }

// BlockSize reports the image's data block size.
func (im *Image) BlockSize() int { return int(im.blockSize) }

// Layout lists the regular files in View order (inode-table order).
func (im *Image) Layout() []File {
	out := make([]File, len(im.files))
	for i, f := range im.files {
		out[i] = File{Inode: f.inode, Offset: f.off, Size: f.size}
	}
	return out
}

// Files returns the View of all regular files' contents.
func (im *Image) Files() *View { return im.view }

// readFull reads len(p) bytes at off, treating a full read that ends
// with io.EOF as success.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readMeta decodes the metadata block at pos, which must end by end. It
// returns the block's bytes and the position of the next block.
func (im *Image) readMeta(pos, end uint64) ([]byte, uint64, error) {
	if pos > end || end-pos < 2 {
		return nil, 0, fmt.Errorf("%w: metadata block at %#x runs past %#x", ErrFormat, pos, end)
	}
	var h [2]byte
	if err := readFull(im.r, h[:], int64(pos)); err != nil {
		return nil, 0, fmt.Errorf("metadata block at %#x: %w", pos, err)
	}
	word := binary.LittleEndian.Uint16(h[:])
	n := uint64(word &^ metaRawBit)
	if n == 0 || n > metaSize || n > end-pos-2 {
		return nil, 0, fmt.Errorf("%w: metadata block at %#x: size %d (table ends at %#x)", ErrFormat, pos, n, end)
	}
	raw := make([]byte, n)
	if err := readFull(im.r, raw, int64(pos+2)); err != nil {
		return nil, 0, fmt.Errorf("metadata block at %#x: %w", pos, err)
	}
	next := pos + 2 + n
	if word&metaRawBit != 0 {
		return raw, next, nil
	}
	if im.dec == nil {
		return nil, 0, fmt.Errorf("%w: compressed metadata block at %#x", ErrFormat, pos)
	}
	out, err := im.dec.decode(make([]byte, 0, metaSize), raw, metaSize)
	if err != nil {
		return nil, 0, fmt.Errorf("metadata block at %#x: %w", pos, err)
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("%w: empty metadata block at %#x", ErrFormat, pos)
	}
	return out, next, nil
}

// checkBlock reports whether a block of word's size at start lies in the
// data area, and returns its end.
func (im *Image) checkBlock(start uint64, word uint32) (uint64, error) {
	if word&^(blockRawBit|blockSizeMask) != 0 || int64(word&blockSizeMask) > im.blockSize {
		return 0, fmt.Errorf("%w: block size word %#x (block size %d)", ErrFormat, word, im.blockSize)
	}
	n := uint64(word & blockSizeMask)
	if n == 0 {
		return start, nil
	}
	if start < superSize || start > im.dataEnd || n > im.dataEnd-start {
		return 0, fmt.Errorf("%w: block of %d bytes at %#x outside the data area [%#x, %#x)", ErrFormat, n, start, superSize, im.dataEnd)
	}
	return start + n, nil
}

// readFragments loads the fragment table: count entries, found through the
// lookup table at table.
func (im *Image) readFragments(count uint32, table uint64) error {
	if count == 0 {
		return nil
	}
	if count > maxFragments {
		return fmt.Errorf("%w: %d fragments (at most %d)", ErrFormat, count, maxFragments)
	}
	nptr := (uint64(count) + fragmentsPer - 1) / fragmentsPer
	if table < superSize || table > im.bytesUsed || nptr*8 > im.bytesUsed-table {
		return fmt.Errorf("%w: fragment lookup table at %#x (%d pointers) outside the image", ErrFormat, table, nptr)
	}
	ptrs := make([]byte, nptr*8)
	if err := readFull(im.r, ptrs, int64(table)); err != nil {
		return fmt.Errorf("squashfs: fragment lookup table at %#x: %w", table, err)
	}
	// Entries are appended as they are decoded: count is trusted only as
	// far as the table backs it.
	im.frags = make([]fragment, 0, min(count, fragmentsPer))
	le := binary.LittleEndian
	for i := uint64(0); i < nptr; i++ {
		pos := le.Uint64(ptrs[i*8:])
		blk, _, err := im.readMeta(pos, im.bytesUsed)
		if err != nil {
			return fmt.Errorf("squashfs: fragment table block %d: %w", i, err)
		}
		want := min(uint64(count)-i*fragmentsPer, fragmentsPer)
		if uint64(len(blk)) < want*fragEntrySize {
			return fmt.Errorf("%w: fragment table block %d at %#x holds %d bytes, want %d", ErrFormat, i, pos, len(blk), want*fragEntrySize)
		}
		for k := uint64(0); k < want; k++ {
			e := blk[k*fragEntrySize:]
			f := fragment{start: le.Uint64(e), word: le.Uint32(e[8:])}
			if _, err := im.checkBlock(f.start, f.word); err != nil {
				return fmt.Errorf("squashfs: fragment %d: %w", i*fragmentsPer+k, err)
			}
			if f.word&blockSizeMask == 0 {
				return fmt.Errorf("%w: fragment %d is empty", ErrFormat, i*fragmentsPer+k)
			}
			im.frags = append(im.frags, f)
		}
	}
	return nil
}

// newDecoder returns the decoder for comp, given the compressor options
// block (nil when absent).
func newDecoder(comp Compression, opts []byte) (decoder, error) {
	switch comp {
	case Gzip:
		return &zlibDecoder{}, nil
	case XZ:
		if len(opts) >= 8 {
			if filters := binary.LittleEndian.Uint32(opts[4:]); filters != 0 {
				return nil, fmt.Errorf("%w: xz branch filters %#x", ErrUnsupported, filters)
			}
		}
		return xzDecoder{}, nil
	case Zstd:
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(min(runtime.GOMAXPROCS(0), 8)),
			zstd.WithDecoderMaxMemory(maxBlockSize),
			zstd.WithDecoderMaxWindow(maxBlockSize))
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
		return zstdDecoder{d}, nil
	case LZMA:
		return lzmaDecoder{}, nil
	case LZO, LZ4:
		return nil, fmt.Errorf("%w: %v compression", ErrUnsupported, comp)
	}
	return nil, fmt.Errorf("%w: compression id %d", ErrFormat, uint16(comp))
}
