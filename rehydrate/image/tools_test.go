package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// TestExternalTools checks the images with tools no one here wrote:
// skopeo inspects them (archive and registry) and converts them to a
// docker-archive and pushes one; umoci unpacks them and builds one the
// way a Containerfile would (the bundle in one gzip layer, no
// annotations); the unpacked bundle and every converted image read back.
func TestExternalTools(t *testing.T) {
	skopeo := testtool.Require(t, "skopeo")
	umoci := testtool.Require(t, "umoci")
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	reg := newRegistry(t, nil)
	archive := filepath.Join(dir, "image.tar")
	layout := filepath.Join(dir, "layout")
	if _, err := Write(ctx, f.bundle, f.bins, "oci-archive:"+archive+":42.1", Options{}); err != nil {
		t.Fatal(err)
	}
	one := map[string]string{"linux/amd64": f.bins["linux/amd64"]}
	want, err := Write(ctx, f.bundle, one, "oci:"+layout+":42.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(ctx, f.bundle, f.bins, "docker://"+reg+"/fcos/rehydrator:42.1", Options{}); err != nil {
		t.Fatal(err)
	}

	for _, src := range []string{"oci-archive:" + archive, "docker://" + reg + "/fcos/rehydrator:42.1"} {
		for _, arch := range []string{"amd64", "arm64"} {
			out := testtool.Run(t, skopeo, "--override-os", "linux", "--override-arch", arch, "inspect", "--tls-verify=false", src)
			var info struct {
				Architecture, Os string
				Labels           map[string]string
				Layers           []string
			}
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("skopeo inspect %s: %v\n%s", src, err, out)
			}
			if info.Architecture != arch || info.Os != "linux" || info.Labels[LabelStream] != "testing" ||
				info.Labels[LabelReleases] != "42.1" || info.Labels[LabelArchitectures] != "aarch64,x86_64" || len(info.Layers) != 10 {
				t.Errorf("skopeo inspect %s (%s): %s", src, arch, out)
			}
		}
	}

	// umoci unpack: the rootfs holds the binary and the bundle, file for file.
	unpacked := filepath.Join(dir, "unpacked")
	testtool.Run(t, umoci, "unpack", "--image", layout+":42.1", unpacked)
	rootfs := filepath.Join(unpacked, "rootfs")
	fi, err := os.Stat(filepath.Join(rootfs, "rehydrator"))
	if err != nil || fi.Mode().Perm() != 0o755 || sha(t, filepath.Join(rootfs, "rehydrator")) != sha(t, f.bins["linux/amd64"]) {
		t.Errorf("unpacked /rehydrator: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "tmp")); err != nil || fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("unpacked /tmp: %v %v", fi, err)
	}
	inImage := filepath.Join(rootfs, strings.TrimPrefix(BundlePath, "/"))
	n := 0
	filepath.WalkDir(f.bundle, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.bundle, p)
		if sha(t, p) != sha(t, filepath.Join(inImage, rel)) {
			t.Errorf("unpacked bundle: %s differs", rel)
		}
		n++
		return nil
	})
	t.Logf("umoci unpack: /rehydrator and %d bundle files match", n)
	if got, _ := rehydrateID(t, inImage, Options{}, idOpenstack); got != f.want[idOpenstack] {
		t.Error("unpacked bundle: wrong sha256")
	}

	// docker-archive (skopeo's conversion drops the layer annotations; the
	// first tar header of each layer stands in).
	darchive := filepath.Join(dir, "docker.tar")
	testtool.Run(t, skopeo, "copy", "--quiet", "oci-archive:"+archive, "docker-archive:"+darchive+":fcos/rehydrator:42.1")
	for _, src := range []string{"docker-archive:" + darchive, "docker-archive:" + darchive + ":fcos/rehydrator:42.1"} {
		if got, _ := rehydrateID(t, src, Options{}, idVultr); got != f.want[idVultr] {
			t.Errorf("%s: wrong sha256", src)
		}
	}
	if _, err := Open(ctx, "docker-archive:"+darchive+":other:1", Options{}); err == nil || !strings.Contains(err.Error(), "fcos/rehydrator:42.1") {
		t.Errorf("unknown docker-archive ref: %v", err)
	}
	b, _ := os.Stat(darchive)
	if s, err := Open(ctx, "docker-archive:"+darchive, Options{}); err == nil {
		if _, err := rehydrateFrom(s, idVultr, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		t.Logf("docker-archive: one delta artifact read %d of %d bytes", s.BytesFetched(), b.Size())
		if s.BytesFetched()*2 > b.Size() || len(s.tmp) != 0 {
			t.Errorf("docker-archive: read %d of %d bytes", s.BytesFetched(), b.Size())
		}
		s.Close()
	}

	// skopeo pushes an image Write made; it reads back, digest unchanged.
	testtool.Run(t, skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":42.1", "docker://"+reg+"/skopeo/copy:1")
	if d, _ := rootOf(t, "docker://"+reg+"/skopeo/copy:1", Options{}); d.Digest.String() != want {
		t.Errorf("skopeo copy changed the digest: %s, want %s", d.Digest, want)
	}

	// An image built another way: umoci inserts the bundle directory as
	// one gzip layer, as a Containerfile COPY would.
	other := filepath.Join(dir, "other")
	testtool.Run(t, umoci, "init", "--layout", other)
	testtool.Run(t, umoci, "new", "--image", other+":1")
	testtool.Run(t, umoci, "insert", "--image", other+":1", f.bundle, BundlePath)
	s, err := Open(ctx, "oci:"+other+":1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := rehydrateFrom(s, idOpenstack, t.TempDir()); err != nil || got != f.want[idOpenstack] {
		t.Errorf("umoci-built image: %v", err)
	}
	if len(s.tmp) != 1 {
		t.Errorf("umoci-built image: read without extracting the bundle?")
	}
}

func sha(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
