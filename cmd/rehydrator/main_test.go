package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testrelease"
	"github.com/rehydrator/rehydrator/rehydrate"
	"github.com/rehydrator/rehydrator/stream"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the rehydrator command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rehydrator-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "rehydrator")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &exec.ExitError{Stderr: out}
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

type result struct {
	stdout, stderr []byte
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "REHYDRATOR_BUNDLE=")
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{stdout.Bytes(), stderr.Bytes(), code}
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("rehydrator %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

var (
	bundleOnce sync.Once
	bundleDir  string
)

// sharedBundle dehydrates the generated release once for all tests.
func sharedBundle(t *testing.T) (release, bundle string) {
	t.Helper()
	release = testrelease.Dir(t)
	bundleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rehydrator-bundle-")
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "bundle")
		mustRun(t, "dehydrate", "--stream", filepath.Join(release, "stream.json"), "--artifacts", release, "--output", out)
		bundleDir = out
	})
	if bundleDir == "" {
		t.Fatal("dehydrate failed in an earlier test")
	}
	return release, bundleDir
}

// expected maps output file name to the SHA-256 the stream publishes for the
// uncompressed artifact, computing it from the download where the stream has none.
func expected(t *testing.T, release string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(release, "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, a := range st.Artifacts() {
		switch {
		case a.Compression() == "":
			want[a.OutputName()] = a.File.SHA256
		case a.File.UncompressedSHA256 != "":
			want[a.OutputName()] = a.File.UncompressedSHA256
		default:
			want[a.OutputName()] = decompressedSHA256(t, filepath.Join(release, a.Name()), a.Compression())
		}
	}
	return want
}

// decompressedSHA256 hashes a download's content with the system's own tools.
func decompressedSHA256(t *testing.T, path, compression string) string {
	t.Helper()
	var cmd *exec.Cmd
	switch compression {
	case "gz":
		cmd = exec.Command("gzip", "-dc", path)
	case "xz":
		cmd = exec.Command("xz", "-dc", path)
	case "zip":
		cmd = exec.Command("unzip", "-p", path)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, out); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestRehydrateEveryArtifact(t *testing.T) {
	release, bundle := sharedBundle(t)
	want := expected(t, release)
	out := t.TempDir()
	mustRun(t, "rehydrate", "--from", bundle, out, "--all")
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range ents {
		got[e.Name()] = fileSHA256(t, filepath.Join(out, e.Name()))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rehydrated files differ from the release:\n got %v\nwant %v", got, want)
	}
	// Re-encoded containers pass the checks of tools no one here wrote.
	for name := range want {
		p := filepath.Join(out, name)
		var args [][]string
		switch filepath.Ext(name) {
		case ".qcow2", ".vmdk", ".vhdx":
			args = [][]string{{"info", p}, {"check", p}}
		case ".vhd":
			args = [][]string{{"info", "-f", "vpc", p}}
		}
		for _, a := range args {
			if b, err := exec.Command("qemu-img", a...).CombinedOutput(); err != nil {
				t.Errorf("qemu-img %s: %v\n%s", strings.Join(a, " "), err, b)
			}
		}
	}
	// Zero runs become holes: the metal image takes less disk than its size.
	for name := range want {
		if !strings.HasSuffix(name, "metal.x86_64.raw") {
			continue
		}
		fi, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512; alloc >= fi.Size()*3/4 {
			t.Errorf("%s: %d bytes allocated of %d: output is not sparse", name, alloc, fi.Size())
		}
	}
}

func TestRehydrateToStdout(t *testing.T) {
	release, bundle := sharedBundle(t)
	want := expected(t, release)
	// Flags after DEST, as in `podman run IMAGE rehydrate - --disk openstack`.
	r := mustRun(t, "rehydrate", "--from", bundle, "-", "--disk", "openstack")
	var name string
	for n := range want {
		if strings.Contains(n, "openstack") {
			name = n
		}
	}
	sum := sha256.Sum256(r.stdout)
	if hex.EncodeToString(sum[:]) != want[name] {
		t.Errorf("stdout is not %s", name)
	}
	// Several artifacts: a tar stream of verified files.
	r = mustRun(t, "rehydrate", "--pxe", "--from="+bundle, "-")
	tr := tar.NewReader(bytes.NewReader(r.stdout))
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, tr)
		if got := hex.EncodeToString(h.Sum(nil)); got != want[hdr.Name] {
			t.Errorf("tar entry %s: sha256 %s, want %s", hdr.Name, got, want[hdr.Name])
		}
		n++
	}
	if n != 3 {
		t.Errorf("--pxe gave %d tar entries, want 3", n)
	}
}

func TestRehydrateCompressed(t *testing.T) {
	release, bundle := sharedBundle(t)
	want := expected(t, release)
	out := t.TempDir()
	mustRun(t, "rehydrate", "--from", bundle, "--disk", "qemu", "--compress", "zstd", out)
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".qcow2.zst") {
		t.Fatalf("got %v, want one .qcow2.zst", ents)
	}
	p := filepath.Join(out, ents[0].Name())
	if b, err := exec.Command("zstd", "-t", p).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, b)
	}
	got := decompressedSHA256zstd(t, p)
	if got != want[strings.TrimSuffix(ents[0].Name(), ".zst")] {
		t.Errorf("decompressed output has the wrong sha256")
	}
}

func decompressedSHA256zstd(t *testing.T, path string) string {
	b, err := exec.Command("zstd", "-dc", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestListAndPrintStream(t *testing.T) {
	release, bundle := sharedBundle(t)
	raw, _ := os.ReadFile(filepath.Join(release, "stream.json"))
	r := mustRun(t, "print-stream-json", "--from", bundle)
	if !bytes.Equal(r.stdout, raw) {
		t.Error("print-stream-json does not print the stream as given")
	}
	r = mustRun(t, "list", "--from", bundle)
	lines := strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
	want := len(expected(t, release)) + 2 // header and total
	if len(lines) != want {
		t.Errorf("list printed %d lines, want %d:\n%s", len(lines), want, r.stdout)
	}
	if !strings.Contains(string(r.stdout), "openstack") || !strings.HasPrefix(lines[0], "ARCH") {
		t.Errorf("list output:\n%s", r.stdout)
	}
}

func TestBadUsage(t *testing.T) {
	_, bundle := sharedBundle(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"rehydrate", "--from", bundle, t.TempDir()}, "nothing to rehydrate"},
		{[]string{"rehydrate", "--from", bundle, t.TempDir(), "--disk", "nosuch"}, `no disk image "nosuch"`},
		{[]string{"rehydrate", "--from", bundle, t.TempDir(), "--all", "--arch", "mips"}, `no architecture "mips"`},
		{[]string{"rehydrate", "--from", bundle, t.TempDir(), "--all", "--compress", "lz4"}, "unknown compression"},
		{[]string{"rehydrate", "--from", t.TempDir(), "-", "--all"}, "not a rehydrator bundle"},
		{[]string{"list", "--from", "/nonexistent"}, "not a rehydrator bundle"},
	} {
		r := run(t, tc.args...)
		if r.code == 0 || !strings.Contains(string(r.stderr), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.msg)
		}
	}
}

// copyBundle makes a private, writable copy of a bundle.
func copyBundle(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return dst
}

// artifactBlob returns the blob path of the artifact whose file contains name.
func artifactBlob(t *testing.T, bundle, name string) (string, *rehydrate.Artifact) {
	t.Helper()
	b, err := rehydrate.OpenDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Index.Artifacts {
		a := &b.Index.Artifacts[i]
		if strings.Contains(a.File, name) {
			return rehydrate.NewLayout(bundle).BlobPath(a.Recipe.Blob.Digest), a
		}
	}
	t.Fatalf("no artifact %s", name)
	return "", nil
}

func assertFailsCleanly(t *testing.T, bundle, disk, file, msg string) {
	t.Helper()
	out := t.TempDir()
	r := run(t, "rehydrate", "--from", bundle, out, "--disk", disk)
	if r.code == 0 {
		t.Fatalf("rehydrate %s succeeded on a damaged bundle", disk)
	}
	if !strings.Contains(string(r.stderr), file) || !strings.Contains(string(r.stderr), msg) {
		t.Errorf("error %q should name %s and say %q", r.stderr, file, msg)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestDamagedBundle(t *testing.T) {
	_, shared := sharedBundle(t)
	t.Run("corrupt delta", func(t *testing.T) {
		bundle := copyBundle(t, shared)
		p, a := artifactBlob(t, bundle, "openstack")
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x40
		os.WriteFile(p, b, 0o644)
		assertFailsCleanly(t, bundle, "openstack", a.File, "")
	})
	t.Run("truncated delta", func(t *testing.T) {
		bundle := copyBundle(t, shared)
		p, a := artifactBlob(t, bundle, "aws")
		fi, _ := os.Stat(p)
		os.Truncate(p, fi.Size()*2/3)
		assertFailsCleanly(t, bundle, "aws", a.File, "")
	})
	t.Run("corrupt base", func(t *testing.T) {
		bundle := copyBundle(t, shared)
		p, _ := artifactBlob(t, bundle, "metal.x86_64.raw")
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		f.WriteAt([]byte{0xde, 0xad}, 4096)
		f.Close()
		_, a := artifactBlob(t, bundle, "qemu")
		assertFailsCleanly(t, bundle, "qemu", a.File, "corrupted")
	})
	t.Run("corrupt rootfs", func(t *testing.T) {
		// The root every disk derives from (stored whole).
		bundle := copyBundle(t, shared)
		p, _ := artifactBlob(t, bundle, "live-rootfs")
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		f.WriteAt([]byte{0xde, 0xad}, 4096)
		f.Close()
		_, a := artifactBlob(t, bundle, "qemu")
		assertFailsCleanly(t, bundle, "qemu", a.File, "corrupted")
	})
	t.Run("missing blob", func(t *testing.T) {
		bundle := copyBundle(t, shared)
		p, a := artifactBlob(t, bundle, "azure")
		os.Remove(p)
		assertFailsCleanly(t, bundle, "azure", a.File, "no such file")
	})
	t.Run("wrong hash in index", func(t *testing.T) {
		// gcp's stream entry has no uncompressed-sha256, so only the
		// output check can catch a wrong expectation.
		bundle := copyBundle(t, shared)
		_, a := artifactBlob(t, bundle, "gcp")
		rewriteIndex(t, bundle, func(ix *rehydrate.Index) {
			for i := range ix.Artifacts {
				if ix.Artifacts[i].File == a.File {
					ix.Artifacts[i].SHA256 = strings.Repeat("0", 64)
				}
			}
		})
		assertFailsCleanly(t, bundle, "gcp", a.File, "sha256 mismatch")
	})
}

// rewriteIndex edits a bundle's index and re-links it into a new manifest,
// as a consistent but wrong bundle would be.
func rewriteIndex(t *testing.T, dir string, edit func(*rehydrate.Index)) {
	t.Helper()
	l := rehydrate.NewLayout(dir)
	m, err := l.ReadManifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range m.Layers {
		if d.MediaType != rehydrate.MediaTypeIndex {
			continue
		}
		b, err := l.ReadBlob(d)
		if err != nil {
			t.Fatal(err)
		}
		var ix rehydrate.Index
		if err := json.Unmarshal(b, &ix); err != nil {
			t.Fatal(err)
		}
		edit(&ix)
		if m.Layers[i], err = l.PutJSON(rehydrate.MediaTypeIndex, &ix); err != nil {
			t.Fatal(err)
		}
	}
	md, err := l.PutJSON(m.MediaType, m)
	if err != nil {
		t.Fatal(err)
	}
	md.ArtifactType = m.ArtifactType
	if err := l.WriteIndex(md); err != nil {
		t.Fatal(err)
	}
}

func TestDehydrateChecksDownloads(t *testing.T) {
	release := testrelease.Dir(t)
	raw, _ := os.ReadFile(filepath.Join(release, "stream.json"))
	st, err := stream.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A release directory of symlinks with one download swapped for junk:
	// the PXE rootfs (stored whole), the base (a delta over the rootfs's
	// squashfs files), a split container, a plain delta.
	var victim stream.Artifact
	for _, id := range []string{"x86_64/metal/pxe/rootfs", "x86_64/metal/raw.xz/disk", "x86_64/gcp/tar.gz/disk", "x86_64/vultr/raw.xz/disk"} {
		dir := t.TempDir()
		for _, a := range st.Artifacts() {
			if a.ID() == id {
				victim = a
				os.WriteFile(filepath.Join(dir, a.Name()), []byte("not the download"), 0o644)
				continue
			}
			os.Symlink(filepath.Join(release, a.Name()), filepath.Join(dir, a.Name()))
		}
		if victim.ID() != id {
			t.Fatalf("the release has no artifact %s", id)
		}
		out := filepath.Join(t.TempDir(), "bundle")
		r := run(t, "dehydrate", "--stream", filepath.Join(release, "stream.json"), "--artifacts", dir, "--output", out)
		if r.code == 0 || !strings.Contains(string(r.stderr), victim.Name()) {
			t.Errorf("dehydrate with a bad %s: exit %d, %s", victim.Name(), r.code, r.stderr)
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
			t.Errorf("a failed dehydrate left %v", ents)
		}
	}
	// A download with the right length but one changed byte.
	dir := t.TempDir()
	for _, a := range st.Artifacts() {
		os.Symlink(filepath.Join(release, a.Name()), filepath.Join(dir, a.Name()))
	}
	b, err := os.ReadFile(filepath.Join(release, victim.Name()))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	os.Remove(filepath.Join(dir, victim.Name()))
	os.WriteFile(filepath.Join(dir, victim.Name()), b, 0o644)
	out := filepath.Join(t.TempDir(), "bundle")
	r := run(t, "dehydrate", "--stream", filepath.Join(release, "stream.json"), "--artifacts", dir, "--output", out)
	if r.code == 0 || !strings.Contains(string(r.stderr), victim.Name()) {
		t.Errorf("dehydrate with a flipped byte: exit %d, %s", r.code, r.stderr)
	}

	// Missing download: an error naming it, or skipped with --allow-missing.
	os.Remove(filepath.Join(dir, victim.Name()))
	r = run(t, "dehydrate", "--stream", filepath.Join(release, "stream.json"), "--artifacts", dir, "--output", out)
	if r.code == 0 || !strings.Contains(string(r.stderr), victim.Name()) {
		t.Errorf("dehydrate with a missing download: exit %d, %s", r.code, r.stderr)
	}
	mustRun(t, "dehydrate", "--stream", filepath.Join(release, "stream.json"), "--artifacts", dir, "--output", out, "--allow-missing")
	r = mustRun(t, "list", "--from", out)
	if strings.Contains(string(r.stdout), victim.Platform) {
		t.Error("the skipped artifact is listed")
	}
}

func TestPermuteArgs(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"x", "rehydrate", "-", "--disk", "openstack"}, []string{"x", "rehydrate", "--disk", "openstack", "--", "-"}},
		{[]string{"x", "rehydrate", "--disk", "openstack", "-"}, []string{"x", "rehydrate", "--disk", "openstack", "--", "-"}},
		{[]string{"x", "rehydrate", "out", "--iso", "--arch=x86_64", "--pxe"}, []string{"x", "rehydrate", "--iso", "--arch=x86_64", "--pxe", "--", "out"}},
		{[]string{"x", "list"}, []string{"x", "list"}},
		{[]string{"x", "--help"}, []string{"x", "--help"}},
	} {
		if got := permuteArgs(app, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("permuteArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
