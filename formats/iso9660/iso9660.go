// Package iso9660 lists the files of an ISO 9660 image (as xorriso and
// mkisofs write a live ISO) and splits the image into a content stream and
// a recipe for package formats.
//
// The layout, after ECMA-119 (ISO 9660), the Joliet specification, IEEE
// P1281/P1282 (SUSP, Rock Ridge) and the El Torito specification; all
// addresses are logical blocks of 2048 bytes (the only block size
// accepted), "both-endian" fields hold a number little-endian then
// big-endian and only the little-endian half is read:
//
//	blocks 0-15      system area: ignored by ISO 9660; a hybrid ISO holds
//	                 an MBR and a GPT here (its backup GPT lies past the
//	                 volume, at the image's end)
//	block 16 on      volume descriptors, one a block: type byte, "CD001",
//	                 version; type 0 boot record (El Torito: boot system
//	                 id "EL TORITO SPECIFICATION", boot catalog block at
//	                 byte 71), 1 primary, 2 supplementary (Joliet when its
//	                 escape sequences at byte 88 are %/@, %/C or %/E),
//	                 255 terminator ending the list
//	                 primary/supplementary: logical block size at 128,
//	                 path tables at 132-155, root directory record at 156
//	directories      extents of directory records, none crossing a block
//	                 boundary (a zero length byte ends a block's records):
//	                 length, extended attribute record length (blocks
//	                 before the data in the extent), extent block and data
//	                 length (both-endian), date, flags (2 directory,
//	                 0x80 multi-extent: more records of the same file
//	                 follow), unit size and interleave gap, volume
//	                 sequence number, name length and name (0 and 1 are
//	                 "." and ".."), a pad byte after a name of even length,
//	                 then the system use field
//	path tables      the directories again, for quick lookup (not read)
//	boot catalog     32-byte entries: validation entry (platform, checksum,
//	                 55 AA), default entry (boot indicator, media type,
//	                 sector count in 512-byte sectors, image block), then
//	                 section headers (0x90, 0x91 for the last) each with
//	                 its section entries
//	file data        extents, each file's bytes from its first block,
//	                 zero-padded to a block; files may share an extent
//	                 (hard links, every empty file, the same file in the
//	                 primary and the Joliet tree)
//
// Names: the primary tree holds d-characters ("NAME.EXT;1"), the Joliet
// tree UCS-2 big-endian names, and Rock Ridge adds POSIX names (NM) in the
// system use fields of the primary tree, announced by an SP entry in the
// root's "." record. Rock Ridge relocates directories deeper than eight
// levels: the deep directory moves to rr_moved (marked RE) and its old
// place holds a file record with a CL entry pointing to it. System use
// entries may continue in a continuation area (CE) elsewhere.
//
// Files walks the primary tree and every Joliet tree, and the boot
// catalog; Split describes the file extents it finds as members (nested
// formats such as a cpio rootfs or a FAT efiboot.img) and everything else
// (system area, descriptors, directories, path tables, boot catalog,
// padding) verbatim, runs of zeros as zeros.
//
// Hostile images: every directory block is walked at most once (a
// directory whose first block was walked is skipped, which breaks loops;
// one overlapping a walked directory otherwise is an error), so the
// records walked, and the files listed, are bounded by the image's size;
// so are the continuation areas read, all together. Paths, the volume
// descriptors, continuation hops and the boot catalog are bounded by the
// constants below. Extents (directories, files, boot images) must lie in
// the image.
package iso9660

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

const (
	blockSize = 2048

	// descStart is the first volume descriptor's block.
	descStart = 16
	// maxDescriptors bounds the volume descriptors read before the
	// terminator (xorriso writes four or five).
	maxDescriptors = 256

	// Volume descriptor types.
	vdBoot          = 0
	vdPrimary       = 1
	vdSupplementary = 2
	vdTerminator    = 255

	// Fields of a primary or supplementary volume descriptor.
	offEscapes   = 88  // escape sequences (Joliet)
	offBlockSize = 128 // logical block size, both-endian uint16
	offRoot      = 156 // root directory record, 34 bytes

	// Fields of an El Torito boot record.
	offBootSystem = 7  // boot system identifier, 32 bytes
	offCatalog    = 71 // boot catalog block, uint32 little-endian

	// Directory record fields.
	drLen       = 0
	drXAR       = 1
	drExtent    = 2
	drSize      = 10
	drFlags     = 25
	drUnitSize  = 26
	drGap       = 27
	drNameLen   = 32
	drName      = 33
	minRecord   = 34 // 33 bytes and a name of one
	flagDir     = 0x02
	flagMultiEx = 0x80

	// maxPath bounds a file's path in bytes (Linux's PATH_MAX).
	maxPath = 4096
	// maxPathBytes bounds all the paths a walk keeps together: those
	// Files returns and those of the directories it has yet to walk.
	maxPathBytes = 256 << 20
	// maxContinuations bounds the continuation areas (CE) followed for
	// one directory record.
	maxContinuations = 16
	// maxCatalogEntries bounds the 32-byte boot catalog entries read.
	maxCatalogEntries = 1024
)

var (
	cd001     = []byte("CD001")
	elTorito  = []byte("EL TORITO SPECIFICATION")
	errShort  = errors.New("iso9660: image shorter than its structures say")
	errFormat = errors.New("iso9660: malformed image")
)

// Detect reports whether header, the first 64 KiB of a file (at least
// 32 KiB + 6 bytes), holds an ISO 9660 primary volume descriptor at
// 32 KiB (block 16): type 1 and "CD001".
func Detect(header []byte) bool {
	const at = descStart * blockSize
	return len(header) >= at+6 && header[at] == vdPrimary && string(header[at+1:at+6]) == string(cd001)
}

// File is one extent of file data in the image.
type File struct {
	// Path is the file's path from the root, '/'-separated, without a
	// leading '/': the Rock Ridge name where the primary tree has one,
	// else the Joliet name, else the ISO 9660 name without its ";1".
	// El Torito boot images that are no file in the trees are named
	// "[BOOT]/<entry>-<platform>.img".
	Path string
	// Offset and Size are the extent's bytes in the image.
	Offset, Size int64
}

// Files lists the file extents of the image in src (size bytes): every
// file of the primary directory tree and of each Joliet tree, and the El
// Torito boot images, sorted by offset (then larger extents first). Each
// distinct extent (offset and size) is listed once, under the first path
// found (trees walked in the order File.Path prefers their names);
// files without data (empty files, symbolic links, device nodes) and
// interleaved files are left out. A multi-extent file whose sections
// follow each other is one File; otherwise each section is a File of its
// own, all with the file's path.
//
// A boot image's size is its sector count (512-byte sectors) from the
// catalog, or, if the catalog says 0 or 1 sector (as for large EFI
// images), the size of the file whose extent starts at the same block. A
// boot image within a listed file extent that starts at its block is not
// listed again.
func Files(r io.ReaderAt, size int64) ([]File, error) {
	l, err := readLayout(r, size)
	if err != nil {
		return nil, err
	}
	return l.files, nil
}

// layout is what Split needs of an image.
type layout struct {
	files   []File
	catalog int64 // boot catalog offset, -1 if none
}

// volume is a directory tree's root, from a volume descriptor.
type volume struct {
	root   record
	joliet bool
}

func readLayout(r io.ReaderAt, size int64) (*layout, error) {
	var (
		primary  *volume
		joliets  []volume
		catBlock int64 = -1
		buf            = make([]byte, blockSize)
	)
	for i := 0; ; i++ {
		off := int64(descStart+i) * blockSize
		if i == maxDescriptors {
			return nil, fmt.Errorf("%w: no terminator in %d volume descriptors", errFormat, maxDescriptors)
		}
		if err := readFull(r, size, buf, off); err != nil {
			return nil, fmt.Errorf("iso9660: volume descriptor at %#x: %w", off, err)
		}
		if string(buf[1:6]) != string(cd001) {
			return nil, fmt.Errorf("%w: volume descriptor at %#x: no CD001", errFormat, off)
		}
		typ := buf[0]
		if typ == vdTerminator {
			break
		}
		switch typ {
		case vdBoot:
			id := buf[offBootSystem : offBootSystem+32]
			if string(id[:len(elTorito)]) == string(elTorito) && allZero(id[len(elTorito):]) {
				catBlock = int64(binary.LittleEndian.Uint32(buf[offCatalog:]))
			}
		case vdPrimary, vdSupplementary:
			joliet := typ == vdSupplementary && isJoliet(buf[offEscapes:offEscapes+32])
			if typ == vdSupplementary && !joliet || typ == vdPrimary && primary != nil {
				continue // ISO 9660:1999 enhanced trees, further primaries
			}
			if bs := binary.LittleEndian.Uint16(buf[offBlockSize:]); bs != blockSize {
				return nil, fmt.Errorf("%w: volume descriptor at %#x: logical block size %d, want %d", errFormat, off, bs, blockSize)
			}
			root, ok := parseRecord(buf[offRoot : offRoot+34])
			if !ok || root.flags&flagDir == 0 {
				return nil, fmt.Errorf("%w: volume descriptor at %#x: bad root directory record", errFormat, off)
			}
			v := volume{root: root, joliet: joliet}
			if joliet {
				joliets = append(joliets, v)
			} else {
				primary = &v
			}
		}
	}
	if primary == nil {
		return nil, fmt.Errorf("%w: no primary volume descriptor", errFormat)
	}

	w := newWalker(r, size)
	// The primary tree's Rock Ridge names are the real ones; without them
	// Joliet names are closer than ISO 9660 names.
	rr, err := w.hasRockRidge(primary.root)
	if err != nil {
		return nil, err
	}
	trees := append([]volume{*primary}, joliets...)
	if !rr.ok {
		trees = append(joliets, *primary)
	}
	for _, v := range trees {
		susp := -1
		if !v.joliet && rr.ok {
			susp = rr.skip
		}
		if err := w.walk(v.root, v.joliet, susp); err != nil {
			return nil, err
		}
	}

	l := &layout{catalog: -1}
	if catBlock >= 0 {
		l.catalog = catBlock * blockSize
		boots, err := w.bootImages(l.catalog)
		if err != nil {
			return nil, err
		}
		if err := w.addBoot(boots); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(w.files, func(a, b File) int {
		switch {
		case a.Offset != b.Offset:
			return cmp.Compare(a.Offset, b.Offset)
		case a.Size != b.Size:
			return cmp.Compare(b.Size, a.Size)
		}
		return 0
	})
	l.files = w.files
	return l, nil
}

// isJoliet reports whether a supplementary descriptor's escape sequences
// name UCS-2 (levels 1-3).
func isJoliet(esc []byte) bool {
	return esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E')
}

// record is a parsed directory record.
type record struct {
	block    int64 // first block of the data: extent plus extended attribute record
	size     int64
	flags    byte
	unitSize byte
	gap      byte
	name     []byte
	sys      []byte // system use field
}

func (d record) offset() int64 { return d.block * blockSize }

// parseRecord parses the directory record p, exactly its length.
func parseRecord(p []byte) (record, bool) {
	if len(p) < minRecord || int(p[drLen]) != len(p) {
		return record{}, false
	}
	n := int(p[drNameLen])
	if n == 0 || drName+n > len(p) {
		return record{}, false
	}
	le := binary.LittleEndian
	sys := drName + n
	if n%2 == 0 {
		sys++ // pad byte
	}
	d := record{
		block:    int64(le.Uint32(p[drExtent:])) + int64(p[drXAR]),
		size:     int64(le.Uint32(p[drSize:])),
		flags:    p[drFlags],
		unitSize: p[drUnitSize],
		gap:      p[drGap],
		name:     p[drName : drName+n],
	}
	if sys < len(p) {
		d.sys = p[sys:]
	}
	return d, true
}

// readFull reads len(p) bytes at off, which must lie within the image.
func readFull(r io.ReaderAt, size int64, p []byte, off int64) error {
	if off < 0 || off > size || int64(len(p)) > size-off {
		return errShort
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errShort
	}
	return err
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
