package tar

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// reproducible are the GNU tar options mkrelease.sh uses for stable
// archives.
var reproducible = []string{"--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner"}

// TestGNUTar archives a tree with GNU tar in every format it writes,
// cross-checks Members with archive/tar and round-trips each archive.
func TestGNUTar(t *testing.T) {
	gnutar := testtool.Require(t, "tar")
	for _, f := range []struct {
		format    string
		long      bool // names that need ustar's prefix
		veryLong  bool // names only GNU and pax store
		wantTypes string
	}{
		{"v7", false, false, "0125"},
		{"ustar", true, false, "0125"},
		{"oldgnu", true, true, "0125LK"},
		{"gnu", true, true, "0125LK"},
		{"posix", true, true, "0125x"},
	} {
		t.Run(f.format, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			tree(t, src, f.long)
			if f.veryLong {
				treeLong(t, src)
			}
			out := filepath.Join(dir, "out.tar")
			args := append([]string{"--format=" + f.format}, reproducible...)
			testtool.Run(t, gnutar, append(args, "-C", src, "-cf", out, ".")...)
			img := formattest.ReadFile(t, out)
			if !Detect(img) {
				t.Fatalf("Detect = false on GNU tar's %s header %q", f.format, img[:blockSize])
			}
			ms, st := checkArchive(t, img)
			if st.Verbatim > int64(len(ms))*3*blockSize {
				t.Errorf("%d bytes kept verbatim for %d members", st.Verbatim, len(ms))
			}
			types := headerTypes(t, img)
			for _, c := range f.wantTypes {
				if !strings.ContainsRune(types, c) {
					t.Errorf("archive has header types %q, none %q", types, c)
				}
			}
			if f.veryLong && !hasName(ms, strings.Repeat("h", 100)) {
				t.Errorf("no member with the 300-character name")
			}
		})
	}
}

// headerTypes returns the typeflags of every header block, walking the
// size fields alone (no sparse or pax handling: enough for these tests).
func headerTypes(tb testing.TB, img []byte) string {
	tb.Helper()
	var types []byte
	for off := 0; off+blockSize <= len(img) && !allZero(img[off:off+blockSize]); {
		h, err := parseHeader(img[off : off+blockSize])
		if err != nil {
			tb.Fatalf("header at %#x: %v", off, err)
		}
		t := h.typeflag
		if t == 0 {
			t = '0'
		}
		if !strings.ContainsRune(string(types), rune(t)) {
			types = append(types, t)
		}
		n := h.size
		if headerOnly(h.typeflag) {
			n = 0
		}
		off += blockSize + int(n+padLen(n))
	}
	return string(types)
}

func hasName(ms []Member, suffix string) bool {
	for _, m := range ms {
		if strings.HasSuffix(m.Name, suffix) {
			return true
		}
	}
	return false
}

// sparseFile describes a file with holes: data parts and hole lengths.
type sparseFile struct {
	name  string
	parts []any // []byte written, int skipped (a hole)
}

func sparseFiles() []sparseFile {
	rep := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	var many []any
	for i := range 30 {
		many = append(many, rep(byte('A'+i%26), 700), 8192)
	}
	return []sparseFile{
		{"mid", []any{rep('a', 3000), 20000, rep('b', 700)}},
		{"endhole", []any{rep('c', 1000), 5000, rep('d', 100), 32768}},
		{"starthole", []any{16384, rep('e', 2000)}},
		{"many", many},
		{"allhole", []any{100000}},
		{"zeros", []any{rep('x', 512), make([]byte, 8192), rep('y', 10), 8192}},
	}
}

// write makes f in dir, holes seeked over, and returns its bytes.
func (f sparseFile) write(tb testing.TB, dir string) []byte {
	tb.Helper()
	var all []byte
	fd, err := os.Create(filepath.Join(dir, f.name))
	if err != nil {
		tb.Fatal(err)
	}
	defer fd.Close()
	for _, p := range f.parts {
		switch p := p.(type) {
		case []byte:
			if _, err := fd.Write(p); err != nil {
				tb.Fatal(err)
			}
			all = append(all, p...)
		case int:
			if _, err := fd.Seek(int64(p), 1); err != nil {
				tb.Fatal(err)
			}
			all = append(all, make([]byte, p)...)
		}
	}
	if err := fd.Truncate(int64(len(all))); err != nil {
		tb.Fatal(err)
	}
	return all
}

// TestSparse archives files with holes as GNU tar does for the gcp image
// (old GNU, raw hole detection) and in its other sparse formats, and
// checks the maps against the files and archive/tar, the content stream
// against the files' data fragments, and the round trip.
func TestSparse(t *testing.T) {
	gnutar := testtool.Require(t, "tar")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range sparseFiles() {
		files[f.name] = f.write(t, src)
	}
	files["plain"] = bytes.Repeat([]byte("not sparse "), 500)
	formattest.WriteFile(t, filepath.Join(src, "plain"), files["plain"])
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(src, "allhole"), &st); err != nil || st.Blocks != 0 {
		t.Skipf("the file system of %s makes no holes (stat: %v, %d blocks)", src, err, st.Blocks)
	}

	for _, f := range []struct {
		name string
		args []string
	}{
		{"oldgnu", []string{"--format=oldgnu"}},
		{"gnu", []string{"--format=gnu"}},
		{"pax-0.0", []string{"--format=posix", "--sparse-version=0.0"}},
		{"pax-0.1", []string{"--format=posix", "--sparse-version=0.1"}},
		{"pax-1.0", []string{"--format=posix", "--sparse-version=1.0"}},
	} {
		t.Run(f.name, func(t *testing.T) {
			out := filepath.Join(dir, f.name+".tar")
			args := append(f.args, "-S", "--hole-detection=raw")
			args = append(args, reproducible...)
			testtool.Run(t, gnutar, append(args, "-C", src, "-cf", out, ".")...)
			img := formattest.ReadFile(t, out)
			ms := crossCheck(t, img)
			_, content, _ := formattest.RoundTrip(t, Split, img)

			// The content stream is each member's stored data: a sparse
			// member's data fragments, cut from the file on disk.
			var want []byte
			sparse := 0
			for _, m := range ms {
				name := strings.TrimPrefix(m.Name, "./")
				file, ok := files[name]
				switch {
				case !ok:
					continue
				case m.Sparse:
					sparse++
					if m.RealSize != int64(len(file)) {
						t.Fatalf("%s: real size %d, the file has %d", name, m.RealSize, len(file))
					}
					for _, fr := range m.Map {
						want = append(want, file[fr.Offset:fr.Offset+fr.Length]...)
					}
					if name == "many" && f.name == "oldgnu" && len(m.Map) <= gnuSparseEntries+extEntries {
						t.Errorf("many: %d fragments, want more than %d (two extension headers)", len(m.Map), gnuSparseEntries+extEntries)
					}
					if !bytes.Equal(expand(m, img[m.Offset:m.Offset+m.Size]), file) {
						t.Fatalf("%s: the map and the stored data do not re-create the file", name)
					}
				default:
					want = append(want, file...)
				}
			}
			if sparse != len(files)-1 {
				t.Errorf("%d sparse members, want %d", sparse, len(files)-1)
			}
			if !bytes.Equal(content, want) {
				t.Fatalf("content (%d bytes) is not the files' data fragments (%d bytes), first difference at %d", len(content), len(want), formattest.FirstDiff(content, want))
			}
			t.Logf("%d-byte archive: %d bytes of content", len(img), len(content))
		})
	}
}

// pyTar is a python3 program writing an archive of a directory with
// tarfile, in the format argv[3], with fixed owners and times.
const pyTar = `
import sys, tarfile
fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[sys.argv[3]]
def fix(ti):
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 1700000000, 0, 0, "root", "root"
    return ti
with tarfile.open(sys.argv[2], "w", format=fmt) as t:
    for name in sys.argv[4:]:
        t.add(sys.argv[1] + "/" + name, arcname=name, filter=fix)
`

// TestPython archives a tree with python3's tarfile, as many OVA tools
// do, in its three formats.
func TestPython(t *testing.T) {
	py := testtool.Require(t, "python3")
	for _, f := range []string{"ustar", "gnu", "pax"} {
		t.Run(f, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			tree(t, src, true)
			if f != "ustar" {
				treeLong(t, src)
			}
			ents, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.tar")
			args := []string{"-c", pyTar, src, out, f}
			for _, e := range ents {
				args = append(args, e.Name())
			}
			testtool.Run(t, py, args...)
			img := formattest.ReadFile(t, out)
			if !Detect(img) {
				t.Fatalf("Detect = false on tarfile's %s header", f)
			}
			checkArchive(t, img)
		})
	}
}
