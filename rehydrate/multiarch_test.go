package rehydrate

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/testrelease"
	"github.com/rehydrator/rehydrator/internal/testtool"
	"github.com/rehydrator/rehydrator/stream"
)

// tinyFile is one download of a synthetic stream.
type tinyFile struct {
	arch, platform, format, name string
	data                         []byte // as downloaded
	usha                         string // uncompressed-sha256, or ""
}

// tinyStream writes the stream metadata of files.
func tinyStream(t *testing.T, files []tinyFile) []byte {
	t.Helper()
	arches := map[string]map[string]any{}
	for _, f := range files {
		if arches[f.arch] == nil {
			arches[f.arch] = map[string]any{}
		}
		sum := sha256.Sum256(f.data)
		disk := map[string]any{
			"location": "https://builds.example.invalid/" + f.arch + "/" + f.name,
			"sha256":   hex.EncodeToString(sum[:]),
		}
		if f.usha != "" {
			disk["uncompressed-sha256"] = f.usha
		}
		arches[f.arch][f.platform] = map[string]any{
			"release": "42.1",
			"formats": map[string]any{f.format: map[string]any{"disk": disk}},
		}
	}
	doc := map[string]any{
		"stream":        "testing",
		"metadata":      map[string]any{"last-modified": "2026-11-01T00:00:00Z", "generator": "multiarch test"},
		"architectures": map[string]any{},
	}
	for arch, plats := range arches {
		doc["architectures"].(map[string]any)[arch] = map[string]any{"artifacts": plats}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLocate dehydrates two architectures whose downloads have the same
// basenames, each in its own directory, found through Locate; it also
// covers a platform, a format and a compression rehydrator does not know,
// and Arches.
func TestLocate(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	dir := t.TempDir()
	var files []tinyFile
	raws := map[string][]byte{}
	for _, arch := range []string{"aarch64", "s390x"} {
		raw := make([]byte, 1<<20)
		rng.Read(raw[:256<<10])
		raws[arch] = raw
		// A platform variant: the base with a few bytes changed, under a
		// compression rehydrator does not know (the bytes are not
		// really bzip2: nothing looks inside).
		variant := slices.Clone(raw)
		copy(variant[1000:], "ignition.platform.id=newcloud")
		files = append(files,
			tinyFile{arch, "metal", "raw.gz", "disk.raw.gz", gzipped(t, raw), sha256Hex(raw)},
			tinyFile{arch, "newcloud", "img.bz2", "disk.img.bz2", variant, sha256Hex([]byte("not checked"))},
		)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.arch, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := tinyStream(t, files)
	locate := func(a stream.Artifact) string { return filepath.Join(dir, a.Arch, a.Name()) }

	var log bytes.Buffer
	bundle := filepath.Join(dir, "bundle")
	ix, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, Locate: locate, Output: bundle, Log: &log, Jobs: 2})
	if err != nil {
		t.Fatalf("Dehydrate: %v\n%s", err, log.String())
	}
	if len(ix.Artifacts) != 4 {
		t.Fatalf("%d artifacts, want 4", len(ix.Artifacts))
	}
	for _, arch := range []string{"aarch64", "s390x"} {
		for _, want := range []string{
			"warning: " + arch + `/newcloud/img.bz2/disk: platform "newcloud" is not one rehydrator knows; stored as a generic delta over the base`,
			"warning: " + arch + "/newcloud/img.bz2/disk: disk.img.bz2 has an uncompressed-sha256 but no compression rehydrator knows",
		} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, log.String())
			}
		}
	}
	b, err := OpenDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"aarch64", "s390x"} {
		dest := filepath.Join(dir, "out-"+arch)
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		var arts []*Artifact
		for i := range b.Index.Artifacts {
			if a := &b.Index.Artifacts[i]; a.Arch == arch {
				arts = append(arts, a)
			}
		}
		if err := b.Rehydrate(context.Background(), arts, Options{Dest: dest}); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.arch != arch {
				continue
			}
			want := f.data
			name := f.name
			if f.format == "raw.gz" {
				want, name = raws[arch], "disk.raw"
			}
			got, err := os.ReadFile(filepath.Join(dest, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s: rehydrated bytes differ", arch, name)
			}
		}
	}
	var cfg struct{ Architectures []string }
	readConfig(t, bundle, &cfg)
	if !slices.Equal(cfg.Architectures, []string{"aarch64", "s390x"}) {
		t.Errorf("bundle config architectures %v", cfg.Architectures)
	}

	t.Run("Arches", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "bundle")
		ix, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, Locate: locate, Output: out, Arches: []string{"s390x"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range ix.Artifacts {
			if a.Arch != "s390x" {
				t.Errorf("artifact %s of an architecture not asked for", a.ID())
			}
		}
		if len(ix.Artifacts) != 2 {
			t.Errorf("%d artifacts, want 2", len(ix.Artifacts))
		}
		var cfg struct{ Architectures []string }
		readConfig(t, out, &cfg)
		if !slices.Equal(cfg.Architectures, []string{"s390x"}) {
			t.Errorf("bundle config architectures %v", cfg.Architectures)
		}
		_, err = Dehydrate(context.Background(), DehydrateOptions{Stream: st, Locate: locate, Output: out + "2", Arches: []string{"riscv64"}})
		if err == nil || !strings.Contains(err.Error(), `"riscv64" is not in the stream`) {
			t.Errorf("unknown architecture: err = %v", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		gone := func(a stream.Artifact) string { return filepath.Join(dir, "nowhere", a.Arch, a.Name()) }
		_, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, Locate: gone, Output: filepath.Join(t.TempDir(), "b")})
		want := "artifact aarch64/metal/raw.gz/disk: download " + filepath.Join(dir, "nowhere", "aarch64", "disk.raw.gz")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want one containing %q", err, want)
		}
		var log bytes.Buffer
		ix, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, Locate: gone, Output: filepath.Join(t.TempDir(), "b"),
			AllowMissing: true, Log: &log})
		if err != nil || len(ix.Artifacts) != 0 {
			t.Errorf("AllowMissing with nothing found: err = %v", err)
		}
		if !strings.Contains(log.String(), "skipping aarch64/metal/raw.gz/disk: "+filepath.Join(dir, "nowhere", "aarch64", "disk.raw.gz")+" not found") {
			t.Errorf("log:\n%s", log.String())
		}
	})
	t.Run("ArtifactsDir", func(t *testing.T) {
		// Without Locate, downloads are ArtifactsDir/NAME.
		_, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, ArtifactsDir: filepath.Join(dir, "aarch64"),
			Arches: []string{"aarch64"}, Output: filepath.Join(t.TempDir(), "b")})
		if err != nil {
			t.Error(err)
		}
	})
}

func readConfig(t *testing.T, bundle string, v any) {
	t.Helper()
	l := NewLayout(bundle)
	m, err := l.ReadManifest()
	if err != nil {
		t.Fatal(err)
	}
	data, err := l.ReadBlob(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// TestTwoArches dehydrates a release of two architectures (the aarch64 and
// ppc64le mini releases, merged) and rehydrates every artifact of both,
// bit for bit, including the platform rehydrator does not know.
func TestTwoArches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two mini releases the first time (~30 s)")
	}
	streamJSON, locate := testrelease.Merge(t, testrelease.Mini(t, "aarch64"), testrelease.Mini(t, "ppc64le"))
	st, err := stream.Parse(streamJSON)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	var log bytes.Buffer
	start := time.Now()
	ix, err := Dehydrate(context.Background(), DehydrateOptions{Stream: streamJSON, Locate: locate, Output: bundle, Log: &log})
	if err != nil {
		t.Fatalf("Dehydrate: %v\n%s", err, log.String())
	}
	t.Logf("dehydrated in %v:\n%s", time.Since(start).Round(time.Millisecond), log.String())

	// One warning per artifact rehydrator does not know, and no other.
	var warnings []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, "warning:") {
			warnings = append(warnings, l)
		}
	}
	var wantWarnings []string
	for _, arch := range []string{"aarch64", "ppc64le"} {
		id := arch + "/newcloud/raw.zst/disk"
		wantWarnings = append(wantWarnings,
			"warning: "+id+`: platform "newcloud" is not one rehydrator knows; stored as a generic delta over the base`,
			"warning: "+id+": fedora-coreos-42.20261101.3.0-newcloud."+arch+".raw.zst has an uncompressed-sha256 but no compression "+
				"rehydrator knows (.xz, .gz, .zip); it is stored and rehydrated as downloaded, checked against its sha256")
	}
	slices.Sort(warnings)
	slices.Sort(wantWarnings)
	if !slices.Equal(warnings, wantWarnings) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(wantWarnings, "\n"))
	}

	// How each is stored: the bases whole, disk containers split, every
	// other artifact a small delta over its architecture's base.
	if len(ix.Artifacts) != len(st.Artifacts()) {
		t.Fatalf("%d artifacts in the index, %d in the stream", len(ix.Artifacts), len(st.Artifacts()))
	}
	split := regexp.MustCompile(`/(qemu|openstack|aws|powervs)/`)
	for _, a := range ix.Artifacts {
		id := a.ID()
		switch {
		case a.Platform == "metal" && a.Format == "raw.xz":
			if a.Recipe.Kind != KindWhole {
				t.Errorf("%s: %s, want the base stored whole", id, a.Recipe.Kind)
			}
		case split.MatchString(id):
			if a.Recipe.Kind != KindFormat {
				t.Errorf("%s: %s, want split", id, a.Recipe.Kind)
			}
		default:
			if a.Recipe.Kind != KindDelta {
				t.Errorf("%s: %s, want a delta", id, a.Recipe.Kind)
			}
		}
		if a.Recipe.Kind != KindWhole && a.Platform != "newcloud" && a.Stored() > a.Size/50 {
			t.Errorf("%s: %d bytes stored for %d, want < 2%%", id, a.Stored(), a.Size)
		}
		for _, s := range a.Recipe.Sources {
			if !strings.HasPrefix(s.Artifact, a.Arch+"/") {
				t.Errorf("%s: source %s of another architecture", id, s)
			}
		}
	}

	// Rehydrate all of them, both architectures into one directory.
	b, err := OpenDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "out")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	var arts []*Artifact
	for i := range b.Index.Artifacts {
		arts = append(arts, &b.Index.Artifacts[i])
	}
	start = time.Now()
	if err := b.Rehydrate(context.Background(), arts, Options{Dest: dest}); err != nil {
		t.Fatal(err)
	}
	t.Logf("rehydrated in %v", time.Since(start).Round(time.Millisecond))
	seen := map[string]bool{}
	for _, sa := range st.Artifacts() {
		seen[sa.Arch] = true
		out := filepath.Join(dest, sa.OutputName())
		got := testtool.FileSHA256(t, out)
		// The stream's word for the file as rehydrated: its uncompressed
		// digest, or, for a file stored as downloaded, its digest.
		want := sa.File.UncompressedSHA256
		if sa.Compression() == "" {
			want = sa.File.SHA256
		}
		if got != want {
			t.Errorf("%s: rehydrated %s has sha256 %s, stream says %s", sa.ID(), sa.OutputName(), got, want)
		}
		if strings.HasSuffix(sa.Name(), ".zst") {
			// The unknown compression's content is still what the stream says.
			if got := testtool.DecompressedSHA256(t, out, "zst"); got != sa.File.UncompressedSHA256 {
				t.Errorf("%s: decompressed sha256 %s, stream says %s", sa.ID(), got, sa.File.UncompressedSHA256)
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("rehydrated architectures %v", seen)
	}
}

// TestUnstorableNames checks that names the stream allows but a bundle
// index cannot hold are refused before any work, naming the artifact.
func TestUnstorableNames(t *testing.T) {
	for _, c := range []struct{ platform, name, want string }{
		{"new cloud", "disk.raw", `artifact x86_64/new cloud/raw/disk: name "new cloud" cannot be stored`},
		{"newcloud", ".disk.raw", `artifact x86_64/newcloud/raw/disk: file name ".disk.raw" cannot be stored`},
	} {
		st := tinyStream(t, []tinyFile{{"x86_64", c.platform, "raw", c.name, []byte("x"), ""}})
		_, err := Dehydrate(context.Background(), DehydrateOptions{Stream: st, ArtifactsDir: t.TempDir(), Output: filepath.Join(t.TempDir(), "b")})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.platform, err, c.want)
		}
	}
}
