package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Inode types.
const (
	typeDir      = 1
	typeFile     = 2
	typeSymlink  = 3
	typeBlkDev   = 4
	typeChrDev   = 5
	typeFifo     = 6
	typeSocket   = 7
	typeLDir     = 8
	typeLFile    = 9
	typeLSymlink = 10
	typeLBlkDev  = 11
	typeLChrDev  = 12
	typeLFifo    = 13
	typeLSocket  = 14
)

// metaReader reads a table of metadata blocks as one stream.
type metaReader struct {
	im       *Image
	pos, end uint64 // next block on disk; the table's end
	buf      []byte // current block, decompressed
	off      int    // read position in buf
	total    int64  // bytes decompressed so far
	limit    int64
}

// fill makes at least one unread byte available.
func (m *metaReader) fill() error {
	for m.off == len(m.buf) {
		if m.pos >= m.end {
			return fmt.Errorf("%w: table ends at %#x in the middle of an inode", ErrFormat, m.end)
		}
		blk, next, err := m.im.readMeta(m.pos, m.end)
		if err != nil {
			return err
		}
		m.total += int64(len(blk))
		if m.total > m.limit {
			return fmt.Errorf("%w: table holds more than %d bytes", ErrFormat, m.limit)
		}
		m.buf, m.off, m.pos = blk, 0, next
	}
	return nil
}

// read fills p from the stream.
func (m *metaReader) read(p []byte) error {
	for len(p) > 0 {
		if err := m.fill(); err != nil {
			return err
		}
		n := copy(p, m.buf[m.off:])
		m.off += n
		p = p[n:]
	}
	return nil
}

// skip discards n bytes of the stream.
func (m *metaReader) skip(n int64) error {
	for n > 0 {
		if err := m.fill(); err != nil {
			return err
		}
		k := min(n, int64(len(m.buf)-m.off))
		m.off += int(k)
		n -= k
	}
	return nil
}

// u32 reads one little-endian u32.
func (m *metaReader) u32() (uint32, error) {
	var b [4]byte
	err := m.read(b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}

// done reports whether the whole table has been read.
func (m *metaReader) done() bool { return m.off == len(m.buf) && m.pos == m.end }

// readInodes walks the inode table in [start, end) and records every
// regular file.
func (im *Image) readInodes(start, end uint64) error {
	m := &metaReader{im: im, pos: start, end: end, limit: maxInodeTable}
	le := binary.LittleEndian
	var buf [40]byte
	for i := uint32(0); i < im.inodes; i++ {
		at := m.total - int64(len(m.buf)-m.off) // inode's offset in the table
		if err := m.read(buf[:inodeHeader]); err != nil {
			return fmt.Errorf("squashfs: inode %d of %d at table offset %#x: %w", i, im.inodes, at, err)
		}
		typ := le.Uint16(buf[:])
		num := le.Uint32(buf[12:])
		if err := im.readInode(m, typ, num, buf[:]); err != nil {
			return fmt.Errorf("squashfs: inode %d (number %d, type %d) at table offset %#x: %w", i, num, typ, at, err)
		}
	}
	if !m.done() {
		return fmt.Errorf("%w: inode table has bytes after %d inodes", ErrFormat, im.inodes)
	}
	return nil
}

// readInode reads the body of an inode of type typ, whose header m has
// just read; buf is scratch space of 40 bytes.
func (im *Image) readInode(m *metaReader, typ uint16, num uint32, buf []byte) error {
	le := binary.LittleEndian
	switch typ {
	case typeFile:
		if err := m.read(buf[:16]); err != nil {
			return err
		}
		return im.addFile(m, num, uint64(le.Uint32(buf)), uint64(le.Uint32(buf[12:])), le.Uint32(buf[4:]), le.Uint32(buf[8:]))
	case typeLFile:
		if err := m.read(buf[:40]); err != nil {
			return err
		}
		return im.addFile(m, num, le.Uint64(buf), le.Uint64(buf[8:]), le.Uint32(buf[28:]), le.Uint32(buf[32:]))
	case typeDir:
		return m.skip(16)
	case typeLDir:
		// nlink u32, file_size u32, start u32, parent u32, i_count u16,
		// offset u16, xattr u32; then i_count index entries: index u32,
		// start u32, size u32, name[size+1].
		if err := m.read(buf[:24]); err != nil {
			return err
		}
		for n := le.Uint16(buf[16:]); n > 0; n-- {
			if err := m.read(buf[:12]); err != nil {
				return err
			}
			size := le.Uint32(buf[8:])
			if size >= maxNameSize {
				return fmt.Errorf("%w: directory index name of %d bytes", ErrFormat, size+1)
			}
			if err := m.skip(int64(size) + 1); err != nil {
				return err
			}
		}
		return nil
	case typeSymlink, typeLSymlink:
		// nlink u32, target size u32, target; extended: xattr u32.
		if err := m.read(buf[:8]); err != nil {
			return err
		}
		size := le.Uint32(buf[4:])
		if size > maxSymlinkSize {
			return fmt.Errorf("%w: symlink target of %d bytes", ErrFormat, size)
		}
		if typ == typeLSymlink {
			size += 4
		}
		return m.skip(int64(size))
	case typeBlkDev, typeChrDev:
		return m.skip(8) // nlink, rdev
	case typeLBlkDev, typeLChrDev:
		return m.skip(12) // nlink, rdev, xattr
	case typeFifo, typeSocket:
		return m.skip(4) // nlink
	case typeLFifo, typeLSocket:
		return m.skip(8) // nlink, xattr
	}
	return fmt.Errorf("%w: unknown inode type", ErrFormat)
}

// addFile records a regular file and reads its block list from m.
func (im *Image) addFile(m *metaReader, num uint32, start, size uint64, frag, fragOff uint32) error {
	if size > maxViewSize || uint64(im.size) > maxViewSize-size {
		return fmt.Errorf("%w: file size %d makes the files exceed %d bytes", ErrFormat, size, int64(maxViewSize))
	}
	bs := uint64(im.blockSize)
	nblocks := size / bs
	tail := size % bs
	if frag == noFragment {
		if tail > 0 {
			nblocks++
		}
		fragOff = 0
	} else {
		if uint64(frag) >= uint64(len(im.frags)) {
			return fmt.Errorf("%w: fragment %d of %d", ErrFormat, frag, len(im.frags))
		}
		if uint64(fragOff)+tail > bs {
			return fmt.Errorf("%w: tail of %d bytes at offset %d of a fragment block", ErrFormat, tail, fragOff)
		}
	}
	f := file{inode: num, off: im.size, size: int64(size), first: len(im.blockAt), nblocks: int64(nblocks), frag: frag, fragOff: fragOff}
	pos := start
	for j := uint64(0); j < nblocks; j++ {
		// The list is in the table, so it is as long as the table backs
		// it: nblocks is not trusted for allocation.
		word, err := m.u32()
		if err != nil {
			return fmt.Errorf("block list entry %d of %d: %w", j, nblocks, err)
		}
		next, err := im.checkBlock(pos, word)
		if err != nil {
			return fmt.Errorf("block %d: %w", j, err)
		}
		im.blockAt = append(im.blockAt, pos)
		im.blockWord = append(im.blockWord, word)
		pos = next
	}
	im.files = append(im.files, f)
	im.size += int64(size)
	return nil
}
