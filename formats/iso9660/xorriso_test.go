package iso9660

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// makeTree writes the files the test ISOs hold into dir: a live ISO's
// images/pxeboot files and FAT efiboot.img, a BIOS boot image, text and
// random files, a copy and a hard link (sharing an extent), empty files,
// a symbolic link, a directory twelve levels deep, and a directory of
// long names spanning several blocks.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 9))
	random := func(n int) []byte { return formattest.RandomBytes(rng, n) }
	write := func(name string, data []byte) { formattest.WriteFile(t, filepath.Join(dir, name), data) }
	write("images/pxeboot/vmlinuz", random(300<<10+17))
	write("images/pxeboot/initrd.img", random(200<<10))
	write("images/pxeboot/rootfs.img", random(500<<10+2047))
	write("images/ignition.img", make([]byte, 64<<10))
	write("boot/bios.bin", random(5000))
	write("hello.txt", []byte("hello, iso\n"))
	data := random(70 << 10)
	write("data/random.bin", data)
	write("data/copy.bin", data)
	if err := os.Link(filepath.Join(dir, "data/random.bin"), filepath.Join(dir, "data/hard.bin")); err != nil {
		t.Fatal(err)
	}
	write("empty1", nil)
	write("data/empty2", nil)
	if err := os.Symlink("hello.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	deep := "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12"
	write(deep+"/deep.txt", []byte("deep\n"))
	for i := range 60 {
		write(fmt.Sprintf("many/a-rather-long-file-name-to-fill-directory-blocks-%03d.txt", i), []byte(strings.Repeat("x", i)))
	}

	// efiboot.img: FAT with an EFI/BOOT directory.
	testtool.Require(t, "mkfs.fat")
	testtool.Require(t, "mcopy")
	testtool.Require(t, "mmd")
	efi := filepath.Join(dir, "images/efiboot.img")
	testtool.Run(t, "mkfs.fat", "-C", "-i", "12345678", efi, "1024")
	bootx := formattest.WriteFile(t, filepath.Join(t.TempDir(), "BOOTX64.EFI"), random(100<<10))
	testtool.Run(t, "mmd", "-i", efi, "::EFI", "::EFI/BOOT")
	testtool.Run(t, "mcopy", "-i", efi, bootx, "::EFI/BOOT/BOOTX64.EFI")
}

// extent is where xorriso says a file's data is.
type extent struct {
	path         string
	block, size  int64
	multiExtents bool
}

var reportLine = regexp.MustCompile(`^File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'(.*)'$`)

// xorrisoExtents lists the data extents of the files in iso, by xorriso.
func xorrisoExtents(t *testing.T, iso string) []extent {
	t.Helper()
	out := testtool.Run(t, "xorriso", "-indev", iso, "-find", "/", "-type", "f", "-exec", "report_lba", "--")
	var exts []extent
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := reportLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		xt, _ := strconv.Atoi(m[1])
		block, _ := strconv.ParseInt(m[2], 10, 64)
		size, _ := strconv.ParseInt(m[4], 10, 64)
		exts = append(exts, extent{path: strings.TrimPrefix(m[5], "/"), block: block, size: size, multiExtents: xt > 0})
	}
	if len(exts) == 0 {
		t.Fatalf("xorriso reported no files:\n%s", out)
	}
	return exts
}

// extract returns the regular files xorriso extracts from iso, by path.
func extract(t *testing.T, iso string) map[string][]byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	testtool.Run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dir)
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// isoCase is one way of making an ISO from the test tree.
type isoCase struct {
	name string
	args []string // xorriso arguments; "OUT", "SRC" and "MBR" are replaced
	boot []string // El Torito images the ISO has, by path
	has  string   // bytes the image holds (proof the option took effect)
}

var isoCases = []isoCase{
	{"default", []string{"-as", "mkisofs", "-o", "OUT", "SRC"}, nil, "SP\x07\x01\xbe\xef"},
	{"rr-joliet", []string{"-as", "mkisofs", "-r", "-J", "-joliet-long", "-o", "OUT", "SRC"}, nil, "\x00-\x00l\x00o\x00n\x00g"},
	{"joliet-only", []string{"-outdev", "OUT", "-rockridge", "off", "-joliet", "on", "-map", "SRC", "/"}, nil, "%/E"},
	{"iso-only", []string{"-outdev", "OUT", "-rockridge", "off", "-joliet", "off", "-map", "SRC", "/"}, nil, "HELLO.TXT;1"},
	{"rr-relocated", []string{"-as", "mkisofs", "-r", "-rr_reloc_dir", "rr_moved", "-o", "OUT", "SRC"}, nil, "RE\x04\x01"},
	{"eltorito-hybrid", []string{"-as", "mkisofs", "-r", "-J", "-joliet-long",
		"-b", "boot/bios.bin", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-isohybrid-mbr", "MBR", "-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot",
		"-isohybrid-gpt-basdat", "-o", "OUT", "SRC"}, []string{"boot/bios.bin", "images/efiboot.img"}, "\x55\xaaEFI PART"},
	// testdata/mkrelease.sh's live ISO: EFI only.
	{"live", []string{"-as", "mkisofs", "-V", "fedora-coreos-42", "-volset", "fedora-coreos-42", "-r", "-J", "-joliet-long",
		"-isohybrid-mbr", "MBR", "-e", "images/efiboot.img", "-no-emul-boot", "-isohybrid-gpt-basdat",
		"-o", "OUT", "SRC"}, []string{"images/efiboot.img"}, "\x55\xaaEFI PART"},
}

// testTree writes makeTree's files and a zero isohybrid MBR (as
// testdata/mkrelease.sh does: no syslinux).
func testTree(t *testing.T) (src, mbr string) {
	testtool.Require(t, "xorriso")
	src = t.TempDir()
	makeTree(t, src)
	return src, formattest.WriteFile(t, filepath.Join(t.TempDir(), "mbr.bin"), make([]byte, 432))
}

// buildISO makes c's ISO of src and returns its path and bytes.
func buildISO(t *testing.T, c isoCase, src, mbr string) (string, []byte) {
	t.Helper()
	iso := filepath.Join(t.TempDir(), "out.iso")
	args := []string{"-report_about", "SORRY"}
	for _, a := range c.args {
		switch a {
		case "OUT":
			a = iso
		case "SRC":
			a = src
		case "MBR":
			a = mbr
		}
		args = append(args, a)
	}
	testtool.Run(t, "xorriso", args...)
	return iso, formattest.ReadFile(t, iso)
}

// TestXorriso makes ISOs with xorriso and checks Files against xorriso's
// own report and extraction, and Split's round trip and content.
func TestXorriso(t *testing.T) {
	src, mbr := testTree(t)
	for _, c := range isoCases {
		t.Run(c.name, func(t *testing.T) {
			iso, img := buildISO(t, c, src, mbr)
			checkISO(t, iso, img, c)
		})
	}
}

func checkISO(t *testing.T, iso string, img []byte, c isoCase) {
	if !bytes.Contains(img, []byte(c.has)) {
		t.Errorf("the image lacks %q", c.has)
	}
	if !Detect(img[:64<<10]) {
		t.Fatal("Detect: false")
	}
	l, err := readLayout(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	files := l.files
	byPath := map[string]File{}
	byExtent := map[[2]int64]File{}
	for _, f := range files {
		byPath[f.Path] = f
		byExtent[[2]int64{f.Offset, f.Size}] = f
	}

	// Every file xorriso reports with data is listed, under one of the
	// paths of its extent; every tree file listed is one xorriso reports.
	exts := xorrisoExtents(t, iso)
	paths := map[[2]int64][]string{}
	for _, e := range exts {
		if e.multiExtents {
			t.Errorf("%s: xorriso made a multi-extent file", e.path)
		}
		if e.size > 0 {
			k := [2]int64{e.block * blockSize, e.size}
			paths[k] = append(paths[k], e.path)
		}
	}
	for k, ps := range paths {
		f, ok := byExtent[k]
		if !ok {
			t.Errorf("%v (%d bytes at %#x): not listed", ps, k[1], k[0])
			continue
		}
		if !bytes.Contains([]byte("\x00"+strings.Join(ps, "\x00")+"\x00"), []byte("\x00"+f.Path+"\x00")) {
			t.Errorf("%d bytes at %#x: listed as %q, xorriso says %q", k[1], k[0], f.Path, ps)
		}
	}
	for _, f := range files {
		if paths[[2]int64{f.Offset, f.Size}] == nil && !(f.Offset == l.catalog && f.Size == blockSize) {
			t.Errorf("%q (%d bytes at %#x): listed, but no file xorriso reports", f.Path, f.Size, f.Offset)
		}
	}

	// The boot images are files, listed.
	var boots []bootEntry
	if l.catalog >= 0 {
		if boots, err = newWalker(bytes.NewReader(img), int64(len(img))).bootImages(l.catalog); err != nil {
			t.Fatal(err)
		}
	}
	if len(boots) != len(c.boot) {
		t.Errorf("%d boot images, want %d", len(boots), len(c.boot))
	}
	for i, b := range boots {
		if i < len(c.boot) && byPath[c.boot[i]].Offset != b.block*blockSize {
			t.Errorf("boot image %d at block %d: %s is at %#x", i, b.block, c.boot[i], byPath[c.boot[i]].Offset)
		}
	}

	// Extracted files are the bytes of their extents.
	extracted := extract(t, iso)
	byXorrisoPath := map[string]extent{}
	for _, e := range exts {
		byXorrisoPath[e.path] = e
	}
	nonEmpty := 0
	for p, data := range extracted {
		if l.catalog >= 0 && len(data) == blockSize && bytes.Equal(img[l.catalog:][:blockSize], data) {
			delete(extracted, p) // the boot catalog, described verbatim
			continue
		}
		e, ok := byXorrisoPath[p]
		if !ok {
			t.Errorf("%s: extracted, but not reported", p)
			continue
		}
		if len(data) == 0 {
			continue
		}
		nonEmpty++
		if _, ok := byExtent[[2]int64{e.block * blockSize, int64(len(data))}]; !ok {
			t.Errorf("%s: extent not listed", p)
		}
		if !bytes.Equal(img[e.block*blockSize:][:len(data)], data) {
			t.Errorf("%s: extracted bytes differ from the extent's", p)
		}
	}
	if want := 70; nonEmpty != want { // 7 files, 59 in many/, 3 in data/, deep.txt
		t.Errorf("%d non-empty files extracted, want %d", nonEmpty, want)
	}

	// Round trip; the content stream holds each file's bytes, once.
	recipe, content, st := formattest.RoundTrip(t, Split, img)
	for p, data := range extracted {
		if !bytes.Contains(content, data) {
			t.Errorf("%s: not in the content stream", p)
		}
	}
	var want int64
	for _, f := range files {
		if f.Offset != l.catalog {
			want += f.Size
		}
	}
	if st.Content != want {
		t.Errorf("content: %d bytes, want the %d of the distinct extents", st.Content, want)
	}
	t.Logf("%d-byte ISO, %d files: recipe %d bytes (%d verbatim, %d zero), content %d bytes",
		len(img), len(files), len(recipe), st.Verbatim, st.Zero, st.Content)
	if len(recipe) > 8<<10 {
		t.Errorf("recipe: %d bytes, want at most 8 KiB", len(recipe))
	}
}
