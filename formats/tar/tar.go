// Package tar lists the members of tar archives (ustar, pax, GNU and old
// GNU, v7) and splits an archive into a content stream and a recipe for
// package formats.
//
// The layout, after POSIX.1-2017 pax ("ustar Interchange Format" and "pax
// Extended Header"), the GNU tar manual ("Basic Tar Format", "GNU
// extensions", "Sparse Formats") and Go's archive/tar. An archive is a
// sequence of 512-byte blocks:
//
//	header block   one per entry, fields ASCII; numbers octal, NUL- or
//	               space-terminated, or (GNU) base-256: the first byte's
//	               high bit set, the rest big-endian two's complement
//	                 0 name[100]   100 mode[8]    108 uid[8]     116 gid[8]
//	               124 size[12]    136 mtime[12]  148 chksum[8]  156 typeflag
//	               157 linkname[100]              257 magic[6]   263 version[2]
//	               265 uname[32]   297 gname[32]  329 devmajor[8] 337 devminor[8]
//	               ustar: 345 prefix[155] (name = prefix "/" name)
//	               old GNU: 345 atime, 357 ctime, 369 offset, 381 longnames,
//	                 386 sparse[4] (offset[12], numbytes[12]),
//	                 482 isextended, 483 realsize[12]
//	               chksum: the sum of the block's bytes, the chksum field
//	               counted as spaces (some old writers summed signed bytes)
//	               magic: "ustar\x00" "00" (POSIX), "ustar " " \x00" (GNU),
//	               none (v7)
//	data           size bytes, zero-padded to a block, for every entry but
//	               links, devices, directories and FIFOs (typeflags 1-6)
//	end            two zero blocks, then zeros to the end of a record
//	               (GNU tar writes 20-block records)
//
// Entries that describe the next one: pax extended headers ('x': records
// "len key=value\n"; "path", "size" and GNU's "GNU.sparse.*" matter here),
// pax global headers ('g'), GNU long names ('L') and long link names
// ('K'). A GNU sparse member ('S') stores only the non-hole fragments of a
// file: its header holds the first four map entries (where each fragment
// goes in the file; an entry starting with a NUL ends the list) and the
// file's real size, and while isextended is set, extension blocks of 21
// more entries (isextended at byte 504) follow before the data. GNU tar
// writes pax sparse files too: formats 0.0 and 0.1 keep the map in pax
// records, 1.0 at the start of the data, as decimal lines padded to a
// block.
//
// Split describes header blocks, sparse extension blocks, the data of pax
// and long-name entries and sparse maps verbatim; each regular member's
// data as a member (Builder.Member: a nested format, such as the VMDK in
// an OVA, or content); a sparse member's stored fragments and other data
// as content; padding and what follows the end marker as zeros where zero,
// verbatim where not.
//
// Members and Split place data as Go's archive/tar does, its quirks
// included (a typeflag of NUL is a regular file, or a directory, which has
// no data, when the name ends in "/"; links, devices and FIFOs have no
// data whatever their size field says; a GNU long name wins over a pax
// path; a pax global header is listed and applies to nothing), but check
// only the fields that place bytes: checksums, sizes, sparse maps and pax
// records. Hostile archives give errors: sizes must parse and lie inside
// the file, sparse maps must be ordered and inside the real size and
// account for the stored data exactly, and pax and long-name data is
// bounded by maxSpecial. The walk only moves forward, so it reads in
// proportion to the archive and allocates at most maxSpecial bytes at a
// time (Members' sparse maps grow with the archive's headers).
package tar

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

const blockSize = 512

// Header fields: offsets and lengths.
const (
	offName     = 0
	lenName     = 100
	offMode     = 100
	offUID      = 108
	offGID      = 116
	offSize     = 124
	lenSize     = 12
	offMtime    = 136
	offChksum   = 148
	lenChksum   = 8
	offTypeflag = 156
	offLinkname = 157
	lenLinkname = 100
	offMagic    = 257 // magic[6] version[2]
	offDevmajor = 329
	offDevminor = 337
	offPrefix   = 345 // ustar: prefix[155]

	// STAR (Schily tar) shares the ustar magic and ends in this trailer;
	// its prefix is shorter.
	offStarTrailer = 508
	lenStarPrefix  = 131
	starTrailer    = "tar\x00"

	// Old GNU: the sparse map and the real size.
	offGNUSparse     = 386
	gnuSparseEntries = 4
	offGNUExtended   = 482
	offGNURealSize   = 483

	// A sparse extension block: 21 entries, then isextended.
	extEntries  = 21
	offExtended = 504

	sparseEntry = 24 // offset[12] numbytes[12]
)

const (
	magicPOSIX = "ustar\x0000"
	magicGNU   = "ustar  \x00"
	magicUstar = "ustar\x00" // with any version, as archive/tar accepts
)

// Typeflags.
const (
	typeReg      = '0'
	typeRegA     = '\x00' // pre-POSIX regular file
	typeLink     = '1'
	typeSymlink  = '2'
	typeChar     = '3'
	typeBlock    = '4'
	typeDir      = '5'
	typeFifo     = '6'
	typeCont     = '7' // contiguous file: a regular file
	typeXHeader  = 'x'
	typeXGlobal  = 'g'
	typeLongName = 'L'
	typeLongLink = 'K'
	typeSparse   = 'S'
)

// maxSpecial bounds the data of a pax header or GNU long name, and a pax
// sparse map (archive/tar's limit, far above what tar writers emit).
const maxSpecial = 1 << 20

type format int

const (
	formatV7 format = iota
	formatUstar
	formatStar
	formatGNU
)

var (
	errChecksum = errors.New("checksum mismatch")
	errNumber   = errors.New("malformed number")
)

// header is a parsed header block.
type header struct {
	format   format
	typeflag byte
	size     int64 // the size field: data stored after the block
	name     string
}

// parseHeader checks the checksum of block p and reads the fields every
// entry needs.
func parseHeader(p []byte) (header, error) {
	var h header
	want, err := parseOctal(p[offChksum : offChksum+lenChksum])
	if err != nil {
		return h, fmt.Errorf("checksum field %q: %w", p[offChksum:offChksum+lenChksum], err)
	}
	unsigned, signed := checksum(p)
	if want != unsigned && want != signed {
		return h, fmt.Errorf("%w: field says %d, block sums to %d", errChecksum, want, unsigned)
	}
	switch {
	case string(p[offMagic:offMagic+6]) == magicUstar && string(p[offStarTrailer:blockSize]) == starTrailer:
		h.format = formatStar
	case string(p[offMagic:offMagic+6]) == magicUstar:
		h.format = formatUstar
	case string(p[offMagic:offMagic+8]) == magicGNU:
		h.format = formatGNU
	}
	h.typeflag = p[offTypeflag]
	h.size, err = parseNumeric(p[offSize : offSize+lenSize])
	if err != nil || h.size < 0 {
		return h, fmt.Errorf("size field %q: %w", p[offSize:offSize+lenSize], errNumber)
	}
	h.name = cString(p[offName : offName+lenName])
	var prefix string
	switch h.format {
	case formatUstar:
		prefix = cString(p[offPrefix : offPrefix+155])
	case formatStar:
		prefix = cString(p[offPrefix : offPrefix+lenStarPrefix])
	}
	if prefix != "" {
		h.name = prefix + "/" + h.name
	}
	return h, nil
}

// checksum sums block p with its checksum field counted as spaces, as
// unsigned and as signed bytes.
func checksum(p []byte) (unsigned, signed int64) {
	for i, c := range p[:blockSize] {
		if i >= offChksum && i < offChksum+lenChksum {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return unsigned, signed
}

// cString returns p up to its first NUL.
func cString(p []byte) string {
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// parseOctal reads an octal field: digits, possibly surrounded by spaces
// and NULs, cut at a NUL; all blanks is 0.
func parseOctal(p []byte) (int64, error) {
	p = bytes.Trim(p, " \x00")
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	var x int64
	for _, c := range p {
		if c < '0' || c > '7' {
			return 0, errNumber
		}
		if x > math.MaxInt64>>3 {
			return 0, errNumber
		}
		x = x<<3 | int64(c-'0')
	}
	return x, nil
}

// parseNumeric reads a numeric field, octal or GNU base-256 (the first
// byte's high bit set; bit 6 set means negative). It fails on overflow.
func parseNumeric(p []byte) (int64, error) {
	if len(p) == 0 || p[0]&0x80 == 0 {
		return parseOctal(p)
	}
	var inv byte
	if p[0]&0x40 != 0 {
		inv = 0xff
	}
	var x uint64
	for i, c := range p {
		c ^= inv
		if i == 0 {
			c &= 0x7f
		}
		if x>>56 != 0 {
			return 0, errNumber
		}
		x = x<<8 | uint64(c)
	}
	if x>>63 != 0 {
		return 0, errNumber
	}
	if inv != 0 {
		return ^int64(x), nil
	}
	return int64(x), nil
}

// headerOnly reports whether entries of type t have no data, whatever
// their size field says.
func headerOnly(t byte) bool {
	switch t {
	case typeLink, typeSymlink, typeChar, typeBlock, typeDir, typeFifo:
		return true
	}
	return false
}

// parseDecimal reads a non-negative decimal number, as pax records hold.
func parseDecimal(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errNumber
	}
	return n, nil
}

// pax record keys this package reads.
const (
	paxPath            = "path"
	paxLinkpath        = "linkpath"
	paxUname           = "uname"
	paxGname           = "gname"
	paxSize            = "size"
	paxSparseMajor     = "GNU.sparse.major"
	paxSparseMinor     = "GNU.sparse.minor"
	paxSparseName      = "GNU.sparse.name"
	paxSparseSize      = "GNU.sparse.size"     // 0.0, 0.1
	paxSparseRealSize  = "GNU.sparse.realsize" // 1.0
	paxSparseNumBlocks = "GNU.sparse.numblocks"
	paxSparseMap       = "GNU.sparse.map"      // 0.1: offset,length,...
	paxSparseOffset    = "GNU.sparse.offset"   // 0.0: repeated, in turn
	paxSparseNumBytes  = "GNU.sparse.numbytes" // with offset
)

// parsePAX reads the records of a pax header's data. Sparse format 0.0's
// repeated offset/numbytes records become one 0.1 map record.
func parsePAX(data []byte) (map[string]string, error) {
	s := string(data)
	recs := map[string]string{}
	var sparse []string
	for len(s) > 0 {
		lenStr, rest, ok := strings.Cut(s, " ")
		n, err := strconv.Atoi(lenStr)
		if !ok || err != nil || n < len(lenStr)+3 || n > len(s) {
			return nil, fmt.Errorf("pax record at %d: bad length %q", len(data)-len(s), lenStr)
		}
		rec := rest[:n-len(lenStr)-1]
		if rec[len(rec)-1] != '\n' {
			return nil, fmt.Errorf("pax record at %d: no newline at its end", len(data)-len(s))
		}
		k, v, ok := strings.Cut(rec[:len(rec)-1], "=")
		if !ok || !validRecord(k, v) {
			return nil, fmt.Errorf("pax record at %d: malformed %q", len(data)-len(s), rec)
		}
		s = s[n:]
		switch k {
		case paxSparseOffset, paxSparseNumBytes:
			if (len(sparse)%2 == 0) != (k == paxSparseOffset) || strings.Contains(v, ",") {
				return nil, fmt.Errorf("pax record %s out of order", k)
			}
			sparse = append(sparse, v)
		default:
			recs[k] = v
		}
	}
	if len(sparse) > 0 {
		recs[paxSparseMap] = strings.Join(sparse, ",")
	}
	return recs, nil
}

func validRecord(k, v string) bool {
	if k == "" || strings.Contains(k, "=") {
		return false
	}
	switch k {
	case paxPath, paxLinkpath, paxUname, paxGname:
		return !strings.Contains(v, "\x00")
	}
	return !strings.Contains(k, "\x00")
}

// Detect reports whether header (the file's first ≥512 bytes) starts a tar
// archive: a header block whose checksum verifies, whose numeric fields
// parse, and whose magic is POSIX ustar or GNU; or, with no magic, a v7
// header with a plausible name and type and no ustar fields but device
// numbers.
func Detect(header []byte) bool {
	if len(header) < blockSize {
		return false
	}
	p := header[:blockSize]
	h, err := parseHeader(p)
	if err != nil {
		return false
	}
	for _, f := range [][2]int{{offMode, 8}, {offUID, 8}, {offGID, 8}, {offMtime, 12}} {
		if _, err := parseNumeric(p[f[0] : f[0]+f[1]]); err != nil {
			return false
		}
	}
	switch string(p[offMagic : offMagic+8]) {
	case magicPOSIX, magicGNU:
		return true
	}
	// v7: octal numbers only, a regular, link or special type, a name of
	// printable characters NUL-padded, and zeros after the header.
	for _, f := range [][2]int{{offMode, 8}, {offUID, 8}, {offGID, 8}, {offSize, 12}, {offMtime, 12}} {
		if p[f[0]]&0x80 != 0 {
			return false
		}
	}
	if t := h.typeflag; t != typeRegA && (t < typeReg || t > typeCont) {
		return false
	}
	// After the v7 fields, no magic, user or group names, nor prefix;
	// GNU tar's v7 writes device numbers, as octal.
	if !allZero(p[offMagic:offDevmajor]) || !allZero(p[offPrefix:]) {
		return false
	}
	for _, off := range []int{offDevmajor, offDevminor} {
		if _, err := parseOctal(p[off : off+8]); err != nil {
			return false
		}
	}
	return plausibleName(p[offName:offName+lenName], false) && plausibleName(p[offLinkname:offLinkname+lenLinkname], true)
}

// plausibleName reports whether field holds a name (or nothing, if empty
// is true) of characters other than controls, padded with NULs.
func plausibleName(field []byte, empty bool) bool {
	n := bytes.IndexByte(field, 0)
	if n < 0 {
		n = len(field)
	}
	if n == 0 && !empty {
		return false
	}
	for _, c := range field[:n] {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	for _, c := range field[n:] {
		if c != 0 {
			return false
		}
	}
	return true
}
