package iso9660

import (
	"encoding/binary"
	"fmt"
)

// El Torito boot catalog entries, 32 bytes each.
const (
	entrySize = 32

	catValidation = 0x01 // validation entry: header ID
	catBootable   = 0x88 // initial/default or section entry: boot indicator
	catNotBoot    = 0x00
	catHeader     = 0x90 // section header, more follow
	catLastHeader = 0x91 // final section header
	catExtension  = 0x44 // section entry extension

	// Media types (low nibble of byte 1) of a boot entry with a fixed
	// size; 0 is no emulation, 4 a hard disk.
	media12  = 1 // 1.2 MB diskette
	media144 = 2 // 1.44 MB diskette
	media288 = 3 // 2.88 MB diskette
	// entryContinues, in byte 1 of a section entry or extension, says an
	// extension entry follows.
	entryContinues = 0x20
)

// bootEntry is a boot image the catalog names.
type bootEntry struct {
	index    int // 0 for the default entry, then section entries in order
	platform byte
	media    byte
	block    int64
	sectors  int64 // 512-byte sectors
}

// bootImages reads the boot catalog at off.
func (w *walker) bootImages(off int64) ([]bootEntry, error) {
	var e [entrySize]byte
	read := func(i int) ([]byte, error) {
		if i >= maxCatalogEntries {
			return nil, fmt.Errorf("%w: boot catalog at %#x: more than %d entries", errFormat, off, maxCatalogEntries)
		}
		if err := readFull(w.r, w.size, e[:], off+int64(i)*entrySize); err != nil {
			return nil, fmt.Errorf("iso9660: boot catalog at %#x, entry %d: %w", off, i, err)
		}
		return e[:], nil
	}
	v, err := read(0)
	if err != nil {
		return nil, err
	}
	var sum uint16
	for i := 0; i < entrySize; i += 2 {
		sum += binary.LittleEndian.Uint16(v[i:])
	}
	if v[0] != catValidation || v[30] != 0x55 || v[31] != 0xaa || sum != 0 {
		return nil, fmt.Errorf("%w: boot catalog at %#x: bad validation entry", errFormat, off)
	}
	platform := v[1]

	var boots []bootEntry
	add := func(platform byte, p []byte) error {
		if p[0] != catBootable && p[0] != catNotBoot {
			return fmt.Errorf("%w: boot catalog at %#x: entry %d has boot indicator %#x", errFormat, off, len(boots), p[0])
		}
		b := bootEntry{
			index:    len(boots),
			platform: platform,
			media:    p[1] & 0x0f,
			sectors:  int64(binary.LittleEndian.Uint16(p[6:])),
			block:    int64(binary.LittleEndian.Uint32(p[8:])),
		}
		if b.block != 0 {
			boots = append(boots, b)
		}
		return nil
	}
	d, err := read(1)
	if err != nil {
		return nil, err
	}
	if err := add(platform, d); err != nil {
		return nil, err
	}
	for i := 2; ; {
		h, err := read(i)
		if err != nil {
			return nil, err
		}
		if h[0] != catHeader && h[0] != catLastHeader {
			return boots, nil // no (more) sections
		}
		last, platform, n := h[0] == catLastHeader, h[1], int(binary.LittleEndian.Uint16(h[2:]))
		i++
		for range n {
			s, err := read(i)
			if err != nil {
				return nil, err
			}
			i++
			if err := add(platform, s); err != nil {
				return nil, err
			}
			for more := s[1]&entryContinues != 0; more; i++ {
				x, err := read(i)
				if err != nil {
					return nil, err
				}
				if x[0] != catExtension {
					return nil, fmt.Errorf("%w: boot catalog at %#x: entry %d is no extension", errFormat, off, i)
				}
				more = x[1]&entryContinues != 0
			}
		}
		if last {
			return boots, nil
		}
	}
}

// addBoot adds the boot images not within a file extent starting at the
// same block.
func (w *walker) addBoot(boots []bootEntry) error {
	fileAt := map[int64]int64{} // offset: the largest file extent there
	for _, f := range w.files {
		fileAt[f.Offset] = max(fileAt[f.Offset], f.Size)
	}
	for _, b := range boots {
		off := b.block * blockSize
		n := b.sectors * 512
		switch b.media {
		case media12:
			n = 1200 << 10
		case media144:
			n = 1440 << 10
		case media288:
			n = 2880 << 10
		default:
			if b.sectors <= 1 && fileAt[off] > 0 {
				n = fileAt[off]
			}
		}
		if n == 0 || fileAt[off] >= n {
			continue
		}
		path := fmt.Sprintf("[BOOT]/%d-%s.img", b.index, platformName(b.platform))
		if err := w.add(path, section{off, n}); err != nil {
			return fmt.Errorf("iso9660: El Torito: %w", err)
		}
	}
	return nil
}

func platformName(p byte) string {
	switch p {
	case 0:
		return "BIOS"
	case 1:
		return "PPC"
	case 2:
		return "Mac"
	case 0xef:
		return "UEFI"
	}
	return fmt.Sprintf("%02x", p)
}
