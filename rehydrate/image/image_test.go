package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// The artifacts the tests regenerate: a plain delta, a split qcow2, and an
// arm64 delta.
const (
	idVultr     = "x86_64/vultr/raw/disk"
	idOpenstack = "x86_64/openstack/qcow2/disk"
	idArmVultr  = "aarch64/vultr/raw/disk"
)

// rootOf resolves a location's root descriptor and the sum of the sizes of
// every blob under it.
func rootOf(t *testing.T, loc string, opt Options) (v1.Descriptor, int64) {
	t.Helper()
	l, err := parseLocation(loc, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, l, opt)
	if err != nil {
		t.Fatalf("%s: %v", loc, err)
	}
	d, raw, err := st.root(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := walk(ctx, st, d, raw)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	return d, total
}

func TestWriteAndOpenEverywhere(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	reg := newRegistry(t, nil)

	dsts := []string{
		"oci:" + filepath.Join(dir, "layout") + ":42.1",
		"oci-archive:" + filepath.Join(dir, "image.tar") + ":42.1",
		"docker://" + reg + "/fcos/rehydrator:42.1",
	}
	var digests []string
	for _, dst := range dsts {
		d, err := Write(ctx, f.bundle, f.bins, dst, Options{})
		if err != nil {
			t.Fatalf("Write(%s): %v", dst, err)
		}
		digests = append(digests, d)
	}
	for i := range digests {
		if digests[i] != digests[0] {
			t.Errorf("Write gave %s for %s and %s for %s: not deterministic", digests[i], dsts[i], digests[0], dsts[0])
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the destination directory holds %d entries, want 2 (no temporary files)", len(ents))
	}
	// Readable by others, like any file, not CreateTemp's 0600.
	for _, p := range []string{filepath.Join(dir, "image.tar"), filepath.Join(dir, "layout", "index.json")} {
		if fi, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", p, fi.Mode().Perm())
		}
	}

	srcs := append(dsts[:1:1], "oci-archive:"+filepath.Join(dir, "image.tar"), dsts[2],
		f.bundle, "oci:"+f.bundle, filepath.Join(dir, "layout"))
	for _, src := range srcs {
		for _, id := range []string{idVultr, idOpenstack} {
			if got, _ := rehydrateID(t, src, Options{}, id); got != f.want[id] {
				t.Errorf("%s: %s: sha256 %s, want %s", src, id, got, f.want[id])
			}
		}
	}
	// The arm64 manifest of the index reads the same bundle.
	if got, _ := rehydrateID(t, dsts[2], Options{Platform: "linux/arm64"}, idArmVultr); got != f.want[idArmVultr] {
		t.Errorf("linux/arm64: %s: sha256 %s, want %s", idArmVultr, got, f.want[idArmVultr])
	}
	if _, err := Open(ctx, dsts[2], Options{Platform: "linux/s390x"}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("Open for a platform the index lacks: %v", err)
	}
}

func TestImageShape(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	one := map[string]string{"linux/amd64": f.bins["linux/amd64"]}
	if _, err := Write(ctx, f.bundle, one, "oci:"+dir+":one", Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(ctx, f.bundle, f.bins, "oci:"+dir+":two", Options{}); err != nil {
		t.Fatal(err)
	}
	st, err := openLayout("oci:"+dir, dirFiles(dir), "two")
	if err != nil {
		t.Fatal(err)
	}
	if st.rootDesc.MediaType != types.OCIImageIndex {
		t.Fatalf("two platforms: root is %s, want an OCI index", st.rootDesc.MediaType)
	}
	ix, _ := v1.ParseIndexManifest(bytes.NewReader(st.rootRaw))
	if len(ix.Manifests) != 2 {
		t.Fatalf("index lists %d manifests", len(ix.Manifests))
	}
	bundleSize := dirSize(t, f.bundle)
	var layers [2][]v1.Descriptor
	for i, md := range ix.Manifests {
		raw, err := st.manifest(ctx, md)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := v1.ParseManifest(bytes.NewReader(raw))
		layers[i] = m.Layers
		cfgRC, _ := st.blob(ctx, m.Config)
		cfgRaw, err := readVerified(cfgRC, m.Config, maxManifestSize)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
		if cfg.OS+"/"+cfg.Architecture != md.Platform.String() || md.Platform.String() != []string{"linux/amd64", "linux/arm64"}[i] {
			t.Errorf("manifest %d: platform %s, config %s/%s", i, md.Platform, cfg.OS, cfg.Architecture)
		}
		if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/rehydrator" {
			t.Errorf("entrypoint %q", got)
		}
		if !strings.Contains(strings.Join(cfg.Config.Env, " "), "REHYDRATOR_BUNDLE=/usr/share/rehydrator/bundle") {
			t.Errorf("env %q", cfg.Config.Env)
		}
		for k, want := range map[string]string{LabelStream: "testing", LabelReleases: "42.1", LabelArchitectures: "aarch64,x86_64"} {
			if cfg.Config.Labels[k] != want {
				t.Errorf("label %s = %q, want %q", k, cfg.Config.Labels[k], want)
			}
		}
		if !cfg.Created.Time.Equal(cfg.Created.Time.UTC()) || cfg.Created.Unix() != 0 {
			t.Errorf("created %v, want the epoch", cfg.Created)
		}
		// Every bundle blob but the four small ones has its own
		// uncompressed, annotated layer.
		var dataBytes int64
		blobs := 0
		for _, l := range m.Layers[2:] {
			if l.MediaType != types.OCIUncompressedLayer || l.Annotations[AnnotationBlobDigest] == "" || l.Annotations[AnnotationBlobSize] == "" {
				t.Errorf("data layer %s: %s %v", l.Digest, l.MediaType, l.Annotations)
			}
			dataBytes += l.Size
			blobs++
		}
		var total int64
		for _, l := range m.Layers {
			total += l.Size
		}
		bin, _ := os.Stat(f.bins[md.Platform.String()])
		t.Logf("%s: %d layers, %d bytes (binary layer %d, metadata %d, data %d); bundle dir %d + binary %d = %d (%+.2f%%)",
			md.Platform, len(m.Layers), total, m.Layers[0].Size, m.Layers[1].Size, dataBytes,
			bundleSize, bin.Size(), bundleSize+bin.Size(), 100*(float64(total)/float64(bundleSize+bin.Size())-1))
		if m.Layers[0].MediaType != types.OCILayer || m.Layers[1].Annotations[AnnotationLayer] != layerMetadata {
			t.Errorf("layers 0 and 1: %v %v", m.Layers[0], m.Layers[1])
		}
		// Uncompressed data layers cost their tar framing only.
		if over := total - m.Layers[0].Size - bundleSize; over < 0 || over > int64(blobs+8)*2048 {
			t.Errorf("image data %d bytes vs bundle %d: overhead %d", total-m.Layers[0].Size, bundleSize, over)
		}
	}
	// The platforms share every layer but the binary.
	for i := 1; i < len(layers[0]); i++ {
		if layers[0][i].Digest != layers[1][i].Digest {
			t.Errorf("layer %d differs between platforms", i)
		}
	}
	if layers[0][0].Digest == layers[1][0].Digest {
		t.Error("both platforms have the same binary layer")
	}
	// The single-platform image is a plain manifest with the same layers.
	st1, err := openLayout("oci:"+dir, dirFiles(dir), "one")
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := v1.ParseManifest(bytes.NewReader(st1.rootRaw))
	if st1.rootDesc.MediaType != types.OCIManifestSchema1 || m1.Layers[0].Digest != layers[0][0].Digest || m1.Layers[5].Digest != layers[0][5].Digest {
		t.Errorf("single-platform image: %s", st1.rootDesc.MediaType)
	}
	// A data layer holds exactly one file, the blob.
	l := m1.Layers[len(m1.Layers)-1]
	rc, err := st1.blob(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	want := "usr/share/rehydrator/bundle/blobs/sha256/" + strings.TrimPrefix(l.Annotations[AnnotationBlobDigest], "sha256:")
	if hdr.Name != want || hdr.Mode != 0o644 || hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Uname != "" {
		t.Errorf("data layer member %q mode %o mtime %v uid %d", hdr.Name, hdr.Mode, hdr.ModTime, hdr.Uid)
	}
	io.Copy(io.Discard, tr)
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("data layer holds more than one member: %v", err)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n
}

func TestFetchesOnlyWhatIsNeeded(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	reg := newRegistry(t, nil)
	ref := "docker://" + reg + "/fcos/rehydrator:42.1"
	if _, err := Write(ctx, f.bundle, f.bins, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	_, total := rootOf(t, ref, Options{})
	b, err := rehydrate.OpenDir(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	base := b.Index.Lookup(b.Index.Lookup(idVultr).Recipe.Sources[0].Artifact)
	for _, id := range []string{idVultr, idOpenstack} {
		sum, fetched := rehydrateID(t, ref, Options{}, id)
		if sum != f.want[id] {
			t.Errorf("%s: wrong sha256", id)
		}
		a := b.Index.Lookup(id)
		need := a.Stored() + base.Stored()
		t.Logf("%s: fetched %d bytes of a %d-byte image; base %d + its own blobs %d", id, fetched, total, base.Stored(), a.Stored())
		// The base, the artifact's blobs, the metadata layer, manifests
		// and tar framing.
		if fetched > need+256<<10 {
			t.Errorf("%s: fetched %d bytes, want at most %d + 256 KiB", id, fetched, need)
		}
	}
	if _, fetched := rehydrateID(t, ref, Options{}, idVultr); fetched*2 > total {
		t.Errorf("fetched %d bytes of %d for one delta artifact", fetched, total)
	}
}

func TestInsecureTLS(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	ref := "docker://" + strings.TrimPrefix(srv.URL, "https://") + "/tls/rehydrator:1"
	one := map[string]string{"linux/amd64": f.bins["linux/amd64"]}
	if _, err := Write(ctx, f.bundle, one, ref, Options{}); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("push to a self-signed registry without Insecure: %v", err)
	} else {
		t.Logf("self-signed: %v", err)
	}
	if _, err := Write(ctx, f.bundle, one, ref, Options{Insecure: true}); err != nil {
		t.Fatalf("push with Insecure: %v", err)
	}
	if got, _ := rehydrateID(t, ref, Options{Insecure: true}, idVultr); got != f.want[idVultr] {
		t.Error("self-signed registry: wrong sha256")
	}
}

func TestMirror(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	reg := newRegistry(t, nil)
	src := "oci:" + filepath.Join(dir, "src") + ":42.1"
	want, err := Write(ctx, f.bundle, f.bins, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hops := []string{
		"docker://" + reg + "/mirror/one:42.1",
		"docker://" + reg + "/mirror/two:latest", // registry to registry: mounted
		"oci-archive:" + filepath.Join(dir, "copy.tar") + ":x",
		"oci:" + filepath.Join(dir, "copy"),
	}
	from := src
	for _, to := range hops {
		if err := Mirror(ctx, from, to, Options{}); err != nil {
			t.Fatalf("Mirror(%s, %s): %v", from, to, err)
		}
		if d, _ := rootOf(t, to, Options{}); d.Digest.String() != want {
			t.Errorf("%s: digest %s, want %s", to, d.Digest, want)
		}
		from = to
	}
	if got, _ := rehydrateID(t, from, Options{}, idOpenstack); got != f.want[idOpenstack] {
		t.Errorf("after mirroring: wrong sha256")
	}
	// A bundle directory mirrors as an OCI artifact, and reads back.
	if err := Mirror(ctx, f.bundle, "docker://"+reg+"/bundles/fcos:42.1", Options{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := rehydrateID(t, "docker://"+reg+"/bundles/fcos:42.1", Options{}, idVultr); got != f.want[idVultr] {
		t.Errorf("bundle artifact: wrong sha256")
	}
	if err := Mirror(ctx, src, "docker-archive:"+filepath.Join(dir, "x.tar"), Options{}); err == nil {
		t.Error("Mirror to docker-archive succeeded")
	}
}

func TestAuth(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	reg := newRegistry(t, basicAuth("alice", "s3cret"))
	ref := "docker://" + reg + "/private/rehydrator:42.1"
	one := map[string]string{"linux/amd64": f.bins["linux/amd64"]}
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", "")

	if _, err := Write(ctx, f.bundle, one, ref, Options{}); !errors.Is(err, ErrAuth) {
		t.Fatalf("push without credentials: %v", err)
	}
	if _, err := Write(ctx, f.bundle, one, ref, Options{Username: "alice", Password: "wrong"}); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), reg) {
		t.Fatalf("push with a wrong password: %v", err)
	} else {
		t.Logf("wrong password: %v", err)
	}
	if _, err := Write(ctx, f.bundle, one, ref, Options{Username: "alice", Password: "s3cret"}); err != nil {
		t.Fatalf("push with the password: %v", err)
	}
	if _, err := Open(ctx, ref, Options{Username: "alice", Password: "wrong"}); !errors.Is(err, ErrAuth) {
		t.Errorf("open with a wrong password: %v", err)
	}
	t.Setenv("REHYDRATOR_REGISTRY_USERNAME", "alice")
	t.Setenv("REHYDRATOR_REGISTRY_PASSWORD", "s3cret")
	if got, _ := rehydrateID(t, ref, Options{}, idVultr); got != f.want[idVultr] {
		t.Error("environment credentials: wrong sha256")
	}
	t.Setenv("REHYDRATOR_REGISTRY_USERNAME", "")
	t.Setenv("REHYDRATOR_REGISTRY_PASSWORD", "")
	auth := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(auth, []byte(`{"auths":{"`+reg+`/private":{"auth":"YWxpY2U6czNjcmV0"}}}`), 0o600) // alice:s3cret
	t.Setenv("REGISTRY_AUTH_FILE", auth)
	if got, _ := rehydrateID(t, ref, Options{}, idVultr); got != f.want[idVultr] {
		t.Error("auth file credentials: wrong sha256")
	}
}

func TestUserErrors(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	reg := newRegistry(t, nil)
	one := map[string]string{"linux/amd64": f.bins["linux/amd64"]}
	ref := "docker://" + reg + "/fcos/rehydrator"
	if _, err := Write(ctx, f.bundle, one, ref+":42.1", Options{}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, kind error, mention string) {
		t.Helper()
		if !errors.Is(err, kind) || !strings.Contains(err.Error(), mention) {
			t.Errorf("%s: got %v, want %v mentioning %q", what, err, kind, mention)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}

	_, err := Open(ctx, ref+":nope", Options{})
	check("unknown tag", err, ErrNotFound, `tag "nope" not found`)
	_, err = Open(ctx, "docker://"+reg+"/no/such:42.1", Options{})
	check("unknown repository", err, ErrNotFound, "not found")

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	_, err = Open(ctx, "docker://"+down+"/fcos/rehydrator:42.1", Options{})
	check("registry down", err, ErrUnreachable, "connection refused")

	layout := filepath.Join(dir, "layout")
	if _, err := Write(ctx, f.bundle, one, "oci:"+layout+":42.1", Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, "oci:"+layout+":nope", Options{})
	check("unknown layout tag", err, ErrNotFound, `tag "nope" not found`)

	// A corrupted and a missing data layer in an OCI layout.
	d, _ := rootOf(t, "oci:"+layout+":42.1", Options{})
	raw, _ := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Digest.Hex))
	m, _ := v1.ParseManifest(bytes.NewReader(raw))
	b, _ := rehydrate.OpenDir(f.bundle)
	layerOf := func(id string) string {
		a := b.Index.Lookup(id)
		for _, l := range m.Layers {
			if l.Annotations[AnnotationBlobDigest] == a.Recipe.Blob.Digest.String() {
				return filepath.Join(layout, "blobs", "sha256", l.Digest.Hex)
			}
		}
		t.Fatalf("no layer for %s", id)
		return ""
	}
	vultrLayer := layerOf(idVultr)
	lb, _ := os.ReadFile(vultrLayer)
	lb[100] ^= 1 // in the tar header
	os.WriteFile(vultrLayer, lb, 0o644)
	s, err := Open(ctx, "oci:"+layout+":42.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rehydrateFrom(s, idVultr, t.TempDir())
	check("corrupted layer", err, ErrDigest, "oci:"+layout)
	s.Close()

	os.Remove(layerOf("x86_64/hetzner/raw/disk"))
	s, _ = Open(ctx, "oci:"+layout+":42.1", Options{})
	_, err = rehydrateFrom(s, "x86_64/hetzner/raw/disk", t.TempDir())
	check("missing layer", err, ErrNotFound, "missing")
	s.Close()

	// A registry that corrupts one blob in transit.
	a := b.Index.Lookup(idVultr)
	var target string
	for _, l := range m.Layers {
		if l.Annotations[AnnotationBlobDigest] == a.Recipe.Blob.Digest.String() {
			target = l.Digest.String()
		}
	}
	bad := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+target) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[600] ^= 1 // in the blob, past the tar header
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	if err := Mirror(ctx, ref+":42.1", "docker://"+bad+"/fcos/rehydrator:42.1", Options{}); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, "docker://"+bad+"/fcos/rehydrator:42.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rehydrateFrom(s, idVultr, t.TempDir())
	check("corrupted in transit", err, ErrDigest, bad)
	s.Close()

	// A damaged bundle: Write fails and leaves nothing behind.
	broken := filepath.Join(dir, "broken")
	os.CopyFS(broken, os.DirFS(f.bundle))
	bb, _ := rehydrate.OpenDir(broken)
	blob := rehydrate.NewLayout(broken).BlobPath(bb.Index.Lookup(idVultr).Recipe.Blob.Digest)
	os.Chmod(blob, 0o644)
	fb, _ := os.ReadFile(blob)
	fb[0] ^= 1
	os.WriteFile(blob, fb, 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	_, err = Write(ctx, broken, one, "oci-archive:"+filepath.Join(out, "x.tar"), Options{})
	check("damaged bundle", err, ErrDigest, "sha256:")
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("a failed Write left %v", ents)
	}

	// Binaries that would not run from scratch.
	dyn := filepath.Join(dir, "dyn")
	os.WriteFile(dyn, fakeELF(0x3e, true, nil), 0o755)
	if _, err := Write(ctx, f.bundle, map[string]string{"linux/amd64": dyn}, "oci:"+filepath.Join(dir, "l2"), Options{}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic binary: %v", err)
	}
	if _, err := Write(ctx, f.bundle, map[string]string{"linux/arm64": f.bins["linux/amd64"]}, "oci:"+filepath.Join(dir, "l2"), Options{}); err == nil || !strings.Contains(err.Error(), "not arm64") {
		t.Errorf("binary for the wrong architecture: %v", err)
	}
	if _, err := Write(ctx, f.bundle, one, "docker-archive:"+filepath.Join(dir, "x.tar"), Options{}); err == nil {
		t.Error("Write to docker-archive succeeded")
	}
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind kind
		path string
		tag  string
		bad  bool
	}{
		{"oci:/a/b:t", kindOCI, "/a/b", "t", false},
		{"oci:/a/b", kindOCI, "/a/b", "", false},
		{"oci-archive:x.tar:1.2", kindOCIArchive, "x.tar", "1.2", false},
		{"docker-archive:x.tar:repo/name:tag", kindDockerArchive, "x.tar", "repo/name:tag", false},
		{"docker://localhost:5000/a/b:c", kindDocker, "", "", false},
		{"./bundle", kindDir, "./bundle", "", false},
		{"/usr/share/rehydrator/bundle", kindDir, "/usr/share/rehydrator/bundle", "", false},
		{"oci:", 0, "", "", true},
		{"docker://UPPER/x", 0, "", "", true},
		{"ftp:x", 0, "", "", true},
		{"", 0, "", "", true},
	} {
		l, err := parseLocation(tc.in, Options{})
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if !tc.bad && (l.kind != tc.kind || l.path != tc.path || l.tag != tc.tag) {
			t.Errorf("%q: got %+v", tc.in, l)
		}
	}
}

func TestAuthKeys(t *testing.T) {
	reg, _ := parseLocation("docker://localhost:5000/a/b/c:1", Options{})
	got := strings.Join(authKeys(reg.ref.Context()), " ")
	if want := "localhost:5000/a/b/c localhost:5000/a/b localhost:5000/a localhost:5000"; got != want {
		t.Errorf("authKeys: %q, want %q", got, want)
	}
	hub, _ := parseLocation("docker://fedora", Options{})
	if got := authKeys(hub.ref.Context()); got[len(got)-1] != normalizeAuthKey("https://index.docker.io/v1/") || normalizeAuthKey("docker.io") != got[len(got)-1] {
		t.Errorf("docker hub keys: %v", got)
	}
}

// TestConfigJSON pins the config's JSON shape.
func TestConfigJSON(t *testing.T) {
	f := getFixture(t)
	st, err := build(context.Background(), f.bundle, map[string]string{"linux/amd64": f.bins["linux/amd64"]}, "test")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := v1.ParseManifest(bytes.NewReader(st.rootRaw))
	var cfg map[string]any
	json.Unmarshal(st.blobs[m.Config.Digest].data, &cfg)
	keys := []string{}
	for k := range cfg {
		keys = append(keys, k)
	}
	if len(keys) != 5 || cfg["created"] != "1970-01-01T00:00:00Z" {
		t.Errorf("config: %s", st.blobs[m.Config.Digest].data)
	}
}
