// Package cpio lists and splits cpio archives in the "new ASCII" (newc)
// format, magic "070701", and its variant with a checksum, "070702" (GNU
// cpio's -H newc and -H crc; the Linux initramfs format).
//
// The layout, after cpio(5) and the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst: an archive is
// a sequence of entries, each
//
//	header  110 bytes of ASCII: the magic, then 13 fields of 8 hex digits:
//	        ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
//	        devminor, rdevmajor, rdevminor, namesize, check
//	name    namesize bytes, the last a NUL, then NULs up to a multiple
//	        of 4 bytes from the header's start
//	data    filesize bytes (a regular file's contents, a symlink's
//	        target), then NULs up to a multiple of 4
//
// ending with an entry named "TRAILER!!!". GNU cpio then pads the archive
// with NULs to a multiple of its block size (512 bytes by default). check
// is the sum of the data bytes for "070702", 0 otherwise; it is kept
// verbatim, not verified. Of hard-linked files, GNU cpio stores the data
// with the last link only; the others have filesize 0.
//
// As the kernel reads an initramfs, archives may follow one another, each
// at a multiple of 4 bytes, with NULs between them. Data after the last
// archive (and its NUL padding) that does not start another archive, such
// as the compressed archive that ends some initramfs images, is left to the
// caller: Members ignores it and Split describes it as a member.
package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

const (
	headerSize = 110
	// maxName bounds namesize (with its NUL): PATH_MAX, as the kernel and
	// GNU cpio bound names.
	maxName = 4096
	trailer = "TRAILER!!!"

	offMode     = 14 // field offsets in the header
	offFileSize = 54
	offNameSize = 94

	modeType    = 0o170000
	modeRegular = 0o100000

	// maxVerbatimData bounds the data of a non-regular entry (a symlink
	// target) kept in the recipe; larger data is content.
	maxVerbatimData = 64 << 10
)

// ErrFormat reports a malformed archive.
var ErrFormat = errors.New("cpio: malformed archive")

// Member is one entry of an archive.
type Member struct {
	Name   string
	Mode   uint32 // type and permission bits, as in stat(2)
	Offset int64  // of the data, within the archive
	Size   int64  // of the data
}

// Regular reports whether m is a regular file.
func (m Member) Regular() bool { return m.Mode&modeType == modeRegular }

// Detect reports whether header (the file's first bytes, ideally ≥ 110)
// starts a newc archive: the magic, and hex digits in the fields present.
func Detect(header []byte) bool {
	if len(header) < 6 || !isMagic(header) {
		return false
	}
	for _, c := range header[6:min(len(header), headerSize)] {
		if unhex(c) < 0 {
			return false
		}
	}
	return true
}

func isMagic(p []byte) bool {
	return len(p) >= 6 && string(p[:5]) == "07070" && (p[5] == '1' || p[5] == '2')
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// field parses the 8 hex digits at p[off:].
func field(p []byte, off int) (uint32, error) {
	var v uint32
	for _, c := range p[off : off+8] {
		d := unhex(c)
		if d < 0 {
			return 0, fmt.Errorf("%w: bad hex digit %q at header offset %d", ErrFormat, c, off)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// part is one byte range of an archive, in file order.
type part struct {
	kind partKind
	off  int64
	n    int64
	hdr  []byte // partHeader: header, name and padding
	m    Member // partHeader, partData: the entry
}

type partKind int

const (
	partHeader partKind = iota // header, name, name padding
	partData                   // an entry's data
	partPad                    // data padding
	partZero                   // NULs after an archive
	partRest                   // data after the last archive
)

// readEntry reads the header and name of the entry at off.
func readEntry(r io.ReaderAt, size, off int64) ([]byte, Member, error) {
	var m Member
	if size-off < headerSize {
		return nil, m, fmt.Errorf("%w: %d bytes left, too few for a header", ErrFormat, size-off)
	}
	hdr := make([]byte, headerSize, headerSize+64)
	if err := readFull(r, hdr, off); err != nil {
		return nil, m, err
	}
	if !isMagic(hdr) {
		return nil, m, fmt.Errorf("%w: bad magic %q", ErrFormat, hdr[:6])
	}
	for o := 6; o < headerSize; o += 8 {
		if _, err := field(hdr, o); err != nil {
			return nil, m, err
		}
	}
	mode, _ := field(hdr, offMode)
	fsize, _ := field(hdr, offFileSize)
	nsize, _ := field(hdr, offNameSize)
	if nsize < 1 || nsize > maxName {
		return nil, m, fmt.Errorf("%w: name size %d (1 to %d)", ErrFormat, nsize, maxName)
	}
	hlen := int64(headerSize+nsize+3) &^ 3
	if hlen > size-off {
		return nil, m, fmt.Errorf("%w: name runs past the end", ErrFormat)
	}
	hdr = append(hdr, make([]byte, hlen-headerSize)...)
	if err := readFull(r, hdr[headerSize:], off+headerSize); err != nil {
		return nil, m, err
	}
	name := hdr[headerSize : headerSize+nsize]
	if name[nsize-1] != 0 || bytes.IndexByte(name[:nsize-1], 0) >= 0 {
		return nil, m, fmt.Errorf("%w: name %q is not one NUL-terminated string", ErrFormat, name)
	}
	m = Member{Name: string(name[:nsize-1]), Mode: mode, Offset: off + hlen, Size: int64(fsize)}
	if m.Size > size-m.Offset {
		return nil, m, fmt.Errorf("%w: %q: %d bytes of data, %d left", ErrFormat, m.Name, m.Size, size-m.Offset)
	}
	return hdr, m, nil
}

// readFull reads len(p) bytes at off; a full read ending in io.EOF is a
// success.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("cpio: read at %#x: %w", off, err)
}

// zeroRun returns how many NUL bytes start at off.
func zeroRun(r io.ReaderAt, size, off int64) (int64, error) {
	buf := make([]byte, min(64<<10, size-off))
	var n int64
	for off+n < size {
		p := buf[:min(int64(len(buf)), size-off-n)]
		if err := readFull(r, p, off+n); err != nil {
			return 0, err
		}
		if !zeros.Is(p) {
			return n + int64(bytes.IndexFunc(p, func(c rune) bool { return c != 0 })), nil
		}
		n += int64(len(p))
	}
	return n, nil
}

// walk calls fn with every byte range of the archive(s) in r, in order.
func walk(r io.ReaderAt, size int64, fn func(part) error) error {
	var off int64
	for {
		start := off
		for {
			hdr, m, err := readEntry(r, size, off)
			if err != nil {
				return fmt.Errorf("cpio: entry at %#x (archive at %#x): %w", off, start, err)
			}
			if err := fn(part{kind: partHeader, off: off, n: int64(len(hdr)), hdr: hdr, m: m}); err != nil {
				return err
			}
			off = m.Offset
			if m.Size > 0 {
				if err := fn(part{kind: partData, off: off, n: m.Size, m: m}); err != nil {
					return err
				}
				off += m.Size
			}
			if pad := -off & 3; pad > 0 {
				if pad > size-off {
					return fmt.Errorf("%w: %q: data padding runs past the end", ErrFormat, m.Name)
				}
				if err := fn(part{kind: partPad, off: off, n: pad}); err != nil {
					return err
				}
				off += pad
			}
			if m.Name == trailer {
				break
			}
		}
		z, err := zeroRun(r, size, off)
		if err != nil {
			return err
		}
		if z > 0 {
			if err := fn(part{kind: partZero, off: off, n: z}); err != nil {
				return err
			}
			off += z
		}
		if off == size {
			return nil
		}
		var magic [6]byte
		if off&3 == 0 && size-off >= 6 {
			if err := readFull(r, magic[:], off); err != nil {
				return err
			}
		}
		if !isMagic(magic[:]) {
			return fn(part{kind: partRest, off: off, n: size - off})
		}
	}
}

// Members lists the entries of the archive(s) in r (size bytes), in order,
// without the trailers. It fails on a malformed or truncated archive.
func Members(r io.ReaderAt, size int64) ([]Member, error) {
	var ms []Member
	err := walk(r, size, func(p part) error {
		if p.kind == partHeader && p.m.Name != trailer {
			ms = append(ms, p.m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// Split describes the archive(s) in src (size bytes) to b: headers, names
// and non-zero padding verbatim, each regular file's data as a member
// (b.Member: a nested format, or content), other entries' data (symlink
// targets) verbatim, NUL padding as zeros, and any data after the last
// archive as a member.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	var buf []byte
	return walk(src, size, func(p part) error {
		switch p.kind {
		case partHeader:
			return b.Verbatim(p.hdr)
		case partData:
			if p.m.Regular() {
				return b.Member(io.NewSectionReader(src, p.off, p.n), p.n)
			}
			if p.n > maxVerbatimData {
				return b.Content(io.NewSectionReader(src, p.off, p.n), p.n)
			}
		case partPad:
		case partZero:
			return b.Zero(p.n)
		case partRest:
			return b.Member(io.NewSectionReader(src, p.off, p.n), p.n)
		}
		// Small ranges: symlink targets, data padding.
		if int64(cap(buf)) < p.n {
			buf = make([]byte, p.n)
		}
		buf = buf[:p.n]
		if err := readFull(src, buf, p.off); err != nil {
			return err
		}
		if zeros.Is(buf) {
			return b.Zero(p.n)
		}
		return b.Verbatim(buf)
	})
}
