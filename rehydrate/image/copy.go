package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Mirror copies the image or index at src to dst, every platform and
// layer, byte for byte: the manifest digests stay the same. Every blob is
// verified against its digest as it is read (a registry also checks what
// it receives). src is any location Open takes except a bundle directory
// (name it oci:DIR to push a bundle as an OCI artifact); dst is any
// location Write takes. Between two repositories of one registry, layers
// are mounted rather than copied. A docker-archive has no manifest of its
// own: the copy gets the one Open makes up (the config and layers as
// stored), so its digest is not the original image's.
func Mirror(ctx context.Context, src, dst string, opt Options) error {
	sl, err := parseLocation(src, opt)
	if err != nil {
		return err
	}
	if sl.kind == kindDir {
		sl.kind = kindOCI
	}
	dl, err := parseLocation(dst, opt)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, sl, opt)
	if err != nil {
		return err
	}
	_, err = copyTo(ctx, st, dl, opt)
	return err
}

// copyTo writes the tree of st's root to dst and returns the root digest.
func copyTo(ctx context.Context, st store, dst location, opt Options) (v1.Hash, error) {
	root, raw, err := st.root(ctx)
	if err != nil {
		return v1.Hash{}, err
	}
	switch dst.kind {
	case kindDocker:
		err = pushRemote(ctx, st, root, raw, dst, opt)
	case kindOCI:
		err = writeLayout(ctx, st, root, raw, dst)
	case kindOCIArchive:
		err = writeArchive(ctx, st, root, raw, dst)
	default:
		err = &locError{loc: dst.raw, msg: "cannot write here: the destination must be oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REF"}
	}
	return root.Digest, err
}

// treeBlob is one blob of an image tree; manifest marks manifests and
// indexes, read through store.manifest.
type treeBlob struct {
	v1.Descriptor
	manifest bool
}

// walk lists the blobs of the tree under root, children before parents,
// each once.
func walk(ctx context.Context, st store, root v1.Descriptor, raw []byte) ([]treeBlob, error) {
	var out []treeBlob
	seen := map[v1.Hash]bool{}
	add := func(d v1.Descriptor, manifest bool) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, treeBlob{d, manifest})
		}
	}
	var visit func(d v1.Descriptor, raw []byte, depth int) error
	visit = func(d v1.Descriptor, raw []byte, depth int) error {
		if depth > maxTreeDepth {
			return &locError{loc: st.String(), msg: "indexes nested too deep"}
		}
		switch {
		case d.MediaType.IsIndex():
			ix, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return &locError{loc: st.String(), msg: "index " + d.Digest.String() + ": " + err.Error(), err: err}
			}
			for _, c := range ix.Manifests {
				if seen[c.Digest] {
					continue
				}
				craw, err := st.manifest(ctx, c)
				if err != nil {
					return err
				}
				if err := visit(c, craw, depth+1); err != nil {
					return err
				}
			}
		case d.MediaType.IsImage():
			m, err := v1.ParseManifest(bytes.NewReader(raw))
			if err != nil {
				return &locError{loc: st.String(), msg: "manifest " + d.Digest.String() + ": " + err.Error(), err: err}
			}
			for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if err := checkDesc(b); err != nil {
					return &locError{loc: st.String(), msg: "manifest " + d.Digest.String() + ": " + err.Error()}
				}
				add(b, false)
			}
		default:
			return &locError{loc: st.String(), msg: fmt.Sprintf("%s: unsupported media type %q", d.Digest, d.MediaType)}
		}
		add(d, true)
		return nil
	}
	if err := visit(root, raw, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// openTreeBlob streams a blob of the tree, verified at EOF.
func openTreeBlob(ctx context.Context, st store, b treeBlob) (io.ReadCloser, error) {
	if b.manifest {
		raw, err := st.manifest(ctx, b.Descriptor)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	return st.blob(ctx, b.Descriptor)
}

// layoutEntry is root's entry in a layout's index.json.
func layoutEntry(root v1.Descriptor, tag string) v1.Descriptor {
	e := v1.Descriptor{MediaType: root.MediaType, Size: root.Size, Digest: root.Digest, Platform: root.Platform}
	if tag != "" {
		e.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	}
	return e
}

// ociLayoutFile is the content of an OCI layout's oci-layout file.
var ociLayoutFile = []byte(`{"imageLayoutVersion":"1.0.0"}`)

// writeLayout adds the tree to the OCI layout directory dst: blobs through
// temporary files renamed to their digest (ones already present are kept),
// then index.json, replacing the entry with the same tag (or the untagged
// ones), rewritten atomically.
func writeLayout(ctx context.Context, st store, root v1.Descriptor, raw []byte, dst location) error {
	blobs, err := walk(ctx, st, root, raw)
	if err != nil {
		return err
	}
	dir := filepath.Join(dst.path, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return classify(dst.raw, "layout", err)
	}
	ix := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	indexFile := filepath.Join(dst.path, "index.json")
	if b, err := os.ReadFile(indexFile); err == nil {
		if ix, err = v1.ParseIndexManifest(bytes.NewReader(b)); err != nil {
			return &locError{loc: dst.raw, msg: "existing index.json: " + err.Error(), err: err}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return classify(dst.raw, "index.json", err)
	}
	for _, b := range blobs {
		if err := writeLayoutBlob(ctx, st, b, dir); err != nil {
			return err
		}
	}
	var keep []v1.Descriptor
	for _, d := range ix.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] != dst.tag {
			keep = append(keep, d)
		}
	}
	ix.Manifests = append(keep, layoutEntry(root, dst.tag))
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dst.path, "oci-layout")); err != nil {
		if err := writeFileAtomic(filepath.Join(dst.path, "oci-layout"), ociLayoutFile); err != nil {
			return classify(dst.raw, "oci-layout", err)
		}
	}
	return classify(dst.raw, "index.json", writeFileAtomic(indexFile, append(b, '\n')))
}

// writeLayoutBlob writes one blob into a layout's blobs/sha256 directory.
func writeLayoutBlob(ctx context.Context, st store, b treeBlob, dir string) error {
	final := filepath.Join(dir, b.Digest.Hex)
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == b.Size {
		return nil
	}
	rc, err := openTreeBlob(ctx, st, b)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, ".tmp-"+b.Digest.Hex[:12]+"-")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, ctxReader{ctx, rc})
	if err == nil {
		err = f.Chmod(0o644) // as any file, not CreateTemp's 0600
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), final)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// writeFileAtomic writes name through a synced temporary file and a rename.
func writeFileAtomic(name string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-")
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// writeArchive writes the tree as an oci-archive: a tar of an OCI layout
// (oci-layout, index.json, then the blobs), through a temporary file in the
// destination's directory renamed into place when complete.
func writeArchive(ctx context.Context, st store, root v1.Descriptor, raw []byte, dst location) (err error) {
	blobs, err := walk(ctx, st, root, raw)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dst.path); err == nil && fi.IsDir() {
		return &locError{loc: dst.raw, msg: "is a directory"}
	}
	f, err := os.CreateTemp(filepath.Dir(dst.path), "."+filepath.Base(dst.path)+".tmp-")
	if err != nil {
		return classify(dst.raw, "archive", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	ix := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{layoutEntry(root, dst.tag)}}
	ixRaw, err := json.Marshal(ix)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{"oci-layout", ociLayoutFile}, {"index.json", ixRaw}} {
		if err := writeTarFile(tw, m.name, 0o644, int64(len(m.data)), bytes.NewReader(m.data)); err != nil {
			return classify(dst.raw, "archive", err)
		}
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(tarHeader(d, tar.TypeDir, 0o755, 0)); err != nil {
			return classify(dst.raw, "archive", err)
		}
	}
	for _, b := range blobs {
		rc, err := openTreeBlob(ctx, st, b)
		if err != nil {
			return err
		}
		err = writeTarFile(tw, blobName(b.Digest), 0o644, b.Size, ctxReader{ctx, rc})
		rc.Close()
		if err != nil {
			return classify(dst.raw, "blob "+b.Digest.String(), err)
		}
	}
	if err := tw.Close(); err != nil {
		return classify(dst.raw, "archive", err)
	}
	if err := bw.Flush(); err != nil {
		return classify(dst.raw, "archive", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return classify(dst.raw, "archive", err)
	}
	if err := f.Sync(); err != nil {
		return classify(dst.raw, "archive", err)
	}
	if err := f.Close(); err != nil {
		return classify(dst.raw, "archive", err)
	}
	if err := os.Rename(f.Name(), dst.path); err != nil {
		return classify(dst.raw, "archive", err)
	}
	return nil
}

// tarHeader is a header with this package's fixed metadata.
func tarHeader(name string, typ byte, mode, size int64) *tar.Header {
	h := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
	if size >= 1<<33 || len(name) > 255 {
		h.Format = tar.FormatPAX
	}
	return h
}

// writeTarFile writes one regular file of size bytes from r.
func writeTarFile(tw *tar.Writer, name string, mode, size int64, r io.Reader) error {
	if err := tw.WriteHeader(tarHeader(name, tar.TypeReg, mode, size)); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes, want %d", name, n, size)
	}
	// Read to EOF so a verifying reader checks its digest.
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%s: longer than %d bytes", name, size)
		}
		return err
	}
	return nil
}

// pushRemote pushes the tree to a registry with go-containerregistry and
// checks the digest the registry then reports for the tag.
func pushRemote(ctx context.Context, st store, root v1.Descriptor, raw []byte, dst location, opt Options) error {
	var n atomic.Int64
	opts := opt.remoteOptions(ctx, &n)
	var t remote.Taggable
	if rs, ok := st.(*remoteStore); ok {
		// Native remote objects: layers are mounted within a registry.
		d, err := rs.puller.Get(ctx, rs.ref.Context().Digest(root.Digest.String()))
		if err != nil {
			return classify(rs.loc, "manifest "+root.Digest.String(), err)
		}
		t = d
	} else {
		var err error
		if t, err = adapt(ctx, st, root, raw); err != nil {
			return err
		}
	}
	p, err := remote.NewPusher(opts...)
	if err != nil {
		return err
	}
	what := "push"
	if tag, ok := dst.ref.(name.Tag); ok {
		what = fmt.Sprintf("push to tag %q", tag.TagStr())
	}
	if err := p.Push(ctx, dst.ref, t); err != nil {
		return classify(dst.raw, what, err)
	}
	got, err := remote.Head(dst.ref, opts...)
	if err != nil {
		return classify(dst.raw, "check of the pushed manifest", err)
	}
	if got.Digest != root.Digest {
		return &locError{loc: dst.raw, kind: ErrDigest, msg: fmt.Sprintf("the registry reports %s after pushing %s", got.Digest, root.Digest)}
	}
	return nil
}

// adapt presents st's root as a go-containerregistry image or index.
func adapt(ctx context.Context, st store, d v1.Descriptor, raw []byte) (remote.Taggable, error) {
	if d.MediaType.IsIndex() {
		ix, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, &locError{loc: st.String(), msg: "index: " + err.Error(), err: err}
		}
		return &storeIndex{ctx: ctx, st: st, desc: d, raw: raw, ix: ix}, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, &locError{loc: st.String(), msg: "manifest: " + err.Error(), err: err}
	}
	return partial.CompressedToImage(&storeImage{ctx: ctx, st: st, desc: d, raw: raw, m: m})
}

// storeIndex is an index of a store, as a v1.ImageIndex.
type storeIndex struct {
	ctx  context.Context
	st   store
	desc v1.Descriptor
	raw  []byte
	ix   *v1.IndexManifest
}

func (s *storeIndex) MediaType() (types.MediaType, error)         { return s.desc.MediaType, nil }
func (s *storeIndex) Digest() (v1.Hash, error)                    { return s.desc.Digest, nil }
func (s *storeIndex) Size() (int64, error)                        { return s.desc.Size, nil }
func (s *storeIndex) IndexManifest() (*v1.IndexManifest, error)   { return s.ix.DeepCopy(), nil }
func (s *storeIndex) RawManifest() ([]byte, error)                { return s.raw, nil }
func (s *storeIndex) Image(h v1.Hash) (v1.Image, error)           { return s.child(h) }
func (s *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return s.childIndex(h) }

func (s *storeIndex) find(h v1.Hash) (v1.Descriptor, []byte, error) {
	for _, c := range s.ix.Manifests {
		if c.Digest == h {
			raw, err := s.st.manifest(s.ctx, c)
			return c, raw, err
		}
	}
	return v1.Descriptor{}, nil, &locError{loc: s.st.String(), kind: ErrNotFound, msg: "index has no manifest " + h.String()}
}

func (s *storeIndex) child(h v1.Hash) (v1.Image, error) {
	c, raw, err := s.find(h)
	if err != nil {
		return nil, err
	}
	t, err := adapt(s.ctx, s.st, c, raw)
	if err != nil {
		return nil, err
	}
	img, ok := t.(v1.Image)
	if !ok {
		return nil, &locError{loc: s.st.String(), msg: h.String() + " is not an image"}
	}
	return img, nil
}

func (s *storeIndex) childIndex(h v1.Hash) (v1.ImageIndex, error) {
	c, raw, err := s.find(h)
	if err != nil {
		return nil, err
	}
	t, err := adapt(s.ctx, s.st, c, raw)
	if err != nil {
		return nil, err
	}
	ix, ok := t.(v1.ImageIndex)
	if !ok {
		return nil, &locError{loc: s.st.String(), msg: h.String() + " is not an index"}
	}
	return ix, nil
}

// storeImage is an image manifest of a store, as a partial.CompressedImageCore.
type storeImage struct {
	ctx  context.Context
	st   store
	desc v1.Descriptor
	raw  []byte
	m    *v1.Manifest
}

func (s *storeImage) RawManifest() ([]byte, error)        { return s.raw, nil }
func (s *storeImage) MediaType() (types.MediaType, error) { return s.desc.MediaType, nil }

func (s *storeImage) RawConfigFile() ([]byte, error) {
	rc, err := s.st.blob(s.ctx, s.m.Config)
	if err != nil {
		return nil, err
	}
	return readVerified(rc, s.m.Config, maxManifestSize)
}

func (s *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range append([]v1.Descriptor{s.m.Config}, s.m.Layers...) {
		if l.Digest == h {
			return &storeLayer{ctx: s.ctx, st: s.st, desc: l}, nil
		}
	}
	return nil, &locError{loc: s.st.String(), kind: ErrNotFound, msg: "manifest has no layer " + h.String()}
}

// storeLayer is a blob of a store, as a partial.CompressedLayer.
type storeLayer struct {
	ctx  context.Context
	st   store
	desc v1.Descriptor
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error)  { return l.st.blob(l.ctx, l.desc) }
func (l *storeLayer) DiffID() (v1.Hash, error) {
	if l.desc.MediaType == types.OCIUncompressedLayer || l.desc.MediaType == types.DockerUncompressedLayer {
		return l.desc.Digest, nil
	}
	return v1.Hash{}, errors.New("diff ID not known without decompressing")
}
