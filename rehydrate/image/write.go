package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// maxBinarySize bounds a rehydrator binary, which is read into memory.
const maxBinarySize = 1 << 30

// Write makes the image of the package doc from the bundle in bundleDir
// and one static rehydrator binary per platform (binaries maps
// "os/arch[/variant]" to a file), writes it to dst (oci:DIR[:TAG],
// oci-archive:FILE[:TAG] or docker://REGISTRY/REPO[:TAG]) and returns the
// digest of its manifest, or of its index for several platforms. Bundle
// blobs are verified as they are read; nothing appears under dst's final
// name unless complete (blob files and index.json of an OCI layout are
// renamed into place; an archive is renamed when written; a registry
// tag is set last).
func Write(ctx context.Context, bundleDir string, binaries map[string]string, dst string, opt Options) (string, error) {
	loc, err := parseLocation(dst, opt)
	if err != nil {
		return "", err
	}
	switch loc.kind {
	case kindOCI, kindOCIArchive, kindDocker:
	default:
		return "", &locError{loc: dst, msg: "cannot write here: the destination must be oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REF"}
	}
	st, err := build(ctx, bundleDir, binaries, dst)
	if err != nil {
		var de *rehydrate.DigestError
		if errors.As(err, &de) {
			return "", &locError{loc: bundleDir, kind: ErrDigest, msg: "the bundle is damaged: " + de.Error(), err: err}
		}
		return "", err
	}
	d, err := copyTo(ctx, st, loc, opt)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// memBlob is a blob of an image being written: bytes, or a stream.
type memBlob struct {
	desc v1.Descriptor
	data []byte
	open func() (io.ReadCloser, error)
}

// memStore is an image being written.
type memStore struct {
	loc      string
	blobs    map[v1.Hash]memBlob
	rootDesc v1.Descriptor
	rootRaw  []byte
}

func (s *memStore) String() string                            { return s.loc }
func (s *memStore) fetched() int64                            { return 0 }
func (s *memStore) local(v1.Descriptor) (string, int64, bool) { return "", 0, false }

func (s *memStore) root(context.Context) (v1.Descriptor, []byte, error) {
	return s.rootDesc, s.rootRaw, nil
}

func (s *memStore) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	b, ok := s.blobs[d.Digest]
	if !ok || b.data == nil {
		return nil, &locError{loc: s.loc, kind: ErrNotFound, msg: "no manifest " + d.Digest.String()}
	}
	return b.data, nil
}

func (s *memStore) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	b, ok := s.blobs[d.Digest]
	if !ok {
		return nil, &locError{loc: s.loc, kind: ErrNotFound, msg: "no blob " + d.Digest.String()}
	}
	if b.data != nil {
		return io.NopCloser(bytes.NewReader(b.data)), nil
	}
	rc, err := b.open()
	if err != nil {
		return nil, classify(s.loc, "bundle blob", err)
	}
	what := fmt.Sprintf("layer %s (bundle blob %s)", d.Digest, d.Annotations[AnnotationBlobDigest])
	return &errReadCloser{rc: rehydrate.VerifyReader(rc, toOCI(b.desc)), wrap: func(err error) error {
		return classify(s.loc, what+": the bundle changed while being written", err)
	}}, nil
}

func (s *memStore) add(desc v1.Descriptor, data []byte, open func() (io.ReadCloser, error)) {
	s.blobs[desc.Digest] = memBlob{desc: desc, data: data, open: open}
}

// addJSON adds v, JSON-encoded, and returns its descriptor.
func (s *memStore) addJSON(mt types.MediaType, v any) (v1.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(b))
	d := v1.Descriptor{MediaType: mt, Size: n, Digest: h}
	s.add(d, b, nil)
	return d, nil
}

// bundleFiles is what build reads from a bundle directory.
type bundleFiles struct {
	layoutRaw, indexRaw []byte
	manifest            ocispec.Manifest
	config              struct {
		Stream        string   `json:"stream"`
		Releases      []string `json:"releases"`
		Architectures []string `json:"architectures"`
	}
	meta map[digest.Digest][]byte // manifest, config, bundle index, stream
	data []ocispec.Descriptor     // every other blob, in manifest order
}

// readBundle reads and verifies the small files of the bundle in dir and
// lists its other blobs.
func readBundle(dir string) (*bundleFiles, error) {
	files := dirFiles(dir)
	l := rehydrate.NewLayout(dir)
	bf := &bundleFiles{meta: map[digest.Digest][]byte{}}
	var err error
	if bf.layoutRaw, err = readMember(files, "oci-layout", 1<<20); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	if bf.indexRaw, err = readMember(files, "index.json", maxManifestSize); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var ix ocispec.Index
	if err := json.Unmarshal(bf.indexRaw, &ix); err != nil {
		return nil, fmt.Errorf("bundle %s: index.json: %w", dir, err)
	}
	found := false
	for _, d := range ix.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest || d.Size > maxManifestSize {
			continue
		}
		b, err := l.ReadBlob(d)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: manifest: %w", dir, err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("bundle %s: manifest %s: %w", dir, d.Digest, err)
		}
		if m.ArtifactType == rehydrate.ArtifactType || m.Config.MediaType == rehydrate.MediaTypeBundleConfig {
			bf.manifest, found = m, true
			bf.meta[d.Digest] = b
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is not a rehydrator bundle: index.json lists no bundle manifest", dir)
	}
	m := &bf.manifest
	cfg, err := l.ReadBlob(m.Config)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: config: %w", dir, err)
	}
	if err := json.Unmarshal(cfg, &bf.config); err != nil {
		return nil, fmt.Errorf("bundle %s: config: %w", dir, err)
	}
	bf.meta[m.Config.Digest] = cfg
	for _, d := range m.Layers {
		if d.Digest.Algorithm() != digest.SHA256 || d.Digest.Validate() != nil || d.Size < 0 {
			return nil, fmt.Errorf("bundle %s: bad blob descriptor %q", dir, d.Digest)
		}
		if d.MediaType == rehydrate.MediaTypeIndex || d.MediaType == rehydrate.MediaTypeStream {
			b, err := l.ReadBlob(d)
			if err != nil {
				return nil, fmt.Errorf("bundle %s: %w", dir, err)
			}
			bf.meta[d.Digest] = b
		}
	}
	seen := map[digest.Digest]bool{}
	for _, d := range m.Layers {
		if _, ok := bf.meta[d.Digest]; !ok && !seen[d.Digest] {
			seen[d.Digest] = true
			bf.data = append(bf.data, d)
		}
	}
	return bf, nil
}

// metadataLayer is layer 1: /tmp, the bundle directories and small files.
func metadataLayer(bf *bundleFiles) (v1.Descriptor, []byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []struct {
		name string
		mode int64
	}{{"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/share/", 0o755}, {"usr/share/rehydrator/", 0o755},
		{bundlePrefix, 0o755}, {bundlePrefix + "blobs/", 0o755}, {bundlePrefix + "blobs/sha256/", 0o755}}
	for _, d := range dirs {
		if err := tw.WriteHeader(tarHeader(d.name, tar.TypeDir, d.mode, 0)); err != nil {
			return v1.Descriptor{}, nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{{bundlePrefix + "oci-layout", bf.layoutRaw}, {bundlePrefix + "index.json", bf.indexRaw}}
	var ds []string
	for d := range bf.meta {
		ds = append(ds, string(d))
	}
	sort.Strings(ds)
	for _, d := range ds {
		files = append(files, struct {
			name string
			data []byte
		}{bundlePrefix + "blobs/sha256/" + digest.Digest(d).Encoded(), bf.meta[digest.Digest(d)]})
	}
	for _, f := range files {
		if err := writeTarFile(tw, f.name, 0o644, int64(len(f.data)), bytes.NewReader(f.data)); err != nil {
			return v1.Descriptor{}, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return v1.Descriptor{}, nil, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(buf.Bytes()))
	return v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: n, Digest: h,
		Annotations: map[string]string{AnnotationLayer: layerMetadata}}, buf.Bytes(), nil
}

// blobAnnotations are a data layer's annotations.
func blobAnnotations(d digest.Digest, size int64) map[string]string {
	return map[string]string{AnnotationBlobDigest: d.String(), AnnotationBlobSize: strconv.FormatInt(size, 10)}
}

// dataLayer describes the layer holding bundle blob d, stored at file:
// a tar header, the blob, zero padding and the end-of-archive blocks. It
// reads the blob once, verifying it, to compute the layer digest; open
// streams the layer.
func dataLayer(ctx context.Context, file string, d ocispec.Descriptor) (v1.Descriptor, func() (io.ReadCloser, error), error) {
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	if err := tw.WriteHeader(tarHeader(bundlePrefix+"blobs/sha256/"+d.Digest.Encoded(), tar.TypeReg, 0o644, d.Size)); err != nil {
		return v1.Descriptor{}, nil, err
	}
	hdr := bytes.Clone(hb.Bytes())
	tail := (512-d.Size%512)%512 + 1024
	f, err := os.Open(file)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle blob %s: %w", d.Digest, err)
	}
	defer f.Close()
	lh, bh := sha256.New(), sha256.New()
	lh.Write(hdr)
	n, err := io.Copy(io.MultiWriter(lh, bh), ctxReader{ctx, io.LimitReader(f, d.Size+1)})
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle blob %s: %w", d.Digest, err)
	}
	if got := digest.NewDigest(digest.SHA256, bh); n != d.Size {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle %w", &rehydrate.DigestError{Want: d.Digest, Size: n})
	} else if got != d.Digest {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle %w", &rehydrate.DigestError{Want: d.Digest, Got: got, Size: n})
	}
	lh.Write(make([]byte, tail))
	desc := v1.Descriptor{
		MediaType:   types.OCIUncompressedLayer,
		Size:        int64(len(hdr)) + d.Size + tail,
		Digest:      v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", lh.Sum(nil))},
		Annotations: blobAnnotations(d.Digest, d.Size),
	}
	open := func() (io.ReadCloser, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		r := io.MultiReader(bytes.NewReader(hdr), io.LimitReader(f, d.Size), bytes.NewReader(make([]byte, tail)))
		return readCloser{r, f}, nil
	}
	return desc, open, nil
}

// binaryLayer is layer 0: the binary as /rehydrator, gzip-compressed. It
// returns the layer and its diff ID.
func binaryLayer(p v1.Platform, file string) (v1.Descriptor, []byte, v1.Hash, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, fmt.Errorf("binary for %s: %w", p.String(), err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxBinarySize {
		return v1.Descriptor{}, nil, v1.Hash{}, fmt.Errorf("binary for %s: %s is not a regular file of at most %d bytes", p.String(), file, maxBinarySize)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, fmt.Errorf("binary for %s: %w", p.String(), err)
	}
	if err := checkBinary(p, data); err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, fmt.Errorf("binary for %s: %s: %w", p.String(), file, err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := writeTarFile(tw, BinaryPath[1:], 0o755, int64(len(data)), bytes.NewReader(data)); err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, err
	}
	if err := tw.Close(); err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, err
	}
	diffID, _, _ := v1.SHA256(bytes.NewReader(tb.Bytes()))
	var gb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gb, gzip.BestCompression)
	zw.Write(tb.Bytes())
	if err := zw.Close(); err != nil {
		return v1.Descriptor{}, nil, v1.Hash{}, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(gb.Bytes()))
	return v1.Descriptor{MediaType: types.OCILayer, Size: n, Digest: h,
		Annotations: map[string]string{AnnotationLayer: layerBinary}}, gb.Bytes(), diffID, nil
}

// elfMachines maps GOARCH to the ELF machine and byte order it runs.
var elfMachines = map[string]struct {
	m     elf.Machine
	order binary.ByteOrder
}{
	"amd64":   {elf.EM_X86_64, binary.LittleEndian},
	"386":     {elf.EM_386, binary.LittleEndian},
	"arm64":   {elf.EM_AARCH64, binary.LittleEndian},
	"arm":     {elf.EM_ARM, binary.LittleEndian},
	"ppc64le": {elf.EM_PPC64, binary.LittleEndian},
	"ppc64":   {elf.EM_PPC64, binary.BigEndian},
	"s390x":   {elf.EM_S390, binary.BigEndian},
	"riscv64": {elf.EM_RISCV, binary.LittleEndian},
	"loong64": {elf.EM_LOONGARCH, binary.LittleEndian},
}

// checkBinary makes sure a Linux binary is a static ELF executable for p,
// so the image runs from scratch.
func checkBinary(p v1.Platform, data []byte) error {
	if p.OS != "linux" {
		return nil
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a Linux ELF executable: %w", err)
	}
	defer f.Close()
	if want, ok := elfMachines[p.Architecture]; ok && (f.Machine != want.m || f.ByteOrder != want.order) {
		return fmt.Errorf("built for %v (%v), not %s", f.Machine, f.ByteOrder, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked; the image has no libc (build it with CGO_ENABLED=0)")
		}
	}
	return nil
}

// build makes the image in memory: small blobs as bytes, data layers as
// streams over the bundle's files.
func build(ctx context.Context, bundleDir string, binaries map[string]string, loc string) (*memStore, error) {
	if len(binaries) == 0 {
		return nil, fmt.Errorf("%s: no rehydrator binary given", loc)
	}
	type plat struct {
		p    v1.Platform
		file string
	}
	var plats []plat
	seen := map[string]bool{}
	for k, file := range binaries {
		p, err := parsePlatform(k)
		if err != nil {
			return nil, err
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %s given twice", p.String())
		}
		seen[p.String()] = true
		plats = append(plats, plat{*p, file})
	}
	sort.Slice(plats, func(i, j int) bool { return plats[i].p.String() < plats[j].p.String() })

	bf, err := readBundle(bundleDir)
	if err != nil {
		return nil, err
	}
	st := &memStore{loc: loc, blobs: map[v1.Hash]memBlob{}}
	metaDesc, metaTar, err := metadataLayer(bf)
	if err != nil {
		return nil, err
	}
	st.add(metaDesc, metaTar, nil)

	// Data layers, hashed in parallel.
	l := rehydrate.NewLayout(bundleDir)
	data := make([]v1.Descriptor, len(bf.data))
	opens := make([]func() (io.ReadCloser, error), len(bf.data))
	errs := make([]error, len(bf.data))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(bf.data)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				data[i], opens[i], errs[i] = dataLayer(ctx, l.BlobPath(bf.data[i].Digest), bf.data[i])
			}
		}()
	}
	for i := range bf.data {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bundleDir, err)
		}
		st.add(data[i], nil, opens[i])
	}

	labels := map[string]string{
		LabelStream:        bf.config.Stream,
		LabelReleases:      strings.Join(bf.config.Releases, ","),
		LabelArchitectures: strings.Join(bf.config.Architectures, ","),
	}
	for _, k := range []string{ocispec.AnnotationTitle, ocispec.AnnotationVersion} {
		if v := bf.manifest.Annotations[k]; v != "" {
			labels[k] = v
		}
	}
	var manifests []v1.Descriptor
	for _, pl := range plats {
		binDesc, binGz, binDiff, err := binaryLayer(pl.p, pl.file)
		if err != nil {
			return nil, err
		}
		st.add(binDesc, binGz, nil)
		layers := append([]v1.Descriptor{binDesc, metaDesc}, data...)
		diffIDs := make([]v1.Hash, len(layers))
		for i, d := range layers {
			diffIDs[i] = d.Digest
		}
		diffIDs[0] = binDiff
		cfg := v1.ConfigFile{
			Architecture: pl.p.Architecture,
			OS:           pl.p.OS,
			Variant:      pl.p.Variant,
			Created:      v1.Time{Time: time.Unix(0, 0).UTC()},
			Config: v1.Config{
				Entrypoint: []string{BinaryPath},
				Env:        []string{"REHYDRATOR_BUNDLE=" + BundlePath, "TMPDIR=/tmp"},
				WorkingDir: "/tmp",
				Labels:     labels,
			},
			RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		}
		cfgDesc, err := st.addJSON(types.OCIConfigJSON, cfg)
		if err != nil {
			return nil, err
		}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        cfgDesc,
			Layers:        layers,
			Annotations:   bf.manifest.Annotations,
		}
		mDesc, err := st.addJSON(types.OCIManifestSchema1, m)
		if err != nil {
			return nil, err
		}
		p := pl.p
		mDesc.Platform = &p
		manifests = append(manifests, mDesc)
	}
	if len(manifests) == 1 {
		st.rootDesc = manifests[0]
		st.rootRaw = st.blobs[manifests[0].Digest].data
		return st, nil
	}
	ix := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: manifests, Annotations: bf.manifest.Annotations}
	if st.rootDesc, err = st.addJSON(types.OCIImageIndex, ix); err != nil {
		return nil, err
	}
	st.rootRaw = st.blobs[st.rootDesc.Digest].data
	return st, nil
}
