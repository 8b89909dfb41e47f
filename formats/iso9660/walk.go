package iso9660

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// walker walks directory trees, collecting file extents.
type walker struct {
	r      io.ReaderAt
	size   int64
	walked []uint64 // bitmap of the directory blocks walked, all trees
	blk    []byte   // a directory block
	ce     []byte   // a continuation area
	seen   map[[2]int64]bool
	files  []File
	names  int64 // bytes in the paths kept: files' and directories' to walk

	ceBudget int64 // continuation area bytes left to read: the image's size
}

func newWalker(r io.ReaderAt, size int64) *walker {
	return &walker{
		r:      r,
		size:   size,
		walked: make([]uint64, size/blockSize/64+1),
		blk:    make([]byte, blockSize),
		ce:     make([]byte, blockSize),
		seen:   map[[2]int64]bool{},

		ceBudget: size,
	}
}

// dirJob is a directory to walk.
type dirJob struct {
	block, size int64 // size: sizeFromDot for a Rock Ridge relocated directory
	path        string
}

// sizeFromDot is the size of a directory job whose size is in its "."
// record, read if the directory was not walked yet.
const sizeFromDot = -1

// rockRidge is what the root's "." record says about SUSP.
type rockRidge struct {
	ok   bool
	skip int // bytes to skip at the start of each system use field
}

// hasRockRidge reports whether the tree rooted at root uses SUSP: the
// first record of the root directory (".") starts its system use field
// with an SP entry (length 7, check bytes BE EF).
func (w *walker) hasRockRidge(root record) (rockRidge, error) {
	if root.size < minRecord {
		return rockRidge{}, fmt.Errorf("%w: root directory of %d bytes", errFormat, root.size)
	}
	off := root.offset()
	if err := readFull(w.r, w.size, w.blk, off); err != nil {
		return rockRidge{}, fmt.Errorf("iso9660: root directory at %#x: %w", off, err)
	}
	n := int(w.blk[drLen])
	d, ok := parseRecord(w.blk[:min(n, blockSize)])
	if !ok || len(d.name) != 1 || d.name[0] != 0 {
		return rockRidge{}, fmt.Errorf("%w: root directory at %#x: no \".\" record", errFormat, off)
	}
	s := d.sys
	if len(s) >= 7 && string(s[:2]) == "SP" && s[2] == 7 && s[4] == 0xbe && s[5] == 0xef {
		return rockRidge{ok: true, skip: int(s[6])}, nil
	}
	return rockRidge{}, nil
}

// claim marks the n directory blocks from block as walked. It returns
// false if the first was walked before (a loop, or a directory that two
// records share) and an error if another directory overlaps the rest.
func (w *walker) claim(block, n int64) (bool, error) {
	if w.isWalked(block) {
		return false, nil
	}
	for i := block; i < block+n; i++ {
		if w.isWalked(i) {
			return false, fmt.Errorf("%w: directory at block %d overlaps another at block %d", errFormat, block, i)
		}
	}
	for i := block; i < block+n; i++ {
		w.walked[i/64] |= 1 << (i % 64)
	}
	return true, nil
}

// isWalked reports whether the directory block i, within the image, was
// walked.
func (w *walker) isWalked(i int64) bool { return w.walked[i/64]&(1<<(i%64)) != 0 }

// section is one extent of a file.
type section struct{ off, size int64 }

// walk adds the files of the tree rooted at root. susp is the number of
// bytes to skip in system use fields when the tree has Rock Ridge entries,
// -1 when it has none.
func (w *walker) walk(root record, joliet bool, susp int) error {
	stack := []dirJob{{root.block, root.size, ""}}
	var relocated []dirJob // Rock Ridge: walked after the rest, if not by then
	for len(stack) > 0 || len(relocated) > 0 {
		if len(stack) == 0 {
			stack, relocated = relocated, nil
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if err := w.dir(d, joliet, susp, &stack, &relocated); err != nil {
			return err
		}
	}
	return nil
}

// dir walks one directory, adding its files and pushing its
// subdirectories.
func (w *walker) dir(d dirJob, joliet bool, susp int, stack, relocated *[]dirJob) error {
	if d.size == sizeFromDot {
		if d.block >= w.size/blockSize {
			return fmt.Errorf("%w: relocated directory /%s at block %d, past the image's end", errFormat, d.path, d.block)
		}
		if w.isWalked(d.block) {
			return nil
		}
		dot, err := w.dotRecord(d.block)
		if err != nil {
			return fmt.Errorf("iso9660: relocated directory /%s: %w", d.path, err)
		}
		d.size = dot.size
	}
	if d.size == 0 {
		return nil
	}
	nb := (d.size + blockSize - 1) / blockSize
	if d.block > w.size/blockSize || nb > w.size/blockSize-d.block {
		return fmt.Errorf("%w: directory /%s: extent at block %d, %d bytes, past the image's end", errFormat, d.path, d.block, d.size)
	}
	if ok, err := w.claim(d.block, nb); !ok {
		return err
	}
	var (
		pending     []section // sections of a multi-extent file
		pendingPath string
	)
	for i := int64(0); i < nb; i++ {
		off := (d.block + i) * blockSize
		if err := readFull(w.r, w.size, w.blk, off); err != nil {
			return fmt.Errorf("iso9660: directory /%s at %#x: %w", d.path, off, err)
		}
		for at := 0; at < blockSize && w.blk[at] != 0; {
			n := int(w.blk[at])
			if at+n > blockSize {
				return fmt.Errorf("%w: directory record at %#x crosses a block boundary", errFormat, off+int64(at))
			}
			rec, ok := parseRecord(w.blk[at : at+n])
			if !ok {
				return fmt.Errorf("%w: bad directory record at %#x", errFormat, off+int64(at))
			}
			at += n
			if len(rec.name) == 1 && rec.name[0] <= 1 {
				continue // "." and ".."
			}
			var name string
			rr := suspInfo{cl: -1}
			if joliet {
				name = jolietName(rec.name)
			} else {
				name = isoName(rec.name)
			}
			if susp >= 0 {
				var err error
				if rr, err = w.susp(rec.sys, susp); err != nil {
					return fmt.Errorf("iso9660: directory record at %#x: %w", off+int64(at-n), err)
				}
				if rr.hasName {
					name = string(rr.name)
				}
			}
			path := name
			if d.path != "" {
				path = d.path + "/" + name
			}
			if len(path) > maxPath {
				return fmt.Errorf("%w: a path in /%s is longer than %d bytes", errFormat, d.path, maxPath)
			}
			if len(pending) > 0 && (rec.flags&flagDir != 0 || rr.cl >= 0) {
				if err := w.addFile(pendingPath, pending); err != nil {
					return err
				}
				pending = pending[:0]
			}
			if rec.flags&flagDir != 0 || rr.cl >= 0 {
				if err := w.charge(path); err != nil {
					return err
				}
			}
			switch {
			case rec.flags&flagDir != 0:
				if rr.re {
					*relocated = append(*relocated, dirJob{rec.block, rec.size, path})
				} else {
					*stack = append(*stack, dirJob{rec.block, rec.size, path})
				}
			case rr.cl >= 0:
				// A relocated directory: its size is in its "." record.
				*stack = append(*stack, dirJob{rr.cl, sizeFromDot, path})
			case rec.unitSize != 0 || rec.gap != 0:
				// Interleaved: the extent holds more than the file.
				pending = pending[:0]
			default:
				pending = append(pending, section{rec.offset(), rec.size})
				pendingPath = path
				if rec.flags&flagMultiEx == 0 {
					if err := w.addFile(path, pending); err != nil {
						return err
					}
					pending = pending[:0]
				}
			}
		}
	}
	if len(pending) > 0 {
		return w.addFile(pendingPath, pending)
	}
	return nil
}

// dotRecord reads the "." record of the directory at block.
func (w *walker) dotRecord(block int64) (record, error) {
	off := block * blockSize
	if err := readFull(w.r, w.size, w.blk[:1], off); err != nil {
		return record{}, fmt.Errorf("directory at %#x: %w", off, err)
	}
	p := make([]byte, w.blk[0])
	if err := readFull(w.r, w.size, p, off); err != nil {
		return record{}, fmt.Errorf("directory at %#x: %w", off, err)
	}
	d, ok := parseRecord(p)
	if !ok || len(d.name) != 1 || d.name[0] != 0 {
		return record{}, fmt.Errorf("%w: directory at %#x: no \".\" record", errFormat, off)
	}
	return d, nil
}

// addFile adds a file's sections, joining those that follow each other.
func (w *walker) addFile(path string, secs []section) error {
	cur := secs[0]
	for _, s := range secs[1:] {
		if cur.size%blockSize == 0 && s.off == cur.off+cur.size {
			cur.size += s.size
			continue
		}
		if err := w.add(path, cur); err != nil {
			return err
		}
		cur = s
	}
	return w.add(path, cur)
}

func (w *walker) add(path string, s section) error {
	if s.size == 0 {
		return nil
	}
	if s.off > w.size || s.size > w.size-s.off {
		return fmt.Errorf("%w: /%s: extent at %#x, %d bytes, past the image's end (%d bytes)", errFormat, path, s.off, s.size, w.size)
	}
	k := [2]int64{s.off, s.size}
	if w.seen[k] {
		return nil
	}
	if err := w.charge(path); err != nil {
		return err
	}
	w.seen[k] = true
	w.files = append(w.files, File{Path: path, Offset: s.off, Size: s.size})
	return nil
}

// charge counts a path kept, failing past maxPathBytes.
func (w *walker) charge(path string) error {
	if w.names += int64(len(path)); w.names > maxPathBytes {
		return fmt.Errorf("%w: paths longer than %d bytes in all", errFormat, maxPathBytes)
	}
	return nil
}

// suspInfo is what Files uses of a record's Rock Ridge entries.
type suspInfo struct {
	name    []byte // NM
	hasName bool
	cl      int64 // CL: block of the relocated directory, or -1
	re      bool  // RE: this directory was relocated here
}

// NM flags.
const (
	nmCurrent = 0x02
	nmParent  = 0x04
)

// susp parses the SUSP entries of a system use field, skipping its first
// skip bytes, and the continuation areas they point to.
func (w *walker) susp(sys []byte, skip int) (suspInfo, error) {
	s := suspInfo{cl: -1}
	if skip >= len(sys) {
		return s, nil
	}
	le := binary.LittleEndian
	area := sys[skip:]
	for hop := 0; ; hop++ {
		ce := false
		var ceBlock, ceOff, ceLen int64
	entries:
		for len(area) >= 4 {
			n := int(area[2])
			if n < 4 || n > len(area) {
				break
			}
			data := area[4:n]
			switch string(area[:2]) {
			case "NM":
				if len(data) >= 1 && data[0]&(nmCurrent|nmParent) == 0 {
					s.hasName = true
					// Longer names fail the path check; stop copying there.
					part := data[1:]
					s.name = append(s.name, part[:min(len(part), max(0, maxPath+1-len(s.name)))]...)
				}
			case "CL":
				if len(data) >= 8 {
					s.cl = int64(le.Uint32(data))
				}
			case "RE":
				s.re = true
			case "CE":
				if len(data) >= 24 {
					ce = true
					ceBlock, ceOff, ceLen = int64(le.Uint32(data)), int64(le.Uint32(data[8:])), int64(le.Uint32(data[16:]))
				}
			case "ST":
				break entries
			}
			area = area[n:]
		}
		if !ce {
			return s, nil
		}
		if hop == maxContinuations {
			return s, fmt.Errorf("%w: more than %d continuation areas", errFormat, maxContinuations)
		}
		if ceOff+ceLen > blockSize {
			return s, fmt.Errorf("%w: continuation area at block %d, offset %d, %d bytes, crosses a block", errFormat, ceBlock, ceOff, ceLen)
		}
		if w.ceBudget -= ceLen; w.ceBudget < 0 {
			return s, fmt.Errorf("%w: continuation areas larger than the image", errFormat)
		}
		area = w.ce[:ceLen]
		if err := readFull(w.r, w.size, area, ceBlock*blockSize+ceOff); err != nil {
			return s, fmt.Errorf("continuation area at block %d: %w", ceBlock, err)
		}
	}
}

// isoName is an ISO 9660 file identifier without its version (";1") and,
// for a name without extension, the dot.
func isoName(id []byte) string {
	name := stripVersion(string(id))
	if t, ok := strings.CutSuffix(name, "."); ok && t != "" {
		name = t
	}
	return name
}

// jolietName decodes a Joliet (UCS-2 big-endian) identifier, without its
// version.
func jolietName(id []byte) string {
	u := make([]uint16, len(id)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(id[2*i:])
	}
	return stripVersion(string(utf16.Decode(u)))
}

// stripVersion cuts ";" and digits off the end of name.
func stripVersion(name string) string {
	i := strings.LastIndexByte(name, ';')
	if i <= 0 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}
