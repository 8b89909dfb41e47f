package qcow2

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// owner is what a host cluster holds.
type owner uint8

const (
	unused owner = iota
	ownHeader
	ownRefTable
	ownRefBlock
	ownSnapshotTable
	ownL1
	ownL2
	ownData       // a standard (uncompressed) data cluster
	ownCompressed // compressed clusters' streams, packed back to back
)

var ownerNames = [...]string{
	unused:           "unused space",
	ownHeader:        "the header cluster",
	ownRefTable:      "the refcount table",
	ownRefBlock:      "a refcount block",
	ownSnapshotTable: "the snapshot table",
	ownL1:            "an L1 table",
	ownL2:            "an L2 table",
	ownData:          "a data cluster",
	ownCompressed:    "compressed data",
}

func (o owner) String() string { return ownerNames[o] }

// Masks of the table entries (qcow2.rst, "Cluster mapping" and "Host
// cluster management").
const (
	refTableOffsetMask = 0xffff_ffff_ffff_fe00 // refcount table entry: bits 9..63
	l1OffsetMask       = 0x00ff_ffff_ffff_fe00 // L1 entry: bits 9..55
	l2OffsetMask       = 0x00ff_ffff_ffff_fe00 // standard cluster descriptor: bits 9..55
	l2Compressed       = 1 << 62               // L2 entry: compressed cluster
	maxHostOffset      = 1<<56 - 1             // compressed descriptor offsets stay below bit 56
)

// piece is one compressed cluster's stream: it starts at off and, by its
// descriptor, lies within [off, end) (the descriptor counts 512-byte
// sectors, so end is an upper bound, not the stream's length).
type piece struct{ off, end int64 }

// table is an L1 table: where it lies and how many entries it has.
type table struct {
	off     int64
	entries int64
	what    string // for messages: "the active L1 table", "snapshot 3's L1 table"
}

// layout maps every host cluster of a qcow2 file to what it holds.
type layout struct {
	src         io.ReaderAt
	size        int64 // file size
	h           *header
	clusterBits uint
	clusterSize int64
	owners      []owner // one per host cluster, the last one possibly partial
	l1s         []table
	l2s         []int64 // L2 table offsets, each once
	pieces      []piece // compressed clusters, sorted by offset, each once
}

// readLayout reads the header and every table of the image in src and
// assigns each host cluster an owner. A cluster claimed twice by different
// structures (or two structures of a kind that must not share) is an error:
// the file is corrupt or hostile. Total reads are bounded by the file size:
// every table read is first claimed, and a cluster can be claimed only once.
func readLayout(src io.ReaderAt, size int64) (*layout, error) {
	h, err := readHeader(src, size)
	if err != nil {
		return nil, err
	}
	l := &layout{
		src:         src,
		size:        size,
		h:           h,
		clusterBits: uint(h.clusterBits),
		clusterSize: h.clusterSize(),
	}
	l.owners = make([]owner, (size+l.clusterSize-1)>>l.clusterBits)
	l.owners[0] = ownHeader
	steps := []func() error{
		l.readRefcounts,
		l.readActiveL1,
		l.readSnapshots,
		l.readL1s,
		l.readL2s,
		l.placePieces,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// claim marks the clusters holding [off, off+n) as o. It fails if the range
// is not inside the file or meets a cluster another structure owns; the
// error says what it meets, the caller says what was claimed. Data and
// compressed clusters may be claimed again by their kind (snapshots share
// them).
func (l *layout) claim(off, n int64, o owner) error {
	if off < 0 || n < 0 || off > l.size || n > l.size-off {
		return fmt.Errorf("%d bytes run past the end of the file (%d bytes)", n, l.size)
	}
	if n == 0 {
		return nil
	}
	for c := off >> l.clusterBits; c <= (off+n-1)>>l.clusterBits; c++ {
		switch have := l.owners[c]; {
		case have == unused:
			l.owners[c] = o
		case have == o && (o == ownData || o == ownCompressed):
		default:
			return fmt.Errorf("overlaps %s at %#x", have, c<<l.clusterBits)
		}
	}
	return nil
}

// aligned checks that a table offset is cluster-aligned.
func (l *layout) aligned(off uint64, what string) error {
	if off&uint64(l.clusterSize-1) != 0 {
		return fmt.Errorf("qcow2: %s at %#x is not cluster-aligned", what, off)
	}
	if off > uint64(l.size) {
		return fmt.Errorf("qcow2: %s at %#x lies beyond the end of the file (%d bytes)", what, off, l.size)
	}
	return nil
}

// readTable reads n bytes of a claimed table at off.
func (l *layout) readTable(off, n int64, what string) ([]byte, error) {
	p := make([]byte, n)
	if err := readAt(l.src, p, off); err != nil {
		return nil, fmt.Errorf("qcow2: reading %s at %#x: %w", what, off, err)
	}
	return p, nil
}

// readRefcounts claims the refcount table and the refcount blocks it lists
// (one cluster each; entry bits 9..63 give the offset, 0 = none).
func (l *layout) readRefcounts() error {
	h := l.h
	const what = "refcount table"
	if h.refTableClusters == 0 {
		return fmt.Errorf("qcow2: the image has no refcount table")
	}
	if int64(h.refTableClusters) > maxRefTableBytes>>l.clusterBits {
		return fmt.Errorf("qcow2: refcount table of %d clusters exceeds %d bytes", h.refTableClusters, maxRefTableBytes)
	}
	if err := l.aligned(h.refTableOffset, what); err != nil {
		return err
	}
	off, n := int64(h.refTableOffset), int64(h.refTableClusters)<<l.clusterBits
	if err := l.claim(off, n, ownRefTable); err != nil {
		return fmt.Errorf("qcow2: refcount table at %#x: %w", off, err)
	}
	t, err := l.readTable(off, n, what)
	if err != nil {
		return err
	}
	for i := 0; i < len(t); i += 8 {
		e := binary.BigEndian.Uint64(t[i:])
		block := e & refTableOffsetMask
		if block == 0 {
			continue
		}
		if block&uint64(l.clusterSize-1) != 0 {
			return fmt.Errorf("qcow2: refcount table at %#x: entry %d: refcount block at %#x is not cluster-aligned", off, i/8, block)
		}
		if err := l.claim(int64(block), l.clusterSize, ownRefBlock); err != nil {
			return fmt.Errorf("qcow2: refcount table at %#x: entry %d: refcount block at %#x: %w", off, i/8, block, err)
		}
	}
	return nil
}

// readSnapshots claims the snapshot table and notes each snapshot's L1
// table. An entry is 40 bytes (L1 offset, L1 size, id and name lengths,
// dates, vm state size, extra data size), then the extra data, id and name,
// padded to 8 bytes.
func (l *layout) readSnapshots() error {
	h := l.h
	if h.nbSnapshots == 0 {
		return nil
	}
	if h.nbSnapshots > maxSnapshots {
		return fmt.Errorf("qcow2: %d snapshots exceed the limit of %d", h.nbSnapshots, maxSnapshots)
	}
	if err := l.aligned(h.snapshotsOffset, "snapshot table"); err != nil {
		return err
	}
	be := binary.BigEndian
	start := int64(h.snapshotsOffset)
	off := start
	var e [snapshotHeaderSize]byte
	for i := 0; i < int(h.nbSnapshots); i++ {
		if off+snapshotHeaderSize > l.size {
			return fmt.Errorf("qcow2: snapshot table at %#x: entry %d runs past the end of the file", start, i)
		}
		if err := readAt(l.src, e[:], off); err != nil {
			return fmt.Errorf("qcow2: snapshot table at %#x: entry %d: %w", start, i, err)
		}
		l1Off, l1Size := be.Uint64(e[0:]), be.Uint32(e[8:])
		idLen, nameLen := int64(be.Uint16(e[12:])), int64(be.Uint16(e[14:]))
		extra := int64(be.Uint32(e[36:]))
		if extra > maxSnapshotExtra {
			return fmt.Errorf("qcow2: snapshot table at %#x: entry %d: %d bytes of extra data exceed %d", start, i, extra, maxSnapshotExtra)
		}
		off += (snapshotHeaderSize + extra + idLen + nameLen + 7) &^ 7
		if off-start > maxSnapshotTable {
			return fmt.Errorf("qcow2: snapshot table at %#x exceeds %d bytes", start, maxSnapshotTable)
		}
		what := fmt.Sprintf("snapshot %d's L1 table", i)
		if err := l.addL1(l1Off, l1Size, what); err != nil {
			return err
		}
	}
	if err := l.claim(start, off-start, ownSnapshotTable); err != nil {
		return fmt.Errorf("qcow2: snapshot table at %#x: %w", start, err)
	}
	return nil
}

// readActiveL1 notes the active L1 table.
func (l *layout) readActiveL1() error {
	return l.addL1(l.h.l1Offset, l.h.l1Size, "the active L1 table")
}

// addL1 checks an L1 table's place and size and notes it.
func (l *layout) addL1(off uint64, entries uint32, what string) error {
	if entries == 0 {
		return nil
	}
	if int64(entries) > maxL1Bytes/8 {
		return fmt.Errorf("qcow2: %s has %d entries, more than the limit of %d", what, entries, maxL1Bytes/8)
	}
	if err := l.aligned(off, what); err != nil {
		return err
	}
	l.l1s = append(l.l1s, table{off: int64(off), entries: int64(entries), what: what})
	return nil
}

// readL1s claims every L1 table, then reads them and claims the L2 tables
// they point to (L1 entry bits 9..55, 0 = none; one cluster each). Several
// L1 tables (snapshots) may share an L2 table; each is listed once.
func (l *layout) readL1s() error {
	for _, t := range l.l1s {
		if err := l.claim(t.off, t.entries*8, ownL1); err != nil {
			return fmt.Errorf("qcow2: %s at %#x: %w", t.what, t.off, err)
		}
	}
	for _, t := range l.l1s {
		p, err := l.readTable(t.off, t.entries*8, t.what)
		if err != nil {
			return err
		}
		for i := int64(0); i < t.entries; i++ {
			off := binary.BigEndian.Uint64(p[i*8:]) & l1OffsetMask
			if off == 0 {
				continue
			}
			if off&uint64(l.clusterSize-1) != 0 || off+uint64(l.clusterSize) > uint64(l.size) {
				return fmt.Errorf("qcow2: %s at %#x: entry %d: L2 table at %#x is not a cluster-aligned cluster inside the file", t.what, t.off, i, off)
			}
			if l.owners[off>>l.clusterBits] == ownL2 {
				continue // shared with another L1 table
			}
			if err := l.claim(int64(off), l.clusterSize, ownL2); err != nil {
				return fmt.Errorf("qcow2: %s at %#x: entry %d: L2 table at %#x: %w", t.what, t.off, i, off, err)
			}
			l.l2s = append(l.l2s, int64(off))
		}
	}
	sort.Slice(l.l2s, func(i, j int) bool { return l.l2s[i] < l.l2s[j] })
	return nil
}

// readL2s reads each L2 table and claims the standard data clusters it maps;
// compressed clusters are noted and placed by placePieces.
//
// An L2 entry is 8 bytes, or 16 with extended L2 (the descriptor followed by
// a subcluster bitmap, which does not change where data lies). Bit 62 marks
// a compressed cluster, whose descriptor is x = 62 - (cluster_bits - 8) bits
// of byte offset, then the number of additional 512-byte sectors. Otherwise
// bits 9..55 are the host offset of a standard cluster (0 = unallocated;
// bit 0 = reads as zeros, but a preallocated cluster is still there).
func (l *layout) readL2s() error {
	be := binary.BigEndian
	stride := int64(8)
	if l.h.extendedL2() {
		stride = 16
	}
	x := 62 - (l.clusterBits - 8)
	offMask := (uint64(1)<<x - 1) & maxHostOffset
	sectorsMask := uint64(1)<<(l.clusterBits-8) - 1
	buf := make([]byte, l.clusterSize)
	for _, t := range l.l2s {
		if err := readAt(l.src, buf, t); err != nil {
			return fmt.Errorf("qcow2: reading L2 table at %#x: %w", t, err)
		}
		last := piece{off: -1}
		for i := int64(0); i < l.clusterSize; i += stride {
			e := be.Uint64(buf[i:])
			if e&l2Compressed != 0 {
				if l.h.externalData() {
					return fmt.Errorf("qcow2: L2 table at %#x: entry %d: compressed cluster in an image with an external data file", t, i/stride)
				}
				off := e & offMask
				sectors := (e>>x)&sectorsMask + 1
				p := piece{off: int64(off), end: int64(off&^511 + sectors*512)}
				if p.off >= l.size || p == last {
					continue // nothing of it in the file, or the same as the entry before
				}
				l.pieces = append(l.pieces, p)
				last = p
				continue
			}
			off := e & l2OffsetMask
			if off == 0 || l.h.externalData() {
				continue
			}
			if off&uint64(l.clusterSize-1) != 0 {
				return fmt.Errorf("qcow2: L2 table at %#x: entry %d: data cluster offset %#x is not cluster-aligned", t, i/stride, off)
			}
			if off >= uint64(l.size) {
				continue // past the end of the file: nothing to describe
			}
			n := min(l.clusterSize, l.size-int64(off))
			if err := l.claim(int64(off), n, ownData); err != nil {
				return fmt.Errorf("qcow2: L2 table at %#x: entry %d: data cluster at %#x: %w", t, i/stride, off, err)
			}
		}
	}
	return nil
}

// placePieces sorts the compressed clusters by offset and claims the host
// clusters they lie in. A stream may continue into the next host cluster,
// so a piece claims every cluster up to its descriptor's end; where that
// reaches a cluster owned by something else (possible only with a sloppy
// sector count), the piece is cut there instead of failing.
func (l *layout) placePieces() error {
	p := l.pieces
	sort.Slice(p, func(i, j int) bool {
		if p[i].off != p[j].off {
			return p[i].off < p[j].off
		}
		return p[i].end > p[j].end
	})
	out := p[:0]
	for _, q := range p {
		if len(out) > 0 && out[len(out)-1].off == q.off {
			continue // shared by several L2 entries; the longest bound is first
		}
		q.end = min(q.end, l.size)
		first := q.off >> l.clusterBits
		switch l.owners[first] {
		case unused, ownCompressed:
			l.owners[first] = ownCompressed
		default:
			return fmt.Errorf("qcow2: compressed cluster at %#x: overlaps %s at %#x", q.off, l.owners[first], first<<l.clusterBits)
		}
		for c := first + 1; c<<l.clusterBits < q.end; c++ {
			if l.owners[c] == unused {
				l.owners[c] = ownCompressed
			} else if l.owners[c] != ownCompressed {
				q.end = c << l.clusterBits
				break
			}
		}
		out = append(out, q)
	}
	l.pieces = out
	return nil
}
