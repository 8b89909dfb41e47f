package rehydrate

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArtifactType marks a manifest as a rehydrator bundle.
const ArtifactType = "application/vnd.rehydrator.bundle.v1"

// maxMetadataSize bounds JSON blobs (index.json, manifests, bundle index) read into memory.
const maxMetadataSize = 64 << 20

// Layout is an OCI image layout directory (oci-layout, index.json, blobs/sha256/...).
type Layout struct {
	Dir string
	// SkipVerify skips hashing a whole blob before random access to it.
	// Streamed blobs are still checked at EOF, outputs still by their SHA-256.
	SkipVerify bool

	mu       sync.Mutex
	verified map[digest.Digest]bool
}

// NewLayout returns the layout rooted at dir.
func NewLayout(dir string) *Layout { return &Layout{Dir: dir, verified: map[digest.Digest]bool{}} }

// BlobPath is where the blob with digest d lives.
func (l *Layout) BlobPath(d digest.Digest) string {
	return filepath.Join(l.Dir, "blobs", string(d.Algorithm()), d.Encoded())
}

// Init creates the layout's skeleton: oci-layout and the blobs directory.
func (l *Layout) Init() error {
	if err := os.MkdirAll(filepath.Join(l.Dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return writeFileAtomic(filepath.Join(l.Dir, ocispec.ImageLayoutFile), b)
}

// BlobWriter writes one blob: it hashes as bytes arrive and moves the file
// under its digest only on Commit.
type BlobWriter struct {
	l         *Layout
	f         *os.File
	h         hash.Hash
	n         int64
	mediaType string
	err       error
	done      bool
}

// NewBlob starts writing a blob of the given media type.
func (l *Layout) NewBlob(mediaType string) (*BlobWriter, error) {
	f, err := createTemp(filepath.Join(l.Dir, "blobs", "sha256"), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("new blob: %w", err)
	}
	return &BlobWriter{l: l, f: f, h: sha256.New(), mediaType: mediaType}, nil
}

// Write implements io.Writer. Errors are sticky.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write blob: %w", err)
	}
	return n, w.err
}

// Commit syncs the blob and renames it to its digest.
func (w *BlobWriter) Commit() (ocispec.Descriptor, error) {
	if w.err != nil {
		w.Abort()
		return ocispec.Descriptor{}, w.err
	}
	d := digest.NewDigest(digest.SHA256, w.h)
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return ocispec.Descriptor{}, fmt.Errorf("sync blob: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return ocispec.Descriptor{}, fmt.Errorf("close blob: %w", err)
	}
	if err := os.Rename(w.f.Name(), w.l.BlobPath(d)); err != nil {
		os.Remove(w.f.Name())
		return ocispec.Descriptor{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	w.done = true
	w.l.mu.Lock()
	w.l.verified[d] = true
	w.l.mu.Unlock()
	return ocispec.Descriptor{MediaType: w.mediaType, Digest: d, Size: w.n}, nil
}

// Abort discards the blob; after Commit it does nothing.
func (w *BlobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// PutBlob writes b as a blob.
func (l *Layout) PutBlob(mediaType string, b []byte) (ocispec.Descriptor, error) {
	w, err := l.NewBlob(mediaType)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	w.Write(b)
	return w.Commit()
}

// PutJSON writes v, JSON-encoded, as a blob.
func (l *Layout) PutJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return l.PutBlob(mediaType, append(b, '\n'))
}

// DigestError reports a blob whose content does not match its descriptor.
type DigestError struct {
	Want digest.Digest
	Got  digest.Digest
	Size int64 // bytes read; differs from the descriptor's when truncated
}

func (e *DigestError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("blob %s: size mismatch (read %d bytes)", e.Want, e.Size)
	}
	return fmt.Sprintf("blob %s: content has digest %s (corrupted)", e.Want, e.Got)
}

// verifyReader passes a blob through, failing at EOF unless size and digest match.
type verifyReader struct {
	r    io.Reader
	c    io.Closer
	h    hash.Hash
	want ocispec.Descriptor
	n    int64
	done bool
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.done {
		return 0, io.EOF
	}
	if rem := v.want.Size + 1 - v.n; int64(len(p)) > rem {
		p = p[:rem] // read at most one byte past the declared size
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		return n, &DigestError{Want: v.want.Digest, Size: v.n}
	}
	if err == io.EOF {
		if v.n != v.want.Size {
			return n, &DigestError{Want: v.want.Digest, Size: v.n}
		}
		if got := digest.NewDigest(digest.SHA256, v.h); got != v.want.Digest {
			return n, &DigestError{Want: v.want.Digest, Got: got, Size: v.n}
		}
		v.done = true
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.c.Close() }

// VerifyReader wraps rc so that reading it to EOF fails unless its content
// matches desc's size and digest.
func VerifyReader(rc io.ReadCloser, desc ocispec.Descriptor) io.ReadCloser {
	return &verifyReader{r: rc, c: rc, h: desc.Digest.Algorithm().Hash(), want: desc}
}

// Open returns a reader over the blob that verifies its digest at EOF.
func (l *Layout) Open(desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	f, err := os.Open(l.BlobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return VerifyReader(f, desc), nil
}

// ReaderAtCloser is random access to a blob.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// OpenAt returns random access to the blob after verifying its whole
// content once (per Layout).
func (l *Layout) OpenAt(desc ocispec.Descriptor) (ReaderAtCloser, error) {
	l.mu.Lock()
	ok := l.verified[desc.Digest] || l.SkipVerify
	l.mu.Unlock()
	if !ok {
		rc, err := l.Open(desc)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.verified[desc.Digest] = true
		l.mu.Unlock()
	}
	f, err := os.Open(l.BlobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return f, nil
}

// ReadBlob reads a small (metadata) blob whole and verifies it.
func (l *Layout) ReadBlob(desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxMetadataSize {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for metadata", desc.Digest, desc.Size)
	}
	rc, err := l.Open(desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// WriteIndex writes index.json listing manifest.
func (l *Layout) WriteIndex(manifests ...ocispec.Descriptor) error {
	ix := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(l.Dir, ocispec.ImageIndexFile), append(b, '\n'))
}

// ReadManifest finds the bundle manifest through index.json.
func (l *Layout) ReadManifest() (*ocispec.Manifest, error) {
	b, err := readFileLimited(filepath.Join(l.Dir, ocispec.ImageIndexFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a rehydrator bundle (no index.json)", l.Dir)
		}
		return nil, err
	}
	var ix ocispec.Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	for _, d := range ix.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest {
			continue
		}
		mb, err := l.ReadBlob(d)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		if m.ArtifactType == ArtifactType || m.Config.MediaType == MediaTypeBundleConfig {
			return &m, nil
		}
	}
	return nil, fmt.Errorf("%s: index.json lists no rehydrator bundle manifest", l.Dir)
}

func readFileLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadataSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxMetadataSize)
	}
	return b, nil
}

// writeFileAtomic writes name through a synced temporary file and a rename.
func writeFileAtomic(name string, b []byte) error {
	f, err := createTemp(filepath.Dir(name), ".tmp-")
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
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

// createTemp is os.CreateTemp with the mode of a file the user creates
// (0666 less the umask, as cp or curl would) instead of 0600: blobs and
// outputs are meant to be read by others, e.g. a container's user when a
// bundle directory is copied into an image.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("%s: cannot create a temporary file", dir)
}
