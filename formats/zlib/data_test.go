package zlib

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Test inputs. Everything is deterministic for a given seed (and, for the
// disk-like data, a given GOROOT, whose files serve as realistic file
// contents; the goldens are computed from the same bytes, so the exact
// GOROOT does not matter).

func zerosData(n int) []byte { return make([]byte, n) }

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

var words = strings.Fields(`the of and to in is that for it as was with be by on not he
this are or his from at which but have an they you were her she there been one all we
their has would when if so no will can more other what some them time only new into
kernel module device driver block sector partition filesystem inode journal extent
config systemd service unit target mount boot loader image release checksum`)

func textData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	var sb strings.Builder
	for sb.Len() < n {
		line := 3 + r.IntN(12)
		for i := 0; i < line; i++ {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(5) == 0 {
			sb.WriteString(" = 0x")
			sb.WriteString(strings.Repeat("0123456789abcdef"[r.IntN(16):][:1], 1+r.IntN(4)))
		}
		sb.WriteString(".\n")
	}
	return []byte(sb.String()[:n])
}

// gorootFiles are file contents used as realistic disk data: Go sources
// (text) and toolchain binaries (ELF). Loaded once; may be empty.
var gorootFiles = sync.OnceValue(func() [][]byte {
	root := goroot()
	var paths []string
	add := func(dir string, keep func(string) bool, limit int64) {
		var sub int64
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || sub > limit || !keep(p) {
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				paths = append(paths, p)
				sub += info.Size()
			}
			return nil
		})
	}
	add("src/net", func(p string) bool { return strings.HasSuffix(p, ".go") }, 4<<20)
	add("src/crypto", func(p string) bool { return strings.HasSuffix(p, ".go") }, 4<<20)
	add("pkg/tool", func(p string) bool { return !strings.Contains(filepath.Base(p), ".") }, 24<<20)
	sort.Strings(paths)
	var files [][]byte
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			files = append(files, b)
		}
	}
	return files
})

// diskImage returns n bytes shaped like a filesystem image in 4 KiB blocks:
// file contents (Go sources, ELF binaries) with zero-padded tails, runs of
// zero blocks, incompressible extents (compressed/encrypted files), and
// metadata-like tables of small records.
func diskImage(n int, seed uint64) []byte {
	const blk = 4096
	r := rand.New(rand.NewPCG(seed, 42))
	files := gorootFiles()
	img := make([]byte, 0, n+16*blk)
	for len(img) < n {
		switch k := r.IntN(100); {
		case k < 50: // a file's content, possibly partial, zero-padded to a block
			var f []byte
			if len(files) > 0 {
				f = files[r.IntN(len(files))]
				if len(f) > 256<<10 {
					off := r.IntN(len(f)-128<<10) &^ (blk - 1)
					f = f[off : off+(32<<10)+r.IntN(96<<10)]
				}
			} else {
				f = textData(1+r.IntN(64<<10), r.Uint64())
			}
			img = append(img, f...)
			if pad := len(img) % blk; pad != 0 {
				img = append(img, make([]byte, blk-pad)...)
			}
		case k < 70: // free space
			img = append(img, make([]byte, blk*(1+r.IntN(24)))...)
		case k < 80: // incompressible extent
			img = append(img, randomData(blk*(1+r.IntN(6)), r.Uint64())...)
		case k < 90: // inode-table-like records
			nb := 1 + r.IntN(4)
			rec := make([]byte, 128)
			for i := 0; i < nb*blk/len(rec); i++ {
				clear(rec)
				if r.IntN(3) > 0 {
					le32(rec[0:], uint32(0o100644|r.IntN(2)<<6))
					le32(rec[4:], uint32(r.IntN(1<<20)))
					le32(rec[8:], 1700000000+uint32(r.IntN(1<<16)))
					le32(rec[12:], 1700000000+uint32(r.IntN(1<<16)))
					le32(rec[40:], uint32(len(img)/blk+i))
					le32(rec[44:], uint32(r.IntN(64)))
				}
				img = append(img, rec...)
			}
		default: // text
			img = append(img, textData(blk*(1+r.IntN(8)), r.Uint64())...)
		}
	}
	return img[:n]
}

// goroot is `go env GOROOT` ("" if that fails).
var goroot = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// elfBinary is the go command's binary (an ELF file on Linux), or nil.
var elfBinary = sync.OnceValue(func() []byte {
	if goroot() == "" {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(goroot(), "bin", "go"+exeSuffix()))
	return b
})

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// elfData is n bytes of the go binary from a seed-dependent offset (text
// when the binary is missing).
func elfData(n int, seed uint64) []byte {
	b := elfBinary()
	if len(b) < n+1 {
		return textData(n, seed)
	}
	off := int(seed * 7919 * 4096 % uint64(len(b)-n))
	return b[off : off+n]
}

// repetitiveData is short patterns repeated with rare mutations: long
// matches at small distances, long hash chains.
func repetitiveData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 5))
	b := make([]byte, 0, n+64)
	for len(b) < n {
		pat := randomData(1+r.IntN(24), r.Uint64())
		if r.IntN(3) == 0 {
			pat = []byte("ab")[:1+r.IntN(2)]
		}
		for k := r.IntN(2000); k > 0 && len(b) < n; k-- {
			b = append(b, pat...)
			if r.IntN(100) == 0 {
				b[len(b)-1] ^= byte(1 + r.IntN(255))
			}
		}
	}
	return b[:n]
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }

// mixedData interleaves short pieces of every kind, down to sub-block size.
func mixedData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, 0, n+4096)
	for len(b) < n {
		m := 1 + r.IntN(3000)
		switch r.IntN(4) {
		case 0:
			b = append(b, zerosData(m)...)
		case 1:
			b = append(b, textData(m, r.Uint64())...)
		case 2:
			b = append(b, randomData(m, r.Uint64())...)
		default:
			b = append(b, diskImage(m, r.Uint64())...)
		}
	}
	return b[:n]
}

type namedInput struct {
	name string
	data []byte
}

// corpus is the differential test's input set: each kind at each size up
// to 64 KiB (with big, up to 4 MiB), odd sizes around zlib's internal
// boundaries and mixed data of random sizes up to 300 KiB.
func corpus(big bool) []namedInput {
	sizes := []int{0, 1, 511, 4 << 10, 64 << 10}
	if big {
		sizes = append(sizes, 256<<10, 2<<20)
	}
	kinds := []struct {
		name string
		gen  func(n int, seed uint64) []byte
	}{
		{"zeros", func(n int, _ uint64) []byte { return zerosData(n) }},
		{"text", textData},
		{"random", randomData},
		{"mixed", mixedData},
		{"disk", diskImage},
		{"elf", elfData},
		{"repetitive", repetitiveData},
	}
	var in []namedInput
	for _, k := range kinds {
		for i, n := range sizes {
			in = append(in, namedInput{k.name + "-" + itoa(n), k.gen(n, uint64(i+1))})
		}
	}
	// Odd sizes around zlib's internal boundaries (window, lookahead,
	// symbol buffer) and a few arbitrary ones.
	r := rand.New(rand.NewPCG(99, 99))
	for _, n := range []int{2, 3, 257, 258, 259, 262, 4095, 4097, 8191, 8192, 16384 - 1, 32768 + 1, 65535, 65536, 65537, 1<<17 + 3} {
		in = append(in, namedInput{"disk-odd-" + itoa(n), diskImage(n, r.Uint64())})
	}
	if big {
		in = append(in, namedInput{"disk-4M", diskImage(4<<20, 4)}, namedInput{"elf-4M", elfData(4<<20, 4)})
	}
	for i := 0; i < 12; i++ {
		n := r.IntN(300 << 10)
		in = append(in, namedInput{"mixed-r" + itoa(n), mixedData(n, r.Uint64())})
	}
	return in
}

func itoa(n int) string { return strconv.Itoa(n) }
