// Package qcow2 splits qcow2 disk images (QEMU's copy-on-write format,
// docs/interop/qcow2.rst in the QEMU tree) into content and a recipe for
// package formats.
//
// A qcow2 file is a sequence of host clusters of 2^cluster_bits bytes.
// Cluster 0 holds the header; the others hold metadata (L1 and L2 tables,
// the refcount table and refcount blocks, the snapshot table) or guest data,
// either stored as is (a standard cluster) or deflate-compressed (a
// compressed cluster: a byte-granular stream, packed back to back with its
// neighbours by qemu). Split walks the tables to learn what every host
// cluster is, then describes the file in order:
//
//   - metadata and bytes nothing references: verbatim, long zero runs as zero
//   - standard data clusters: content
//   - compressed clusters: one deflate piece per compressed cluster, which
//     package formats re-creates on assembly (or keeps verbatim when zlib
//     does not re-create it exactly)
//
// The files are organised as the spec is: header.go the header and its
// extensions, layout.go the tables that map host clusters, split.go the
// description of the file.
package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

const magic = "QFI\xfb"

// Header sizes: version 2's fixed header, and version 3's minimum
// header_length.
const (
	headerV2Len = 72
	headerV3Len = 104
)

// Cluster sizes qemu accepts (512 B .. 2 MiB).
const (
	minClusterBits = 9
	maxClusterBits = 21
)

// Incompatible feature bits (version 3).
const (
	incompatDirty        = 1 << 0
	incompatCorrupt      = 1 << 1
	incompatExternalData = 1 << 2
	incompatCompression  = 1 << 3
	incompatExtendedL2   = 1 << 4
	incompatKnown        = incompatDirty | incompatCorrupt | incompatExternalData | incompatCompression | incompatExtendedL2
)

// Compression types (header byte 104).
const (
	compressionDeflate = 0
	compressionZstd    = 1
)

// Header extension types.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureNames  = 0x6803f857
	extBitmaps       = 0x23852875
	extCrypto        = 0x0537be77
	extDataFile      = 0x44415441
)

// Limits, as qemu enforces them: they bound what a hostile header can make
// Split allocate or read.
const (
	maxBackingNameLen  = 1023
	maxL1Bytes         = 32 << 20 // QCOW_MAX_L1_SIZE
	maxRefTableBytes   = 8 << 20  // QCOW_MAX_REFTABLE_SIZE
	maxSnapshots       = 65536    // QCOW_MAX_SNAPSHOTS
	maxSnapshotTable   = 64 << 20 // QCOW_MAX_SNAPSHOTS_SIZE
	maxSnapshotExtra   = 1024     // QCOW_MAX_SNAPSHOT_EXTRA_DATA
	snapshotHeaderSize = 40
)

// header is the qcow2 header (all fields big-endian on disk).
type header struct {
	version          uint32
	backingOffset    uint64 // backing file name, in the header cluster
	backingSize      uint32
	clusterBits      uint32
	size             uint64 // virtual disk size
	cryptMethod      uint32 // 0 none, 1 AES, 2 LUKS
	l1Size           uint32 // entries in the active L1 table
	l1Offset         uint64
	refTableOffset   uint64
	refTableClusters uint32
	nbSnapshots      uint32
	snapshotsOffset  uint64

	// Version 3 fields; version 2 images read as 0 features,
	// refcount_order 4 and a 72-byte header.
	incompatible    uint64
	compatible      uint64
	autoclear       uint64
	refcountOrder   uint32
	headerLength    uint32
	compressionType uint8

	extensions   []extension
	featureNames map[feature]string // from the feature name table
}

// extension is one header extension: its type and where its data lies.
type extension struct {
	typ      uint32
	off, len int64
}

// feature names a feature bit: kind 0 incompatible, 1 compatible,
// 2 autoclear.
type feature struct{ kind, bit uint8 }

func (h *header) clusterSize() int64 { return 1 << h.clusterBits }

// extendedL2 reports 16-byte L2 entries (an 8-byte descriptor followed by
// an 8-byte subcluster bitmap).
func (h *header) extendedL2() bool { return h.incompatible&incompatExtendedL2 != 0 }

// externalData reports that guest data lives in an external data file, so
// L2 entries do not point into this file.
func (h *header) externalData() bool { return h.incompatible&incompatExternalData != 0 }

// Detect reports whether header (the file's first bytes) starts a qcow2
// image: the magic QFI\xfb followed by version 2 or 3.
func Detect(header []byte) bool {
	if len(header) < 8 || string(header[:4]) != magic {
		return false
	}
	v := binary.BigEndian.Uint32(header[4:])
	return v == 2 || v == 3
}

// readHeader reads and checks the header and its extensions.
func readHeader(src io.ReaderAt, size int64) (*header, error) {
	var fixed [headerV3Len]byte
	if size < headerV2Len {
		return nil, fmt.Errorf("qcow2: file of %d bytes is too short for a header", size)
	}
	n := min(int64(len(fixed)), size)
	if err := readAt(src, fixed[:n], 0); err != nil {
		return nil, fmt.Errorf("qcow2: reading the header: %w", err)
	}
	if !Detect(fixed[:n]) {
		return nil, fmt.Errorf("qcow2: not a qcow2 image (bad magic or version)")
	}
	be := binary.BigEndian
	h := &header{
		version:          be.Uint32(fixed[4:]),
		backingOffset:    be.Uint64(fixed[8:]),
		backingSize:      be.Uint32(fixed[16:]),
		clusterBits:      be.Uint32(fixed[20:]),
		size:             be.Uint64(fixed[24:]),
		cryptMethod:      be.Uint32(fixed[32:]),
		l1Size:           be.Uint32(fixed[36:]),
		l1Offset:         be.Uint64(fixed[40:]),
		refTableOffset:   be.Uint64(fixed[48:]),
		refTableClusters: be.Uint32(fixed[56:]),
		nbSnapshots:      be.Uint32(fixed[60:]),
		snapshotsOffset:  be.Uint64(fixed[64:]),
		refcountOrder:    4,
		headerLength:     headerV2Len,
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, fmt.Errorf("qcow2: cluster_bits %d out of range %d..%d", h.clusterBits, minClusterBits, maxClusterBits)
	}
	cs := h.clusterSize()
	if h.version >= 3 {
		if n < headerV3Len {
			return nil, fmt.Errorf("qcow2: file of %d bytes is too short for a version 3 header", size)
		}
		h.incompatible = be.Uint64(fixed[72:])
		h.compatible = be.Uint64(fixed[80:])
		h.autoclear = be.Uint64(fixed[88:])
		h.refcountOrder = be.Uint32(fixed[96:])
		h.headerLength = be.Uint32(fixed[100:])
		if h.headerLength < headerV3Len || h.headerLength%8 != 0 || int64(h.headerLength) > min(cs, size) {
			return nil, fmt.Errorf("qcow2: header_length %d invalid (cluster size %d, file size %d)", h.headerLength, cs, size)
		}
	}
	if h.refcountOrder > 6 {
		return nil, fmt.Errorf("qcow2: refcount_order %d out of range 0..6", h.refcountOrder)
	}
	if h.cryptMethod > 2 {
		return nil, fmt.Errorf("qcow2: unknown crypt_method %d", h.cryptMethod)
	}

	// The rest of the header cluster: compression type, extensions,
	// backing file name.
	first := make([]byte, min(cs, size))
	if err := readAt(src, first, 0); err != nil {
		return nil, fmt.Errorf("qcow2: reading the header cluster: %w", err)
	}
	if h.headerLength > headerV3Len {
		h.compressionType = first[headerV3Len]
	}
	switch {
	case h.compressionType > compressionZstd:
		return nil, fmt.Errorf("qcow2: unknown compression_type %d", h.compressionType)
	case (h.compressionType != compressionDeflate) != (h.incompatible&incompatCompression != 0):
		return nil, fmt.Errorf("qcow2: compression_type %d disagrees with incompatible feature bit 3", h.compressionType)
	}
	if err := h.readExtensions(first); err != nil {
		return nil, err
	}
	if unknown := h.incompatible &^ incompatKnown; unknown != 0 {
		var names []string
		for bit := uint8(0); bit < 64; bit++ {
			if unknown&(1<<bit) != 0 {
				name := h.featureNames[feature{0, bit}]
				names = append(names, fmt.Sprintf("bit %d %q", bit, name))
			}
		}
		return nil, fmt.Errorf("qcow2: unsupported incompatible features: %s", strings.Join(names, ", "))
	}
	if h.backingOffset != 0 {
		if h.backingSize > maxBackingNameLen || h.backingOffset+uint64(h.backingSize) > uint64(len(first)) {
			return nil, fmt.Errorf("qcow2: backing file name (%d bytes at %#x) not inside the header cluster", h.backingSize, h.backingOffset)
		}
	}
	return h, nil
}

// readExtensions parses the header extensions that follow the header in
// the header cluster: each is a 4-byte type, a 4-byte length and the data,
// padded to 8 bytes; type 0 ends the list. They end at the backing file
// name if there is one, else at the end of the cluster.
func (h *header) readExtensions(first []byte) error {
	end := int64(len(first))
	if h.backingOffset != 0 && h.backingOffset < uint64(end) {
		end = int64(h.backingOffset)
	}
	be := binary.BigEndian
	off := int64(h.headerLength)
	for off+8 <= end {
		typ, n := be.Uint32(first[off:]), int64(be.Uint32(first[off+4:]))
		off += 8
		if typ == extEnd {
			return nil
		}
		if n > end-off {
			return fmt.Errorf("qcow2: header extension %#x at %#x: %d bytes run past %#x", typ, off-8, n, end)
		}
		h.extensions = append(h.extensions, extension{typ: typ, off: off, len: n})
		if typ == extFeatureNames {
			h.readFeatureNames(first[off : off+n])
		}
		off += (n + 7) &^ 7
	}
	// qemu accepts a list that runs into the end without a terminator.
	return nil
}

// readFeatureNames reads the feature name table: 48-byte entries of a type
// (0 incompatible, 1 compatible, 2 autoclear), a bit number and a
// NUL-padded name.
func (h *header) readFeatureNames(p []byte) {
	if h.featureNames == nil {
		h.featureNames = map[feature]string{}
	}
	for ; len(p) >= 48; p = p[48:] {
		name := p[2:48]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		h.featureNames[feature{p[0], p[1]}] = string(name)
	}
}

// readAt fills p from src at off; reaching the end of src exactly as p
// fills is not an error.
func readAt(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
