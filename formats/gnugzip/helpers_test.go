package gnugzip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// input is a named test input.
type input struct {
	name string
	data []byte
}

// gzipBody runs `gzip -level -n -c` on data (from a regular file, as gzip
// reads a file argument) and returns the raw deflate body, after checking
// the header gzip wrote and the trailer.
func gzipBody(t testing.TB, gzip, dir string, data []byte, level int) []byte {
	t.Helper()
	f, err := os.CreateTemp(dir, "in")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gzip, fmt.Sprintf("-%d", level), "-n", "-c", f.Name()).Output()
	if err != nil {
		t.Fatalf("gzip -%d: %v", level, err)
	}
	if len(out) < 18 || out[0] != 0x1f || out[1] != 0x8b || out[2] != 8 || out[3] != 0 {
		t.Fatalf("gzip -%d: unexpected header % x", level, out[:min(len(out), 10)])
	}
	xfl := byte(0)
	switch level {
	case 1:
		xfl = 4
	case 9:
		xfl = 2
	}
	if out[8] != xfl || out[9] != 3 {
		t.Fatalf("gzip -%d: XFL %d OS %d, want %d 3", level, out[8], out[9], xfl)
	}
	tr := out[len(out)-8:]
	if binary.LittleEndian.Uint32(tr) != crc32.ChecksumIEEE(data) || binary.LittleEndian.Uint32(tr[4:]) != uint32(len(data)) {
		t.Fatalf("gzip -%d: trailer % x does not describe the input", level, tr)
	}
	return out[10 : len(out)-8]
}

// sameBody fails t with the first differing byte and deflate symbol if got
// is not want.
func sameBody(t testing.TB, what string, got, want []byte) bool {
	t.Helper()
	if bytes.Equal(got, want) {
		return true
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes, gzip %d; first difference at byte %d; %s", what, len(got), len(want), i, firstTokenDiff(got, want))
	return false
}

// words is a vocabulary for text-like inputs.
var words = strings.Fields(`the of and to in is was that for on with as by at from
	this be are or an which not have it has had but were their its been one all
	kernel module initramfs driver firmware network device block filesystem mount
	root config service unit target system boot image layer archive compress
	deflate window match length distance literal huffman tree block stored
	static dynamic alpha beta gamma delta epsilon zeta eta theta iota kappa`)

// textData is size bytes of word salad with punctuation and line breaks,
// deterministic in seed.
func textData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x7e57))
	var b bytes.Buffer
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		switch r.IntN(12) {
		case 0:
			b.WriteString(".\n")
		case 1:
			b.WriteString(", ")
		default:
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:size]
}

func randomData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xda7a))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// repetitiveData repeats short random units with occasional edits: long
// matches at many distances, the longest chains.
func repetitiveData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x4e4e))
	unit := randomData(1000, seed)
	b := make([]byte, 0, size)
	for len(b) < size {
		b = append(b, unit[:100+r.IntN(900)]...)
		b = append(b, "abcabcabcabc"...)
		if r.IntN(4) == 0 {
			unit[r.IntN(len(unit))] = byte(r.Uint32())
		}
	}
	return b[:size]
}

// staleData is made so that the last match of the file is found only by a
// compressor that, like gzip, compares the bytes past the end of the input
// still in its window (the two zeroed ones, then stale data from before
// the window's last slide). The tail's l bytes occur twice within reach,
// both times followed by two zero bytes; only the farther copy goes on
// with the bytes that lie, after the slide, past the end of the window's
// data (input offset n+2-32768), so gzip takes the farther one.
// Alphabet: 64 symbols, so the last block is Huffman coded, not stored.
func staleData(n, l int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(1 + r.IntN(64))
	}
	tail := d[n-l:]
	stale := n + 2 - wsize
	f1, f2 := n-l-20000, n-l-30000
	copy(d[f2:], tail)
	d[f2+l], d[f2+l+1] = 0, 0
	copy(d[f2+l+2:f2+l+32], d[stale:stale+30])
	copy(d[f1:], tail)
	d[f1+l], d[f1+l+1] = 0, 0
	return d
}

// noRepeatData is random bytes in which no 3-byte string occurs twice, so
// gzip finds no match at all: the first block ends at 32767 literals, just
// below WSIZE, and the next one spans the window's first slide, which
// leaves its start outside the window: it cannot be stored even though
// storing is cheapest (flush_block's buf == NULL).
func noRepeatData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 9))
	seen := make([]uint64, 1<<24/64)
	d := make([]byte, 0, n)
	for len(d) < n {
		b := byte(r.Uint32())
		if len(d) >= 2 {
			k := uint32(d[len(d)-2])<<16 | uint32(d[len(d)-1])<<8 | uint32(b)
			if seen[k/64]&(1<<(k%64)) != 0 {
				continue
			}
			seen[k/64] |= 1 << (k % 64)
		}
		d = append(d, b)
	}
	return d
}

// goBinary returns the go command's executable, or nil.
func goBinary(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "bin", "go"))
	if err != nil {
		t.Logf("no go binary: %v", err)
		return nil
	}
	return b
}

// goSource returns up to size bytes of the Go tree's own sources.
func goSource(t testing.TB, size int) []byte {
	var b bytes.Buffer
	root := filepath.Join(runtime.GOROOT(), "src", "compress")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || b.Len() >= size {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			b.Write(data)
		}
		return nil
	})
	if b.Len() == 0 {
		t.Logf("no Go sources under %s", root)
		return nil
	}
	return b.Bytes()[:min(b.Len(), size)]
}

// cpioArchive makes a newc cpio archive (`find . | cpio -o -H newc`, as
// initramfs images are made) of a tree holding Go's compress sources and
// the gofmt binary.
func cpioArchive(t testing.TB, cpio string) []byte {
	dir := t.TempDir()
	src := os.DirFS(filepath.Join(runtime.GOROOT(), "src", "compress"))
	if err := os.CopyFS(filepath.Join(dir, "usr", "src"), src); err != nil {
		t.Logf("copy Go sources: %v", err)
	}
	if gofmt, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "bin", "gofmt")); err == nil {
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", "gofmt"), gofmt, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | "+cpio+" -o -H newc --quiet")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return out
}

// mixedData is a large input of every kind: binary, text, incompressible
// and zero runs, interleaved.
func mixedData(t testing.TB, size int) []byte {
	bin := goBinary(t)
	src := goSource(t, 2<<20)
	b := make([]byte, 0, size)
	for i := 0; len(b) < size; i++ {
		switch i % 5 {
		case 0:
			if len(bin) > 0 {
				off := (i * 1234567) % max(1, len(bin)-(3<<20))
				b = append(b, bin[off:min(len(bin), off+3<<20)]...)
			}
		case 1:
			if len(src) > 0 {
				b = append(b, src...)
			} else {
				b = append(b, textData(2<<20, uint64(i))...)
			}
		case 2:
			b = append(b, randomData(300<<10+i, uint64(i))...)
		case 3:
			b = append(b, make([]byte, 200<<10+i)...)
		case 4:
			b = append(b, textData(1<<20+i, uint64(i))...)
		}
	}
	return b[:size]
}

// firstTokenDiff decodes both deflate streams and describes the first
// symbol where they differ: where in the input and what each chose.
func firstTokenDiff(got, want []byte) string {
	g, errG := decodeTokens(got)
	w, errW := decodeTokens(want)
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("symbol %d: got %+v, gzip %+v", i, g[i], w[i])
		}
	}
	return fmt.Sprintf("symbols equal for %d/%d (decode errors %v, %v)", len(g), len(w), errG, errW)
}

// token is one decoded deflate symbol: a literal (length 0) or a match;
// block counts blocks and kind is the block type.
type token struct {
	pos, length, dist int
	lit               byte
	block, kind       int
}

// decodeTokens decodes a raw deflate stream into its symbols. It is a
// plain, slow decoder for diagnostics.
func decodeTokens(b []byte) ([]token, error) {
	r := &tokenReader{b: b}
	var toks []token
	pos := 0
	for blk := 0; ; blk++ {
		final := r.bits(1)
		kind := r.bits(2)
		switch kind {
		case 0:
			r.pos = (r.pos + 7) &^ 7
			n := r.bits(16)
			r.bits(16)
			for range n {
				toks = append(toks, token{pos: pos, lit: byte(r.bits(8)), block: blk})
				pos++
			}
		case 1, 2:
			lit, dist := fixedCodes()
			if kind == 2 {
				lit, dist = r.dynamicCodes()
			}
			for r.err == nil {
				s := r.sym(lit)
				if s < 256 {
					toks = append(toks, token{pos: pos, lit: byte(s), block: blk, kind: kind})
					pos++
					continue
				}
				if s == 256 || s > 285 {
					break
				}
				code := s - 257
				l := int(tables.baseLength[code]) + 3 + r.bits(int(extraLBits[code]))
				if code == 28 {
					l = 258
				}
				dc := r.sym(dist)
				if dc >= dCodes {
					break
				}
				d := int(tables.baseDist[dc]) + 1 + r.bits(int(extraDBits[dc]))
				toks = append(toks, token{pos: pos, length: l, dist: d, block: blk, kind: kind})
				pos += l
			}
		default:
			return toks, fmt.Errorf("block type 3")
		}
		if r.err != nil || final == 1 {
			return toks, r.err
		}
	}
}

type tokenReader struct {
	b   []byte
	pos int
	err error
}

func (r *tokenReader) bits(n int) int {
	v := 0
	for i := range n {
		if r.pos>>3 >= len(r.b) {
			r.err = fmt.Errorf("truncated")
			return 0
		}
		v |= int(r.b[r.pos>>3]>>(r.pos&7)&1) << i
		r.pos++
	}
	return v
}

// codeMap maps (length, code) to symbol.
type codeMap map[[2]int]int

func canonical(lens []int) codeMap {
	var count, next [16]int
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	code := 0
	for b := 1; b < 16; b++ {
		code = (code + count[b-1]) << 1
		next[b] = code
	}
	m := codeMap{}
	for s, l := range lens {
		if l != 0 {
			m[[2]int{l, next[l]}] = s
			next[l]++
		}
	}
	return m
}

func fixedCodes() (codeMap, codeMap) {
	l := make([]int, 288)
	for i := range l {
		l[i] = int(tables.lLen[i])
	}
	d := make([]int, 30)
	for i := range d {
		d[i] = 5
	}
	return canonical(l), canonical(d)
}

func (r *tokenReader) sym(m codeMap) int {
	code := 0
	for l := 1; l < 16 && r.err == nil; l++ {
		code = code<<1 | r.bits(1)
		if s, ok := m[[2]int{l, code}]; ok {
			return s
		}
	}
	r.err = fmt.Errorf("bad code at bit %d", r.pos)
	return 999
}

func (r *tokenReader) dynamicCodes() (codeMap, codeMap) {
	hlit, hdist, hclen := r.bits(5)+257, r.bits(5)+1, r.bits(4)+4
	cl := make([]int, blCodes)
	for i := range hclen {
		cl[blOrder[i]] = r.bits(3)
	}
	cm := canonical(cl)
	var lens []int
	for len(lens) < hlit+hdist && r.err == nil {
		switch s := r.sym(cm); {
		case s < 16:
			lens = append(lens, s)
		case s == 16 && len(lens) > 0:
			for n := r.bits(2) + 3; n > 0; n-- {
				lens = append(lens, lens[len(lens)-1])
			}
		case s == 17:
			lens = append(lens, make([]int, r.bits(3)+3)...)
		case s == 18:
			lens = append(lens, make([]int, r.bits(7)+11)...)
		default:
			r.err = fmt.Errorf("bad code length code %d", s)
		}
	}
	if r.err != nil || len(lens) < hlit+hdist {
		return codeMap{}, codeMap{}
	}
	return canonical(lens[:hlit]), canonical(lens[hlit : hlit+hdist])
}
