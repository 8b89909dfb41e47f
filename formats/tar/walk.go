package tar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Member is an entry of an archive, as a tar reader lists it: the pax and
// GNU long-name entries that describe it are folded in.
type Member struct {
	Name string
	// Typeflag is the entry's type: '0' for a regular file (a NUL
	// typeflag reads as '0', or as '5' for a name ending in "/"), 'S' for
	// an old GNU sparse file. Pax global headers ('g') are listed too, as
	// archive/tar lists them; their Offset and Size locate their records.
	Typeflag byte
	// Offset and Size locate the member's stored data in the archive:
	// the file's bytes, or for a sparse member its non-hole fragments,
	// concatenated (a pax 1.0 sparse map, stored first, lies before
	// Offset).
	Offset, Size int64
	// Sparse marks a GNU sparse member (old GNU 'S' or pax sparse).
	Sparse bool
	// RealSize is the size of the file the member holds: Size, or for a
	// sparse member the size with its holes.
	RealSize int64
	// Map is where a sparse member's fragments go in the file, in order.
	Map []Fragment
}

// Fragment is one stored piece of a sparse file.
type Fragment struct {
	Offset, Length int64
}

// Members lists the members of the archive in r (size bytes), up to its
// end marker.
func Members(r io.ReaderAt, size int64) ([]Member, error) {
	var l lister
	w := walker{r: r, size: size, v: &l, keepMap: true}
	if err := w.run(); err != nil {
		return nil, err
	}
	return l.ms, nil
}

type lister struct{ ms []Member }

func (l *lister) verbatim([]byte) error         { return nil }
func (l *lister) pad(int64, int64) error        { return nil }
func (l *lister) data(int64, int64, bool) error { return nil }
func (l *lister) entry(m *Member) error         { l.ms = append(l.ms, *m); return nil }

// visitor hears of every byte range of an archive, in file order.
type visitor interface {
	// verbatim: header blocks, sparse extension blocks, pax and long-name
	// data, pax 1.0 sparse maps.
	verbatim(p []byte) error
	// pad: padding after data, and everything from the end marker on.
	pad(off, n int64) error
	// entry: a member, once its headers are read, before its data.
	entry(m *Member) error
	// data: a member's stored data; nested if it is a regular file's.
	data(off, n int64, nested bool) error
}

// walker reads an archive's headers forward, from its first block to the
// end marker, and tells v what each byte range is.
type walker struct {
	r       io.ReaderAt
	size    int64
	pos     int64 // everything before has been told to v
	v       visitor
	keepMap bool            // collect sparse maps (Members), else only check them
	blk     [blockSize]byte // the header block being walked
	ext     [blockSize]byte // a sparse extension block
}

// pending holds what meta entries said about the next member.
type pending struct {
	pax                map[string]string
	longName, longLink string
}

func (w *walker) run() error {
	if w.size < 0 {
		return fmt.Errorf("tar: negative size %d", w.size)
	}
	var next pending
	for {
		at, rest := w.pos, w.size-w.pos
		if rest == 0 {
			return nil // no end marker: archive/tar and GNU tar accept that
		}
		if rest < blockSize {
			p := w.blk[:rest]
			if err := w.read(p, at); err != nil {
				return err
			}
			if !allZero(p) {
				return fmt.Errorf("tar: header at %#x: cut short, %d bytes left in the file", at, rest)
			}
			return w.v.pad(at, rest) // an end marker cut short
		}
		p := w.blk[:]
		if err := w.read(p, at); err != nil {
			return err
		}
		if allZero(p) {
			return w.v.pad(at, rest) // the end
		}
		h, err := parseHeader(p)
		if err != nil {
			return fmt.Errorf("tar: header at %#x: %w", at, err)
		}
		if err := w.v.verbatim(p); err != nil {
			return err
		}
		w.pos += blockSize

		switch h.typeflag {
		case typeXHeader, typeXGlobal:
			data, off, err := w.special(at, h)
			if err != nil {
				return err
			}
			recs, err := parsePAX(data)
			if err != nil {
				return fmt.Errorf("tar: pax header at %#x: %w", at, err)
			}
			if h.typeflag == typeXGlobal {
				// Listed as a member; like archive/tar, it drops what
				// came before it and does not apply to what follows.
				m := Member{Name: h.name, Typeflag: typeXGlobal, Offset: off, Size: h.size, RealSize: h.size}
				if v := recs[paxPath]; v != "" {
					m.Name = v
				}
				if err := w.v.entry(&m); err != nil {
					return err
				}
				next = pending{}
				continue
			}
			next.pax = recs
		case typeLongName, typeLongLink:
			data, _, err := w.special(at, h)
			if err != nil {
				return err
			}
			if h.typeflag == typeLongName {
				next.longName = cString(data)
			} else {
				next.longLink = cString(data)
			}
		default:
			if err := w.member(at, p, h, next); err != nil {
				return err
			}
			next = pending{}
		}
	}
}

// special reads the data of a pax header or long name (which starts at
// w.pos) and its padding, and returns it with its offset.
func (w *walker) special(at int64, h header) ([]byte, int64, error) {
	if h.size > maxSpecial {
		return nil, 0, fmt.Errorf("tar: %q entry at %#x: %d bytes of data, more than %d", h.typeflag, at, h.size, maxSpecial)
	}
	off := w.pos
	if err := w.within(at, h.size); err != nil {
		return nil, 0, err
	}
	data := make([]byte, h.size)
	if err := w.read(data, off); err != nil {
		return nil, 0, err
	}
	if err := w.v.verbatim(data); err != nil {
		return nil, 0, err
	}
	w.pos += h.size
	return data, off, w.padding(h.size)
}

// within checks that n bytes of data fit between w.pos and the end of the
// file, padding included.
func (w *walker) within(at, n int64) error {
	if n > w.size-w.pos || padLen(n) > w.size-w.pos-n {
		return fmt.Errorf("tar: entry at %#x: %d bytes of data at %#x run past the end of the %d-byte file", at, n, w.pos, w.size)
	}
	return nil
}

// padding describes the padding after stored data of n bytes.
func (w *walker) padding(n int64) error {
	k := padLen(n)
	if err := w.v.pad(w.pos, k); err != nil {
		return err
	}
	w.pos += k
	return nil
}

func padLen(n int64) int64 { return -n & (blockSize - 1) }

// member walks a file entry whose header block p (at at) has been told
// to v, and its data.
func (w *walker) member(at int64, p []byte, h header, next pending) error {
	m := Member{Name: h.name, Typeflag: h.typeflag}
	size := h.size
	if v := next.pax[paxPath]; v != "" {
		m.Name = v
	}
	if v := next.pax[paxSize]; v != "" {
		n, err := parseDecimal(v)
		if err != nil {
			return fmt.Errorf("tar: entry at %#x: pax size %q: %w", at, v, err)
		}
		size = n
	}
	if next.longName != "" {
		m.Name = next.longName
	}
	if m.Typeflag == typeRegA {
		if strings.HasSuffix(m.Name, "/") {
			m.Typeflag = typeDir
		} else {
			m.Typeflag = typeReg
		}
	}
	if headerOnly(m.Typeflag) {
		size = 0
	}
	m.RealSize = size
	sm := sparseMap{keep: w.keepMap}
	var prefix []byte // a pax 1.0 sparse map, at the start of the data
	switch {
	case m.Typeflag == typeSparse:
		if h.format != formatGNU {
			return fmt.Errorf("tar: sparse entry at %#x: not in a GNU header", at)
		}
		real, err := parseNumeric(p[offGNURealSize : offGNURealSize+12])
		if err != nil || real < 0 {
			return fmt.Errorf("tar: sparse entry at %#x: real size %q: %w", at, p[offGNURealSize:offGNURealSize+12], errNumber)
		}
		sm.real = real
		if err := w.oldGNUSparse(at, p, &sm); err != nil {
			return err
		}
	default:
		v1, ok := paxSparse(next.pax)
		if !ok {
			break
		}
		if headerOnly(m.Typeflag) {
			return fmt.Errorf("tar: entry at %#x: type %q cannot be sparse", at, m.Typeflag)
		}
		if v := next.pax[paxSparseName]; v != "" {
			m.Name = v
		}
		sm.real = size
		if v := cmpOr(next.pax[paxSparseSize], next.pax[paxSparseRealSize]); v != "" {
			n, err := parseDecimal(v)
			if err != nil {
				return fmt.Errorf("tar: entry at %#x: pax sparse size %q: %w", at, v, err)
			}
			sm.real = n
		}
		if err := w.within(at, size); err != nil {
			return err
		}
		var err error
		if v1 {
			prefix, err = w.paxSparseMap1(at, size, &sm)
		} else {
			err = paxSparseMap0(next.pax, &sm)
		}
		if err != nil {
			return fmt.Errorf("tar: sparse entry at %#x: %w", at, err)
		}
		sm.sparse = true
	}
	if err := w.within(at, size); err != nil {
		return err
	}
	stored := size - int64(len(prefix))
	if sm.sparse && sm.sum != stored {
		return fmt.Errorf("tar: sparse entry at %#x: map holds %d bytes of fragments, the entry stores %d", at, sm.sum, stored)
	}
	if err := w.v.verbatim(prefix); err != nil {
		return err
	}
	w.pos += int64(len(prefix))
	m.Offset, m.Size = w.pos, stored
	if sm.sparse {
		m.Sparse, m.RealSize, m.Map = true, sm.real, sm.frags
	}
	if err := w.v.entry(&m); err != nil {
		return err
	}
	nested := !m.Sparse && (m.Typeflag == typeReg || m.Typeflag == typeCont)
	if err := w.v.data(w.pos, stored, nested); err != nil {
		return err
	}
	w.pos += stored
	return w.padding(size)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sparseMap checks a sparse map's entries as they come, and keeps them if
// keep is set.
type sparseMap struct {
	sparse bool
	keep   bool
	real   int64 // the file's size
	end    int64 // the end of the last fragment
	sum    int64 // bytes stored
	frags  []Fragment
}

func (s *sparseMap) add(off, n int64) error {
	switch {
	case off < 0 || n < 0:
		return fmt.Errorf("negative fragment (%d bytes at %d)", n, off)
	case off > math.MaxInt64-n || off+n > s.real:
		return fmt.Errorf("fragment of %d bytes at %d ends past the file's %d bytes", n, off, s.real)
	case off < s.end:
		return fmt.Errorf("fragment at %d overlaps or precedes the one ending at %d", off, s.end)
	}
	s.end = off + n
	s.sum += n // ≤ real: fragments are disjoint and inside the file
	if s.keep {
		s.frags = append(s.frags, Fragment{off, n})
	}
	return nil
}

// oldGNUSparse reads the map of an old GNU sparse entry: the entries in its
// header block p, then extension blocks (told to v) while isextended is
// set. An entry whose offset starts with a NUL ends a block's list.
func (w *walker) oldGNUSparse(at int64, p []byte, sm *sparseMap) error {
	sm.sparse = true
	entries, extended := p[offGNUSparse:offGNUSparse+gnuSparseEntries*sparseEntry], p[offGNUExtended]
	for {
		for e := entries; len(e) >= sparseEntry && e[0] != 0; e = e[sparseEntry:] {
			off, err1 := parseNumeric(e[:12])
			n, err2 := parseNumeric(e[12:24])
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("tar: sparse entry at %#x: map entry %q: %w", at, e[:sparseEntry], err)
			}
			if err := sm.add(off, n); err != nil {
				return fmt.Errorf("tar: sparse entry at %#x: %w", at, err)
			}
		}
		if extended == 0 {
			return nil
		}
		if w.size-w.pos < blockSize {
			return fmt.Errorf("tar: sparse entry at %#x: extension header at %#x runs past the end of the %d-byte file", at, w.pos, w.size)
		}
		b := w.ext[:]
		if err := w.read(b, w.pos); err != nil {
			return err
		}
		if err := w.v.verbatim(b); err != nil {
			return err
		}
		w.pos += blockSize
		entries, extended = b[:extEntries*sparseEntry], b[offExtended]
	}
}

// paxSparse reports whether pax records describe a GNU sparse file, and
// whether in format 1.0 (map in the data) rather than 0.0 or 0.1.
func paxSparse(recs map[string]string) (v1, ok bool) {
	major, minor := recs[paxSparseMajor], recs[paxSparseMinor]
	switch {
	case major == "0" && (minor == "0" || minor == "1"):
		return false, true
	case major == "1" && minor == "0":
		return true, true
	case major != "" || minor != "":
		return false, false // a version this package does not know
	case recs[paxSparseMap] != "":
		return false, true // 0.0 and 0.1 have no version records
	}
	return false, false
}

// paxSparseMap0 reads a format 0.0/0.1 sparse map from pax records.
func paxSparseMap0(recs map[string]string, sm *sparseMap) error {
	n, err := parseDecimal(recs[paxSparseNumBlocks])
	if err != nil {
		return fmt.Errorf("%s %q: %w", paxSparseNumBlocks, recs[paxSparseNumBlocks], err)
	}
	var fields []string
	if s := recs[paxSparseMap]; s != "" {
		fields = strings.Split(s, ",")
	}
	if int64(len(fields)) != 2*n || n > math.MaxInt64/2 {
		return fmt.Errorf("%s has %d numbers, want twice %s (%d)", paxSparseMap, len(fields), paxSparseNumBlocks, n)
	}
	for i := 0; i < len(fields); i += 2 {
		off, err1 := parseDecimal(fields[i])
		n, err2 := parseDecimal(fields[i+1])
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("map entry %q,%q: %w", fields[i], fields[i+1], err)
		}
		if err := sm.add(off, n); err != nil {
			return err
		}
	}
	return nil
}

// paxSparseMap1 reads a format 1.0 sparse map from the start of the data
// (size bytes at w.pos): decimal lines, the number of entries, then an
// offset and a length for each, padded to the end of the block holding the
// last line. It returns the map's blocks.
func (w *walker) paxSparseMap1(at, size int64, sm *sparseMap) ([]byte, error) {
	var buf []byte
	lines := 0
	// more reads blocks until buf holds want lines.
	more := func(want int) error {
		for lines < want {
			n := int64(len(buf))
			if n+blockSize > min(size, maxSpecial) {
				return fmt.Errorf("sparse map runs past %d bytes", min(size, maxSpecial))
			}
			buf = append(buf, make([]byte, blockSize)...)
			if err := w.read(buf[n:], w.pos+n); err != nil {
				return err
			}
			lines += bytes.Count(buf[n:], []byte{'\n'})
		}
		return nil
	}
	if err := more(1); err != nil {
		return nil, err
	}
	rest := buf
	token := func() string {
		t, r, _ := bytes.Cut(rest, []byte{'\n'})
		rest = r
		return string(t)
	}
	count, err := parseDecimal(token())
	if err != nil || count > maxSpecial {
		return nil, fmt.Errorf("sparse map: bad entry count")
	}
	if err := more(1 + 2*int(count)); err != nil {
		return nil, err
	}
	rest = buf[bytes.IndexByte(buf, '\n')+1:]
	for range count {
		off, err1 := parseDecimal(token())
		n, err2 := parseDecimal(token())
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("sparse map entry: %w", err)
		}
		if err := sm.add(off, n); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// read fills p from the archive at off.
func (w *walker) read(p []byte, off int64) error { return readAt(w.r, p, off) }

// readAt fills p from r at off.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("tar: reading %d bytes at %#x: %w", len(p), off, err)
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
