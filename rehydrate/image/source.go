package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// Source is an opened bundle location: a bundle directory or an image.
type Source struct {
	ctx context.Context
	loc string

	// A bundle directory.
	dir *rehydrate.Layout
	n   atomic.Int64 // bytes read from dir

	// An image (or a bundle stored as an OCI artifact).
	st    store
	mdesc v1.Descriptor // the image manifest picked for the platform
	mraw  []byte

	mu     sync.Mutex
	bundle *rehydrate.Bundle
	blobs  *imageBlobs
	tmp    []string // directories to remove on Close
}

// Open opens src: a bundle directory, oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:REF] or docker://REF. For an image it reads the
// manifest (through the index, picking opt.Platform) and nothing more;
// Bundle reads the rest as needed.
func Open(ctx context.Context, src string, opt Options) (*Source, error) {
	loc, err := parseLocation(src, opt)
	if err != nil {
		return nil, err
	}
	s := &Source{ctx: ctx, loc: loc.raw}
	if loc.kind == kindDir {
		fi, err := os.Stat(loc.path)
		if err != nil {
			return nil, classify(loc.raw, "bundle", err)
		}
		if !fi.IsDir() {
			return nil, &locError{loc: loc.raw, msg: "not a directory (name an archive as oci-archive:FILE or docker-archive:FILE)"}
		}
		if _, err := os.Stat(loc.path + "/index.json"); err != nil {
			return nil, &locError{loc: loc.raw, kind: ErrNotFound, msg: "not a rehydrator bundle (no index.json)", err: err}
		}
		l := rehydrate.NewLayout(loc.path)
		if _, err := l.ReadManifest(); err == nil {
			s.dir = l
			return s, nil
		}
		// An OCI layout holding an image rather than a bundle.
		loc.kind = kindOCI
	}
	if s.st, err = openStore(ctx, loc, opt); err != nil {
		return nil, err
	}
	if err := s.pick(opt); err != nil {
		return nil, err
	}
	return s, nil
}

// openStore opens a source location's blobs.
func openStore(ctx context.Context, loc location, opt Options) (store, error) {
	switch loc.kind {
	case kindOCI:
		fi, err := os.Stat(loc.path)
		if err != nil {
			return nil, classify(loc.raw, "layout", err)
		}
		if !fi.IsDir() {
			return nil, &locError{loc: loc.raw, msg: "not a directory"}
		}
		return openLayout(loc.raw, dirFiles(loc.path), loc.tag)
	case kindOCIArchive:
		files, err := indexTar(loc.path)
		if err != nil {
			return nil, classify(loc.raw, "archive", err)
		}
		return openLayout(loc.raw, files, loc.tag)
	case kindDockerArchive:
		return openDockerArchive(loc.raw, loc.path, loc.tag)
	case kindDocker:
		st, err := newRemoteStore(ctx, loc, opt)
		if err != nil {
			return nil, err
		}
		if _, _, err := st.root(ctx); err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, &locError{loc: loc.raw, msg: "a bundle directory is not an image; use oci:DIR for an OCI layout"}
}

// pick resolves the root to the image manifest for opt's platform.
func (s *Source) pick(opt Options) error {
	want, explicit, err := opt.platform()
	if err != nil {
		return err
	}
	d, raw, err := s.st.root(s.ctx)
	if err != nil {
		return err
	}
	for depth := 0; d.MediaType.IsIndex(); depth++ {
		if depth >= maxTreeDepth {
			return &locError{loc: s.loc, msg: "indexes nested too deep"}
		}
		ix, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return &locError{loc: s.loc, msg: "index " + d.Digest.String() + ": " + err.Error(), err: err}
		}
		child, err := pickPlatform(ix, want, explicit)
		if err != nil {
			return &locError{loc: s.loc, kind: ErrNotFound, msg: err.Error()}
		}
		if raw, err = s.st.manifest(s.ctx, child); err != nil {
			return err
		}
		d = child
	}
	if !d.MediaType.IsImage() {
		return &locError{loc: s.loc, msg: fmt.Sprintf("%s is a %q, not an image manifest", d.Digest, d.MediaType)}
	}
	s.mdesc, s.mraw = d, raw
	return nil
}

// pickPlatform chooses ix's manifest for want: an exact match (any variant
// when want has none), else, unless explicit, the first image manifest.
func pickPlatform(ix *v1.IndexManifest, want v1.Platform, explicit bool) (v1.Descriptor, error) {
	var first *v1.Descriptor
	var have []string
	for i, m := range ix.Manifests {
		if !m.MediaType.IsImage() && !m.MediaType.IsIndex() {
			continue
		}
		if p := m.Platform; p != nil {
			if p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant) {
				return m, nil
			}
			if p.OS == "unknown" { // attestation manifests
				continue
			}
			have = append(have, p.String())
		}
		if first == nil {
			first = &ix.Manifests[i]
		}
	}
	if first == nil {
		return v1.Descriptor{}, errors.New("the index lists no image")
	}
	if explicit {
		return v1.Descriptor{}, fmt.Errorf("no image for platform %s (the index has %s)", want.String(), listOrNone(have))
	}
	return *first, nil
}

// Bundle opens the bundle. For an image it reads layer 1 (the bundle
// index and stream metadata); blobs are read as artifacts need them.
func (s *Source) Bundle() (*rehydrate.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundle != nil {
		return s.bundle, nil
	}
	var err error
	if s.dir != nil {
		var m *ocispec.Manifest
		if m, err = s.dir.ReadManifest(); err != nil {
			return nil, err
		}
		s.bundle, err = rehydrate.Open(&dirBlobs{l: s.dir, n: &s.n}, m)
		return s.bundle, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(s.mraw, &m); err != nil {
		return nil, &locError{loc: s.loc, msg: "manifest: " + err.Error(), err: err}
	}
	b := &imageBlobs{s: s, layers: map[digest.Digest]v1.Descriptor{}, meta: map[digest.Digest][]byte{}, at: map[digest.Digest]*atEntry{}}
	var bm *ocispec.Manifest
	switch {
	case isBundleManifest(s.mraw):
		b.artifact = true
		bm = &ocispec.Manifest{}
		if err := json.Unmarshal(s.mraw, bm); err != nil {
			return nil, &locError{loc: s.loc, msg: "manifest: " + err.Error(), err: err}
		}
	default:
		metaLayer := -1
		for i, l := range m.Layers {
			if l.Annotations[AnnotationLayer] == layerMetadata {
				metaLayer = i
			}
			if v := l.Annotations[AnnotationBlobDigest]; v != "" {
				b.layers[digest.Digest(v)] = l
			}
		}
		if metaLayer < 0 {
			return s.extracted(&m)
		}
		if bm, err = b.readMetadata(m.Layers[metaLayer]); err != nil {
			return nil, err
		}
	}
	if s.bundle, err = rehydrate.Open(b, bm); err != nil {
		return nil, fmt.Errorf("%s: %w", s.loc, err)
	}
	s.blobs = b
	return s.bundle, nil
}

// isBundleManifest reports whether raw is a bundle manifest itself.
func isBundleManifest(raw []byte) bool {
	var m ocispec.Manifest
	return json.Unmarshal(raw, &m) == nil && (m.ArtifactType == rehydrate.ArtifactType || m.Config.MediaType == rehydrate.MediaTypeBundleConfig)
}

// BytesFetched is the number of bytes read from the registry or the
// archive (or the bundle directory) so far: manifests, layers streamed and
// layers verified or spooled for random access. Re-reading a verified local
// layer in place is not counted.
func (s *Source) BytesFetched() int64 {
	if s.dir != nil {
		return s.n.Load()
	}
	return s.st.fetched()
}

// Close releases spooled blobs and temporary files. The bundle must not be
// used afterwards.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs != nil {
		s.blobs.close()
	}
	var first error
	for _, d := range s.tmp {
		if err := os.RemoveAll(d); err != nil && first == nil {
			first = err
		}
	}
	s.tmp = nil
	return first
}

// dirBlobs is a bundle directory's layout, counting bytes read.
type dirBlobs struct {
	l  *rehydrate.Layout
	n  *atomic.Int64
	mu sync.Mutex
	at map[digest.Digest]bool
}

func (d *dirBlobs) Open(desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := d.l.Open(desc)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{rc: rc, n: d.n}, nil
}

func (d *dirBlobs) OpenAt(desc ocispec.Descriptor) (rehydrate.ReaderAtCloser, error) {
	d.mu.Lock()
	if d.at == nil {
		d.at = map[digest.Digest]bool{}
	}
	if !d.at[desc.Digest] {
		d.at[desc.Digest] = true
		d.n.Add(desc.Size) // the layout verifies it whole once
	}
	d.mu.Unlock()
	return d.l.OpenAt(desc)
}

func (d *dirBlobs) ReadBlob(desc ocispec.Descriptor) ([]byte, error) {
	b, err := d.l.ReadBlob(desc)
	d.n.Add(int64(len(b)))
	return b, err
}

// imageBlobs serves a bundle's blobs from an image: layer 1's files from
// memory, the others from their own layers (or, for a bundle stored as an
// artifact, from the blobs themselves).
type imageBlobs struct {
	s        *Source
	artifact bool
	meta     map[digest.Digest][]byte        // layer 1's blobs
	layers   map[digest.Digest]v1.Descriptor // bundle blob -> layer

	mu sync.Mutex
	at map[digest.Digest]*atEntry
}

// atEntry is a blob made ready for random access, once.
type atEntry struct {
	once sync.Once
	err  error
	file string   // a verified local file ...
	off  int64    // ... and the blob's offset in it
	f    *os.File // or a verified spooled copy
	name string   // the copy's name, if it could not be unlinked
}

// readMetadata reads layer 1 and finds the bundle manifest in it.
func (b *imageBlobs) readMetadata(layer v1.Descriptor) (*ocispec.Manifest, error) {
	loc, what := b.s.loc, "metadata layer "+layer.Digest.String()
	if layer.Size > maxMetadataLayer {
		return nil, &locError{loc: loc, msg: fmt.Sprintf("%s: %d bytes is too large", what, layer.Size)}
	}
	rc, err := b.s.st.blob(b.s.ctx, layer)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var indexJSON []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, classify(loc, what, err)
		}
		n := cleanName(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || !strings.HasPrefix(n, bundlePrefix) {
			continue
		}
		if hdr.Size > maxMetadataFile {
			return nil, &locError{loc: loc, msg: fmt.Sprintf("%s: %s: %d bytes is too large", what, n, hdr.Size)}
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, classify(loc, what, err)
		}
		if n == bundlePrefix+"index.json" {
			indexJSON = data
		} else if d, ok := blobMember(n); ok {
			b.meta[d] = data
		}
	}
	// Reach EOF: the layer digest is checked there.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, classify(loc, what, err)
	}
	if indexJSON == nil {
		return nil, &locError{loc: loc, kind: ErrNotFound, msg: what + " holds no bundle index.json"}
	}
	var ix ocispec.Index
	if err := json.Unmarshal(indexJSON, &ix); err != nil {
		return nil, &locError{loc: loc, msg: "bundle index.json: " + err.Error(), err: err}
	}
	for _, d := range ix.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest || d.Size > maxManifestSize {
			continue
		}
		raw, ok := b.meta[d.Digest]
		if !ok {
			continue
		}
		if err := verifyBytes(raw, v1.Descriptor{Digest: v1.Hash{Algorithm: d.Digest.Algorithm().String(), Hex: d.Digest.Encoded()}, Size: d.Size}); err != nil {
			return nil, classify(loc, "bundle manifest", err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, &locError{loc: loc, msg: "bundle manifest: " + err.Error(), err: err}
		}
		if m.ArtifactType == rehydrate.ArtifactType || m.Config.MediaType == rehydrate.MediaTypeBundleConfig {
			return &m, nil
		}
	}
	return nil, &locError{loc: loc, kind: ErrNotFound, msg: what + ": the bundle index.json lists no bundle manifest"}
}

// layerOf is the image layer (or artifact blob) holding bundle blob desc.
func (b *imageBlobs) layerOf(desc ocispec.Descriptor) (v1.Descriptor, error) {
	h, err := v1.NewHash(desc.Digest.String())
	if err != nil {
		return v1.Descriptor{}, &locError{loc: b.s.loc, msg: fmt.Sprintf("blob %q: %v", desc.Digest, err)}
	}
	if b.artifact {
		return v1.Descriptor{MediaType: types.MediaType(desc.MediaType), Digest: h, Size: desc.Size}, nil
	}
	l, ok := b.layers[desc.Digest]
	if !ok {
		return v1.Descriptor{}, &locError{loc: b.s.loc, kind: ErrNotFound, msg: fmt.Sprintf("no layer holds bundle blob %s (the image is incomplete)", desc.Digest)}
	}
	return l, nil
}

// openEntry streams bundle blob desc out of its layer, verifying the blob
// and, at its end, the layer. off is the blob's offset in the layer.
func (b *imageBlobs) openEntry(desc ocispec.Descriptor) (rc io.ReadCloser, layer v1.Descriptor, off int64, err error) {
	if layer, err = b.layerOf(desc); err != nil {
		return nil, layer, 0, err
	}
	lrc, err := b.s.st.blob(b.s.ctx, layer)
	if err != nil {
		return nil, layer, 0, err
	}
	if b.artifact {
		return lrc, layer, 0, nil
	}
	what := fmt.Sprintf("layer %s (bundle blob %s)", layer.Digest, desc.Digest)
	cr := &countingReader{r: lrc}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			// A damaged layer fails to parse before its digest is
			// checked at its end: report the digest mismatch, which
			// says what happened.
			if _, derr := io.Copy(io.Discard, lrc); derr != nil {
				err = derr
			} else if err == io.EOF {
				err = errors.New("the layer holds no file")
			}
			lrc.Close()
			return nil, layer, 0, classify(b.s.loc, what, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if d, ok := blobMember(cleanName(hdr.Name)); !ok || d != desc.Digest || hdr.Typeflag != tar.TypeReg || hdr.Size != desc.Size {
			if _, derr := io.Copy(io.Discard, lrc); derr != nil {
				lrc.Close()
				return nil, layer, 0, classify(b.s.loc, what, derr)
			}
			lrc.Close()
			return nil, layer, 0, &locError{loc: b.s.loc, msg: fmt.Sprintf("%s holds %q (%d bytes), not the bundle blob", what, hdr.Name, hdr.Size)}
		}
		break
	}
	return rehydrate.VerifyReader(&entryReader{tr: tr, rc: lrc}, desc), layer, cr.n, nil
}

// entryReader reads a layer's one member, then the layer to its end.
type entryReader struct {
	tr *tar.Reader
	rc io.ReadCloser
}

func (e *entryReader) Read(p []byte) (int, error) {
	n, err := e.tr.Read(p)
	if err == io.EOF {
		if _, derr := io.Copy(io.Discard, e.rc); derr != nil {
			return n, derr
		}
	}
	return n, err
}

func (e *entryReader) Close() error { return e.rc.Close() }

// maxBuffered bounds the blobs Open reads whole, and verifies, before
// handing them out: a damaged delta then reports a digest mismatch rather
// than a decoding error, and its layer's connection is released at once.
const maxBuffered = 16 << 20

// Open implements rehydrate.Blobs.
func (b *imageBlobs) Open(desc ocispec.Descriptor) (io.ReadCloser, error) {
	if data, ok := b.meta[desc.Digest]; ok {
		return rehydrate.VerifyReader(io.NopCloser(bytes.NewReader(data)), desc), nil
	}
	rc, _, _, err := b.openEntry(desc)
	if err != nil {
		return nil, err
	}
	wrap := func(err error) error { return classify(b.s.loc, "bundle blob "+desc.Digest.String(), err) }
	if desc.Size <= maxBuffered {
		defer rc.Close()
		data, err := io.ReadAll(ctxReader{b.s.ctx, rc})
		if err != nil {
			return nil, wrap(err)
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return &errReadCloser{rc: rc, wrap: wrap}, nil
}

// ReadBlob implements rehydrate.Blobs.
func (b *imageBlobs) ReadBlob(desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxMetadataFile {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for metadata", desc.Digest, desc.Size)
	}
	rc, err := b.Open(desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// OpenAt implements rehydrate.Blobs: a local layer is verified once and
// then read in place; a remote one is spooled, verified, to an unlinked
// temporary file kept until the Source is closed.
func (b *imageBlobs) OpenAt(desc ocispec.Descriptor) (rehydrate.ReaderAtCloser, error) {
	if data, ok := b.meta[desc.Digest]; ok {
		if err := verifyBytes(data, v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: desc.Digest.Encoded()}, Size: desc.Size}); err != nil {
			return nil, err
		}
		return readerAtCloser{bytes.NewReader(data), nopCloser{}}, nil
	}
	b.mu.Lock()
	e := b.at[desc.Digest]
	if e == nil {
		e = &atEntry{}
		b.at[desc.Digest] = e
	}
	b.mu.Unlock()
	e.once.Do(func() { e.err = b.prepareAt(desc, e) })
	if e.err != nil {
		return nil, e.err
	}
	if e.f != nil {
		return readerAtCloser{io.NewSectionReader(e.f, 0, desc.Size), nopCloser{}}, nil
	}
	f, err := os.Open(e.file)
	if err != nil {
		return nil, classify(b.s.loc, "bundle blob "+desc.Digest.String(), err)
	}
	return readerAtCloser{io.NewSectionReader(f, e.off, desc.Size), f}, nil
}

// prepareAt verifies desc's layer in place, or spools it.
func (b *imageBlobs) prepareAt(desc ocispec.Descriptor, e *atEntry) error {
	rc, layer, off, err := b.openEntry(desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	what := "bundle blob " + desc.Digest.String()
	if file, base, ok := b.s.st.local(layer); ok {
		if _, err := io.Copy(io.Discard, ctxReader{b.s.ctx, rc}); err != nil {
			return classify(b.s.loc, what, err)
		}
		e.file, e.off = file, base+off
		return nil
	}
	f, err := os.CreateTemp("", "rehydrator-blob-")
	if err != nil {
		return err
	}
	// Unlinked at once: the space is freed when the file is closed, even
	// if the process dies.
	if os.Remove(f.Name()) != nil {
		e.name = f.Name()
	}
	if _, err := io.Copy(f, ctxReader{b.s.ctx, rc}); err != nil {
		f.Close()
		if e.name != "" {
			os.Remove(e.name)
		}
		return classify(b.s.loc, what, err)
	}
	e.f = f
	return nil
}

func (b *imageBlobs) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.at {
		if e.f != nil {
			e.f.Close()
		}
		if e.name != "" {
			os.Remove(e.name)
		}
	}
	b.at = map[digest.Digest]*atEntry{}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

type readerAtCloser struct {
	io.ReaderAt
	io.Closer
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
