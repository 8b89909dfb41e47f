package testrelease

import (
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/stream"
)

type streamDoc struct {
	Stream   string `json:"stream"`
	Metadata struct {
		LastModified string `json:"last-modified"`
		Generator    string `json:"generator"`
	} `json:"metadata"`
	Architectures map[string]struct {
		Artifacts map[string]struct {
			Release string                                  `json:"release"`
			Formats map[string]map[string]map[string]string `json:"formats"`
		} `json:"artifacts"`
		Images map[string]any `json:"images"`
	} `json:"architectures"`
}

type entry struct {
	platform, format, role string
	fields                 map[string]string
}

// want is the release's shape: platform -> format keys, as FCOS ships them.
var want = map[string][]string{
	"metal":        {"raw.xz", "4k.raw.xz", "iso", "pxe"},
	"qemu":         {"qcow2.xz"},
	"openstack":    {"qcow2.xz"},
	"oraclecloud":  {"qcow2.xz"},
	"proxmoxve":    {"qcow2.xz"},
	"aliyun":       {"qcow2.xz"},
	"ibmcloud":     {"qcow2.xz"},
	"exoscale":     {"qcow2.xz"},
	"digitalocean": {"qcow2.gz"},
	"nutanix":      {"qcow2"},
	"aws":          {"vmdk.xz"},
	"vmware":       {"ova"},
	"virtualbox":   {"ova"},
	"azure":        {"vhd.xz"},
	"azurestack":   {"vhd.xz"},
	"hyperv":       {"vhdx.zip"},
	"gcp":          {"tar.gz"},
	"vultr":        {"raw.xz"},
	"hetzner":      {"raw.xz"},
	"applehv":      {"raw.gz"},
	"kubevirt":     {"ociarchive"},
}

func loadStream(t *testing.T, dir string) (*streamDoc, []entry) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, StreamFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc streamDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", StreamFile, err)
	}
	var es []entry
	for _, a := range doc.Architectures {
		for plat, p := range a.Artifacts {
			for fk, roles := range p.Formats {
				for role, f := range roles {
					es = append(es, entry{plat, fk, role, f})
				}
			}
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].fields["location"] < es[j].fields["location"] })
	return &doc, es
}

// TestStreamDescribesDir checks that stream.json lists every file of the
// release directory, and nothing else, with the right digests and the
// FCOS shape.
func TestStreamDescribesDir(t *testing.T) {
	checkRelease(t, Dir(t), "x86_64", want)
}

// wantMini is each mini release's shape.
var wantMini = map[string]map[string][]string{
	"aarch64": {"aws": {"vmdk.xz"}, "applehv": {"raw.gz"}},
	"ppc64le": {"powervs": {"ova.gz"}},
	"s390x":   {"qemu-secex": {"qcow2.xz"}},
}

// TestMini checks each mini release as TestStreamDescribesDir checks the
// main one, and that its uncompressed digests are right.
func TestMini(t *testing.T) {
	for _, arch := range MiniArches {
		t.Run(arch, func(t *testing.T) {
			if arch == "s390x" && testing.Short() {
				t.Skip("the multi-arch tests use aarch64 and ppc64le; s390x is built only without -short")
			}
			w := map[string][]string{
				"metal":     {"raw.xz", "4k.raw.xz"},
				"qemu":      {"qcow2.xz"},
				"openstack": {"qcow2.xz"},
				"newcloud":  {"raw.zst"},
			}
			maps.Copy(w, wantMini[arch])
			dir := Mini(t, arch)
			checkRelease(t, dir, arch, w)
			checkUncompressed(t, dir)
		})
	}
}

func TestMiniUnknownArch(t *testing.T) {
	ft := &fatalTB{TB: t}
	func() {
		defer func() { recover() }()
		Mini(ft, "riscv64")
	}()
	if !ft.failed {
		t.Error("Mini(riscv64) did not fail")
	}
}

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}

// TestMerge merges two mini releases and checks the result.
func TestMerge(t *testing.T) {
	dirs := []string{Mini(t, "aarch64"), Mini(t, "ppc64le")}
	data, locate := Merge(t, dirs...)
	st, err := stream.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Arches(); !slices.Equal(got, []string{"aarch64", "ppc64le"}) {
		t.Errorf("arches %v", got)
	}
	if st.Stream != "stable" || st.Metadata.Generator == "" {
		t.Errorf("header %+v", st)
	}
	n := 0
	for _, a := range st.Artifacts() {
		p := locate(a)
		if want := filepath.Join(dirs[map[string]int{"aarch64": 0, "ppc64le": 1}[a.Arch]], a.Name()); p != want {
			t.Errorf("%s: locate = %s, want %s", a.ID(), p, want)
		}
		got, err := fileSHA256(p)
		if err != nil || got != a.File.SHA256 {
			t.Errorf("%s: %s: sha256 %s (%v), want %s", a.ID(), p, got, err, a.File.SHA256)
		}
		n++
	}
	if n != 13 {
		t.Errorf("%d artifacts, want 13", n)
	}
	// The same architecture twice is refused.
	ft := &fatalTB{TB: t}
	func() {
		defer func() { recover() }()
		Merge(ft, dirs[0], dirs[0])
	}()
	if !ft.failed {
		t.Error("Merge of one architecture twice did not fail")
	}
}

// TestPruneStale checks that pruning one script's old outputs leaves the
// other scripts' (and the other architectures') alone.
func TestPruneStale(t *testing.T) {
	cache := t.TempDir()
	old := time.Now().Add(-2 * staleAfter)
	names := []string{
		"release-1111", "release-1111.lock",
		"mini-aarch64-2222", "mini-aarch64-2222.lock", ".mini-aarch64-2222.tmp-9",
		"mini-aarch64-3333", "mini-aarch64-3333.lock",
		"mini-ppc64le-4444", "mini-ppc64le-4444.lock",
	}
	for _, n := range names {
		p := filepath.Join(cache, n)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	pruneStale(cache, "mini-aarch64-", "mini-aarch64-3333")
	var left []string
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{"mini-aarch64-3333", "mini-aarch64-3333.lock", "mini-ppc64le-4444", "mini-ppc64le-4444.lock",
		"release-1111", "release-1111.lock"}
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// TestScriptKey checks that the cache key covers the files the scripts
// source and run, and only those.
func TestScriptKey(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	testdata := filepath.Join(root, "testdata")
	keys := map[string]bool{}
	for _, script := range []string{"mkrelease.sh", "mkmini.sh"} {
		key, files, err := scriptKey(testdata, script)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{script, "release-lib.sh", "release-helpers.py"}; !slices.Equal(files, want) {
			t.Errorf("%s: key covers %v, want %v", script, files, want)
		}
		if len(key) != 16 || keys[key] {
			t.Errorf("%s: key %q (not 16 hex digits, or another script's)", script, key)
		}
		keys[key] = true
	}

	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func() string {
		t.Helper()
		k, _, err := scriptKey(dir, "mk.sh")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("mk.sh", "#!/bin/bash\n# uses \"$TESTDATA/NAME\" files\n. \"$TESTDATA/lib.sh\"\n"+
		"cat >grub.cfg <<'EOF'\nsource ${config_directory}/bootuuid.cfg\nEOF\nx=$((1 << 2)) y=$(cat <<<\"$x\")\n")
	write("lib.sh", "py() { python3 \"${TESTDATA}/h.py\" \"$@\"; }\n")
	write("h.py", "print(1)\n")
	write("other.sh", "echo\n")
	k0 := key()
	write("other.sh", "echo 2\n")
	if k := key(); k != k0 {
		t.Errorf("key changed with a file the script does not use")
	}
	write("h.py", "print(2)\n")
	k1 := key()
	if k1 == k0 {
		t.Errorf("key did not change with a file the library runs")
	}
	write("lib.sh", "py() { python3 \"${TESTDATA}/h.py\" \"$@\"; } \n")
	if k := key(); k == k1 {
		t.Errorf("key did not change with the library")
	}
	for _, bad := range []string{
		"source \"$(dirname \"$0\")/lib.sh\"\n", // not as $TESTDATA/NAME
		". \"$TESTDATA/missing.sh\"\n",
	} {
		write("mk.sh", bad)
		if _, _, err := scriptKey(dir, "mk.sh"); err == nil {
			t.Errorf("scriptKey of %q: no error", bad)
		}
	}
}

// checkRelease checks that stream.json lists every file of the release
// directory, and nothing else, with the right digests and the FCOS shape:
// one architecture, arch, whose platforms and format keys are want's.
func checkRelease(t *testing.T, dir, archName string, want map[string][]string) {
	t.Helper()
	doc, entries := loadStream(t, dir)

	if doc.Stream != "stable" || doc.Metadata.LastModified == "" || doc.Metadata.Generator == "" {
		t.Errorf("stream header: %+v", doc)
	}
	if len(doc.Architectures) != 1 {
		t.Fatalf("architectures: got %d, want 1 (%s)", len(doc.Architectures), archName)
	}
	arch, ok := doc.Architectures[archName]
	if !ok || arch.Images == nil {
		t.Fatalf("missing %s or its images object", archName)
	}
	for plat, fmts := range want {
		p, ok := arch.Artifacts[plat]
		if !ok {
			t.Errorf("platform %s missing", plat)
			continue
		}
		var got []string
		for k := range p.Formats {
			got = append(got, k)
		}
		sort.Strings(got)
		w := append([]string(nil), fmts...)
		sort.Strings(w)
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s formats: got %v, want %v", plat, got, w)
		}
		if p.Release == "" {
			t.Errorf("%s: no release", plat)
		}
	}
	if len(arch.Artifacts) != len(want) {
		t.Errorf("got %d platforms, want %d", len(arch.Artifacts), len(want))
	}

	listed := map[string]bool{}
	for _, e := range entries {
		loc := e.fields["location"]
		name := path.Base(loc)
		what := fmt.Sprintf("%s/%s/%s (%s)", e.platform, e.format, e.role, name)
		if listed[name] {
			t.Errorf("%s: listed twice", what)
		}
		listed[name] = true
		if !strings.HasPrefix(loc, "https://builds.example.invalid/") || !strings.Contains(loc, "/"+archName+"/") ||
			!strings.Contains(name, "."+archName) || e.fields["signature"] != loc+".sig" {
			t.Errorf("%s: bad location/signature %q %q", what, loc, e.fields["signature"])
		}
		wantRole := "disk"
		if e.format == "pxe" {
			wantRole = "" // kernel, initramfs, rootfs
			if e.role != "kernel" && e.role != "initramfs" && e.role != "rootfs" {
				t.Errorf("%s: unexpected pxe role", what)
			}
		}
		if wantRole != "" && e.role != wantRole {
			t.Errorf("%s: role %q, want %q", what, e.role, wantRole)
		}
		// Like FCOS: an uncompressed digest exactly for files that are a
		// compressed form of another file (not tar.gz, not containers).
		compressed := !strings.HasSuffix(name, ".tar.gz") &&
			(strings.HasSuffix(name, ".xz") || strings.HasSuffix(name, ".gz") ||
				strings.HasSuffix(name, ".zip") || strings.HasSuffix(name, ".zst"))
		if _, has := e.fields["uncompressed-sha256"]; has != compressed {
			t.Errorf("%s: uncompressed-sha256 present=%v, want %v", what, has, compressed)
		}
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if got != e.fields["sha256"] {
			t.Errorf("%s: sha256 %s, stream.json says %s", what, got, e.fields["sha256"])
		}
	}

	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range names {
		if de.Name() == StreamFile {
			continue
		}
		if !listed[de.Name()] {
			t.Errorf("%s is in the release dir but not in %s", de.Name(), StreamFile)
		}
		if !de.Type().IsRegular() {
			t.Errorf("%s: not a regular file", de.Name())
		}
	}
}

// TestUncompressedDigests decompresses every compressed artifact and checks
// its uncompressed-sha256.
func TestUncompressedDigests(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses ~3.5 GB; skipped in -short mode")
	}
	checkUncompressed(t, Dir(t))
}

// checkUncompressed decompresses every artifact of the release in dir that
// has an uncompressed-sha256 and checks it.
func checkUncompressed(t *testing.T, dir string) {
	_, entries := loadStream(t, dir)
	for _, e := range entries {
		want, ok := e.fields["uncompressed-sha256"]
		if !ok {
			continue
		}
		name := path.Base(e.fields["location"])
		t.Run(name, func(t *testing.T) {
			got, err := uncompressedSHA256(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("uncompressed sha256 %s, stream.json says %s", got, want)
			}
		})
	}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func uncompressedSHA256(p string) (string, error) {
	h := sha256.New()
	switch {
	case strings.HasSuffix(p, ".xz"):
		var stderr strings.Builder
		cmd := exec.Command("xz", "-dc", "-T2", p)
		cmd.Stdout, cmd.Stderr = h, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("xz -d: %v: %s", err, stderr.String())
		}
	case strings.HasSuffix(p, ".zst"):
		var stderr strings.Builder
		cmd := exec.Command("zstd", "-dcq", p)
		cmd.Stdout, cmd.Stderr = h, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("zstd -d: %v: %s", err, stderr.String())
		}
	case strings.HasSuffix(p, ".gz"):
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", err
		}
		zr.Multistream(false)
		if _, err := io.Copy(h, zr); err != nil {
			return "", err
		}
	case strings.HasSuffix(p, ".zip"):
		zr, err := zip.OpenReader(p)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		if len(zr.File) != 1 {
			return "", fmt.Errorf("%d members, want 1", len(zr.File))
		}
		r, err := zr.File[0].Open()
		if err != nil {
			return "", err
		}
		defer r.Close()
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("unknown compression")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
