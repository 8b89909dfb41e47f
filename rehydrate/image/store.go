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
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// store is where an image's blobs live: an OCI layout, an archive, a
// registry, or an image being written.
type store interface {
	// root is the manifest or index the location names, verified.
	root(ctx context.Context) (v1.Descriptor, []byte, error)
	// manifest reads a manifest or index, verified against d.
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	// blob streams a config or layer as stored; reading it to EOF fails
	// unless it matches d's size and digest.
	blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
	// local is the file and offset holding blob d, for stores on local disk.
	local(d v1.Descriptor) (file string, off int64, ok bool)
	// fetched counts the bytes read from the source so far.
	fetched() int64
	// String is the location, for messages.
	String() string
}

// toOCI converts a go-containerregistry descriptor to an image-spec one.
func toOCI(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
}

// checkDesc rejects descriptors that are not sha256 with a sane size.
func checkDesc(d v1.Descriptor) error {
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 || digest.Digest(d.Digest.String()).Validate() != nil {
		return fmt.Errorf("bad digest %q", d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("bad size %d for %s", d.Size, d.Digest)
	}
	return nil
}

// readVerified reads a whole small blob, bounded by limit, and verifies it.
func readVerified(rc io.ReadCloser, d v1.Descriptor, limit int64) ([]byte, error) {
	defer rc.Close()
	if d.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes is too large (limit %d)", d.Digest, d.Size, limit)
	}
	return io.ReadAll(rehydrate.VerifyReader(rc, toOCI(d)))
}

// verifyBytes checks b against d.
func verifyBytes(b []byte, d v1.Descriptor) error {
	_, err := io.Copy(io.Discard, rehydrate.VerifyReader(io.NopCloser(bytes.NewReader(b)), toOCI(d)))
	return err
}

// fileSet finds named files of a local store: the files of a directory, or
// the members of a tar archive.
type fileSet interface {
	// find returns the file holding name, the offset and the size of its bytes.
	find(name string) (file string, off, size int64, err error)
}

// dirFiles are the files under a directory.
type dirFiles string

func (d dirFiles) find(name string) (string, int64, int64, error) {
	p := filepath.Join(string(d), filepath.FromSlash(name))
	fi, err := os.Stat(p)
	if err != nil {
		return "", 0, 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, 0, fmt.Errorf("%s is not a regular file", p)
	}
	return p, 0, fi.Size(), nil
}

// tarFiles are the regular members of a tar archive, found by one pass
// over its headers.
type tarFiles struct {
	file    string
	members map[string][2]int64 // cleaned name -> offset, size
}

// maxArchiveMembers bounds the members indexed in an archive.
const maxArchiveMembers = 1 << 20

func indexTar(file string) (*tarFiles, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	t := &tarFiles{file: file, members: map[string][2]int64{}}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a readable tar archive: %w", err)
		}
		if len(t.members) >= maxArchiveMembers {
			return nil, fmt.Errorf("more than %d members", maxArchiveMembers)
		}
		if hdr.Typeflag == tar.TypeReg {
			t.members[cleanName(hdr.Name)] = [2]int64{cr.n, hdr.Size}
		}
	}
	if len(t.members) == 0 {
		return nil, fmt.Errorf("not a tar archive, or an empty one")
	}
	return t, nil
}

func (t *tarFiles) find(name string) (string, int64, int64, error) {
	m, ok := t.members[name]
	if !ok {
		return "", 0, 0, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return t.file, m[0], m[1], nil
}

// cleanName normalises a tar member name: no leading "./" or "/".
func cleanName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// blobName is where an OCI layout keeps blob h.
func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// localStore is an image on local disk: an OCI layout directory, an
// oci-archive, or a docker-archive (with a manifest made up from it).
type localStore struct {
	loc      string
	files    fileSet
	names    map[v1.Hash]string // docker-archive: member holding a blob
	mem      map[v1.Hash][]byte // docker-archive: the made-up manifest
	rootDesc v1.Descriptor
	rootRaw  []byte
	n        atomic.Int64
}

func (s *localStore) String() string { return s.loc }
func (s *localStore) fetched() int64 { return s.n.Load() }

func (s *localStore) root(context.Context) (v1.Descriptor, []byte, error) {
	return s.rootDesc, s.rootRaw, nil
}

func (s *localStore) find(h v1.Hash) (string, int64, int64, error) {
	n, ok := s.names[h]
	if !ok {
		n = blobName(h)
	}
	return s.files.find(n)
}

func (s *localStore) local(d v1.Descriptor) (string, int64, bool) {
	if _, ok := s.mem[d.Digest]; ok {
		return "", 0, false
	}
	f, off, _, err := s.find(d.Digest)
	return f, off, err == nil
}

// open streams blob d, unverified, counting the bytes read.
func (s *localStore) open(d v1.Descriptor) (io.ReadCloser, error) {
	if err := checkDesc(d); err != nil {
		return nil, err
	}
	if b, ok := s.mem[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	file, off, size, err := s.find(d.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	// Read one byte past d.Size when there is one, so a size mismatch shows.
	r := io.NewSectionReader(f, off, min(size, d.Size+1))
	return &countingReadCloser{rc: readCloser{r, f}, n: &s.n}, nil
}

func (s *localStore) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	what := "manifest " + d.Digest.String()
	rc, err := s.open(d)
	if err != nil {
		return nil, classify(s.loc, what, err)
	}
	b, err := readVerified(rc, d, maxManifestSize)
	return b, classify(s.loc, what, err)
}

// blobWhat names a blob in messages.
func blobWhat(d v1.Descriptor) string {
	switch {
	case d.MediaType.IsLayer():
		return "layer " + d.Digest.String()
	case d.MediaType.IsConfig():
		return "config " + d.Digest.String()
	}
	return "blob " + d.Digest.String()
}

func (s *localStore) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	what := blobWhat(d)
	rc, err := s.open(d)
	if err != nil {
		return nil, classify(s.loc, what, err)
	}
	return &errReadCloser{rc: rehydrate.VerifyReader(rc, toOCI(d)), wrap: func(err error) error { return classify(s.loc, what, err) }}, nil
}

// openLayout opens an OCI layout (a directory or an oci-archive) and
// resolves tag through its index.json.
func openLayout(loc string, files fileSet, tag string) (*localStore, error) {
	s := &localStore{loc: loc, files: files}
	ix, err := readIndexJSON(files)
	if err != nil {
		return nil, classify(loc, "index.json", err)
	}
	var match []v1.Descriptor
	var tags []string
	for _, d := range ix.Manifests {
		ref := d.Annotations[ocispec.AnnotationRefName]
		if ref != "" {
			tags = append(tags, ref)
		}
		if tag == "" || ref == tag {
			match = append(match, d)
		}
	}
	switch {
	case len(match) == 0 && tag != "":
		return nil, &locError{loc: loc, kind: ErrNotFound, msg: fmt.Sprintf("tag %q not found (the layout has %s)", tag, listOrNone(tags))}
	case len(match) == 0:
		return nil, &locError{loc: loc, kind: ErrNotFound, msg: "the layout lists no image"}
	case len(match) > 1:
		return nil, &locError{loc: loc, msg: fmt.Sprintf("the layout lists %d images: name one with :TAG (tags: %s)", len(match), listOrNone(tags))}
	}
	s.rootDesc = match[0]
	if s.rootRaw, err = s.manifest(context.Background(), s.rootDesc); err != nil {
		return nil, err
	}
	return s, nil
}

func listOrNone(tags []string) string {
	if len(tags) == 0 {
		return "no tags"
	}
	sort.Strings(tags)
	return strings.Join(tags, ", ")
}

// readIndexJSON reads an OCI layout's index.json.
func readIndexJSON(files fileSet) (*v1.IndexManifest, error) {
	b, err := readMember(files, "index.json", maxManifestSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("not an OCI layout: %w", err)
		}
		return nil, err
	}
	var ix v1.IndexManifest
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("not an OCI image index: %w", err)
	}
	return &ix, nil
}

// readMember reads a whole file of a fileSet, bounded by limit.
func readMember(files fileSet, name string, limit int64) ([]byte, error) {
	file, off, size, err := files.find(name)
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("%s: %d bytes is too large (limit %d)", name, size, limit)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// openDockerArchive opens docker save / podman save output and makes up an
// OCI manifest for the image ref names (or its only image): the config and
// layers as stored, uncompressed layers named by their diff IDs, annotated
// like Write's by scanning the first tar header of each.
func openDockerArchive(loc, file, ref string) (*localStore, error) {
	files, err := indexTar(file)
	if err != nil {
		return nil, classify(loc, "archive", err)
	}
	b, err := readMember(files, "manifest.json", maxManifestSize)
	if err != nil {
		return nil, classify(loc, "manifest.json", err)
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, &locError{loc: loc, msg: "manifest.json: " + err.Error(), err: err}
	}
	var all []string
	pick := -1
	for i, e := range entries {
		all = append(all, e.RepoTags...)
		if ref == "" || sameRef(ref, e.RepoTags) {
			if pick >= 0 {
				return nil, &locError{loc: loc, msg: fmt.Sprintf("the archive holds several images: name one with :REF (%s)", listOrNone(all))}
			}
			pick = i
		}
	}
	if pick < 0 {
		if ref != "" {
			return nil, &locError{loc: loc, kind: ErrNotFound, msg: fmt.Sprintf("image %q not found (the archive has %s)", ref, listOrNone(all))}
		}
		return nil, &locError{loc: loc, kind: ErrNotFound, msg: "the archive holds no image"}
	}
	e := entries[pick]
	s := &localStore{loc: loc, files: files, names: map[v1.Hash]string{}, mem: map[v1.Hash][]byte{}}
	cfgRaw, err := readMember(files, cleanName(e.Config), maxManifestSize)
	if err != nil {
		return nil, classify(loc, "config", err)
	}
	cfgDigest, cfgSize, _ := v1.SHA256(bytes.NewReader(cfgRaw))
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, &locError{loc: loc, msg: "config: " + err.Error(), err: err}
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return nil, &locError{loc: loc, msg: fmt.Sprintf("config lists %d layers, manifest.json %d", len(cfg.RootFS.DiffIDs), len(e.Layers))}
	}
	s.names[cfgDigest] = cleanName(e.Config)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
	}
	for i, lp := range e.Layers {
		d, err := archiveLayer(files, cleanName(lp), cfg.RootFS.DiffIDs[i])
		if err != nil {
			return nil, classify(loc, "layer "+lp, err)
		}
		s.names[d.Digest] = cleanName(lp)
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h, size, _ := v1.SHA256(bytes.NewReader(raw))
	s.mem[h] = raw
	s.rootDesc = v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: size, Digest: h}
	s.rootRaw = raw
	return s, nil
}

// sameRef reports whether ref names one of tags, allowing for the
// registry and library defaults docker and podman add.
func sameRef(ref string, tags []string) bool {
	want, err := name.ParseReference(ref)
	for _, t := range tags {
		if t == ref {
			return true
		}
		if got, gerr := name.ParseReference(t); err == nil && gerr == nil && got.Name() == want.Name() {
			return true
		}
	}
	return false
}

// archiveLayer describes a docker-archive layer: compressed ones by their
// own digest, uncompressed ones by their diff ID, annotated from their
// first member.
func archiveLayer(files *tarFiles, member string, diffID v1.Hash) (v1.Descriptor, error) {
	file, off, size, err := files.find(member)
	if err != nil {
		return v1.Descriptor{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer f.Close()
	sr := io.NewSectionReader(f, off, size)
	var magic [4]byte
	n, _ := sr.ReadAt(magic[:], 0)
	mt := types.OCIUncompressedLayer
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		mt = types.OCILayer
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = types.OCILayerZStd
	}
	if mt != types.OCIUncompressedLayer {
		h, _, err := v1.SHA256(sr)
		return v1.Descriptor{MediaType: mt, Size: size, Digest: h}, err
	}
	d := v1.Descriptor{MediaType: mt, Size: size, Digest: diffID}
	kind, blob, blobSize := scanHead(io.NewSectionReader(f, off, size))
	switch kind {
	case layerMetadata:
		d.Annotations = map[string]string{AnnotationLayer: layerMetadata}
	case "blob":
		d.Annotations = blobAnnotations(blob, blobSize)
	}
	return d, nil
}

// scanHead classifies a layer by its first regular member: the bundle's
// oci-layout or index.json (layer 1, "metadata"), or one bundle blob
// ("blob", with its digest and size).
func scanHead(r io.Reader) (kind string, blob digest.Digest, size int64) {
	tr := tar.NewReader(r)
	for i := 0; i < 64; i++ {
		hdr, err := tr.Next()
		if err != nil {
			return "", "", 0
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		n := cleanName(hdr.Name)
		if n == bundlePrefix+"oci-layout" || n == bundlePrefix+"index.json" {
			return layerMetadata, "", 0
		}
		if d, ok := blobMember(n); ok {
			return "blob", d, hdr.Size
		}
		return "", "", 0
	}
	return "", "", 0
}

// blobMember returns the digest a bundle blob member name stands for.
func blobMember(n string) (digest.Digest, bool) {
	hex, ok := strings.CutPrefix(n, bundlePrefix+"blobs/sha256/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex)
	return d, d.Validate() == nil
}

// remoteStore is an image in a registry.
type remoteStore struct {
	loc    string
	ref    name.Reference
	opts   []remote.Option
	puller *remote.Puller
	n      *atomic.Int64

	rootDesc v1.Descriptor
	rootRaw  []byte
}

func newRemoteStore(ctx context.Context, loc location, opt Options) (*remoteStore, error) {
	s := &remoteStore{loc: loc.raw, ref: loc.ref, n: &atomic.Int64{}}
	s.opts = opt.remoteOptions(ctx, s.n)
	p, err := remote.NewPuller(s.opts...)
	if err != nil {
		return nil, err
	}
	s.puller = p
	return s, nil
}

func (s *remoteStore) String() string                            { return s.loc }
func (s *remoteStore) fetched() int64                            { return s.n.Load() }
func (s *remoteStore) local(v1.Descriptor) (string, int64, bool) { return "", 0, false }

// what names the reference in messages.
func (s *remoteStore) what() string {
	if t, ok := s.ref.(name.Tag); ok {
		return fmt.Sprintf("tag %q", t.TagStr())
	}
	return "manifest " + s.ref.Identifier()
}

func (s *remoteStore) root(ctx context.Context) (v1.Descriptor, []byte, error) {
	if s.rootRaw != nil {
		return s.rootDesc, s.rootRaw, nil
	}
	d, err := s.puller.Get(ctx, s.ref)
	if err != nil {
		return v1.Descriptor{}, nil, classify(s.loc, s.what(), err)
	}
	if len(d.Manifest) > maxManifestSize {
		return v1.Descriptor{}, nil, &locError{loc: s.loc, msg: s.what() + ": manifest too large"}
	}
	s.rootDesc, s.rootRaw = d.Descriptor, d.Manifest
	s.rootDesc.Platform, s.rootDesc.Annotations = nil, nil
	return s.rootDesc, s.rootRaw, nil
}

func (s *remoteStore) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	what := "manifest " + d.Digest.String()
	if err := checkDesc(d); err != nil {
		return nil, classify(s.loc, what, err)
	}
	if d.Size > maxManifestSize {
		return nil, &locError{loc: s.loc, msg: what + ": manifest too large"}
	}
	got, err := s.puller.Get(ctx, s.ref.Context().Digest(d.Digest.String()))
	if err != nil {
		return nil, classify(s.loc, what, err)
	}
	if err := verifyBytes(got.Manifest, d); err != nil {
		return nil, classify(s.loc, what, err)
	}
	return got.Manifest, nil
}

func (s *remoteStore) blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	what := blobWhat(d)
	if err := checkDesc(d); err != nil {
		return nil, classify(s.loc, what, err)
	}
	l, err := s.puller.Layer(ctx, s.ref.Context().Digest(d.Digest.String()))
	if err != nil {
		return nil, classify(s.loc, what, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, classify(s.loc, what, err)
	}
	// go-containerregistry checks the digest; the size is checked here,
	// also bounding what a misbehaving registry can send.
	return &errReadCloser{rc: &sizeReader{rc: rc, want: toOCI(d)}, wrap: func(err error) error { return classify(s.loc, what, err) }}, nil
}

// sizeReader fails unless its reader ends at exactly want.Size bytes.
type sizeReader struct {
	rc   io.ReadCloser
	want ocispec.Descriptor
	n    int64
}

func (s *sizeReader) Read(p []byte) (int, error) {
	if rem := s.want.Size + 1 - s.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.rc.Read(p)
	s.n += int64(n)
	if s.n > s.want.Size || (err == io.EOF && s.n != s.want.Size) {
		return n, &rehydrate.DigestError{Want: s.want.Digest, Size: s.n}
	}
	return n, err
}

func (s *sizeReader) Close() error { return s.rc.Close() }

// readCloser joins a reader and a closer.
type readCloser struct {
	io.Reader
	io.Closer
}

// countingReader counts bytes read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errReadCloser passes errors other than io.EOF through wrap.
type errReadCloser struct {
	rc   io.ReadCloser
	wrap func(error) error
}

func (e *errReadCloser) Read(p []byte) (int, error) {
	n, err := e.rc.Read(p)
	if err != nil && err != io.EOF {
		err = e.wrap(err)
	}
	return n, err
}

func (e *errReadCloser) Close() error { return e.rc.Close() }
