package rehydrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the blobs a bundle holds.
const (
	// MediaTypeBundleConfig is the config blob of a bundle manifest.
	MediaTypeBundleConfig = "application/vnd.rehydrator.bundle.config.v1+json"
	// MediaTypeIndex is the bundle index: what each artifact is and how to rebuild it.
	MediaTypeIndex = "application/vnd.rehydrator.index.v1+json"
	// MediaTypeStream is the release's original stream metadata, byte for byte.
	MediaTypeStream = "application/vnd.coreos.stream.v1+json"
	// MediaTypeWhole is an artifact stored whole as seekable zstd (the base images).
	MediaTypeWhole = "application/vnd.rehydrator.whole.v1+zstd"
	// MediaTypeDelta is an artifact stored as a delta against other artifacts.
	MediaTypeDelta = "application/vnd.rehydrator.delta.v1"
	// MediaTypeLayout is a container format's recipe (package formats).
	MediaTypeLayout = "application/vnd.rehydrator.layout.v1"
)

// Recipe kinds.
const (
	// KindWhole: the blob is the artifact, compressed as seekable zstd.
	KindWhole = "whole"
	// KindDelta: the blob is a delta over the artifacts named in Sources, in order.
	KindDelta = "delta"
	// KindFormat: a container file (Format) split by package formats: the
	// blob is a delta of its uncompressed content over Sources, and Layout
	// holds the recipe that re-creates the container around it.
	KindFormat = "format"
)

// IndexVersion is the bundle index schema this package writes and reads.
const IndexVersion = 2

// maxArtifactSize bounds sizes read from an index (16 TiB): larger is hostile.
const maxArtifactSize = 16 << 40

// Index is the bundle index: the list of artifacts a bundle can regenerate.
type Index struct {
	SchemaVersion int                `json:"schemaVersion"`
	Stream        ocispec.Descriptor `json:"stream"`
	Artifacts     []Artifact         `json:"artifacts"`
}

// Artifact is one regenerable file of the release.
type Artifact struct {
	Arch     string `json:"arch"`
	Platform string `json:"platform"`
	Format   string `json:"format"`
	Role     string `json:"role"`
	Release  string `json:"release,omitempty"`
	// Selector is the user-facing name: the platform, or metal4k, iso, pxe.
	Selector string `json:"selector"`
	// File is the output file name (the download's basename minus .xz/.gz/.zip).
	File string `json:"file"`
	// Size and SHA256 describe the uncompressed artifact.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Recipe Recipe `json:"recipe"`
}

// Recipe says how to rebuild an artifact.
type Recipe struct {
	Kind string             `json:"kind"`
	Blob ocispec.Descriptor `json:"blob"`
	// Sources are what a delta copies from, in order: artifacts earlier
	// in the index, or views of them.
	Sources []Source `json:"sources,omitempty"`
	// Format and Layout describe a KindFormat container; Pieces counts its
	// compressed pieces: re-created on rehydration, or kept verbatim.
	Format string              `json:"format,omitempty"`
	Layout *ocispec.Descriptor `json:"layout,omitempty"`
	Pieces *Pieces             `json:"pieces,omitempty"`
}

// Source names a delta source: an earlier artifact's bytes, or a view of
// them.
type Source struct {
	// Artifact is the source artifact's ID.
	Artifact string `json:"artifact"`
	// View, if set, is a decoded view of the artifact (ViewSquashfs).
	View string `json:"view,omitempty"`
}

// ViewSquashfs is the view of an artifact holding a squashfs image
// (directly, or as the squashfs member of a newc cpio, like a PXE rootfs):
// the image's regular files, decompressed and concatenated in inode order.
// A metal image carries the same files uncompressed.
const ViewSquashfs = "squashfs"

// ViewContent is the uncompressed content of a split container
// (KindFormat): what its blob is a delta of. The live ISO holds the PXE
// initramfs, a gzip stream split the same way inside the ISO: the two
// content streams match where the compressed bytes would not.
const ViewContent = "content"

// String is the artifact's ID, followed by "#VIEW" for a view.
func (s Source) String() string {
	if s.View != "" {
		return s.Artifact + "#" + s.View
	}
	return s.Artifact
}

// Pieces counts a container's compressed pieces.
type Pieces struct {
	Recreated int `json:"recreated"`
	Kept      int `json:"kept"`
}

// ID is the artifact's stable identifier, ARCH/PLATFORM/FORMAT/ROLE.
func (a *Artifact) ID() string {
	return a.Arch + "/" + a.Platform + "/" + a.Format + "/" + a.Role
}

// Stored is the number of bundle bytes spent on this artifact alone.
func (a *Artifact) Stored() int64 {
	n := a.Recipe.Blob.Size
	if a.Recipe.Layout != nil {
		n += a.Recipe.Layout.Size
	}
	return n
}

var (
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idPart    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// SafeFileName reports whether name can be used as a file name in a
// destination directory: one path element, no traversal, no control bytes.
func SafeFileName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.HasPrefix(name, ".") {
		return false
	}
	if path.Base(name) != name || strings.ContainsAny(name, "/\\") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ParseIndex decodes and validates a bundle index.
func ParseIndex(data []byte) (*Index, error) {
	var ix Index
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("bundle index: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("bundle index: trailing data")
	}
	if err := ix.Validate(); err != nil {
		return nil, err
	}
	return &ix, nil
}

// Validate checks the index for consistency: known schema, well-formed
// digests and names, unique artifacts and file names per architecture,
// sources that refer to earlier artifacts only (so there are no cycles).
func (ix *Index) Validate() error {
	if ix.SchemaVersion != IndexVersion {
		return fmt.Errorf("bundle index: unsupported schema version %d (want %d)", ix.SchemaVersion, IndexVersion)
	}
	if err := checkDescriptor(ix.Stream, MediaTypeStream); err != nil {
		return fmt.Errorf("bundle index: stream: %w", err)
	}
	seen := make(map[string]bool, len(ix.Artifacts))
	files := make(map[string]bool, len(ix.Artifacts))
	for i := range ix.Artifacts {
		a := &ix.Artifacts[i]
		for _, p := range []string{a.Arch, a.Platform, a.Format, a.Role, a.Selector} {
			if !idPart.MatchString(p) || len(p) > 128 {
				return fmt.Errorf("bundle index: artifact %d: bad name part %q", i, p)
			}
		}
		id := a.ID()
		if seen[id] {
			return fmt.Errorf("bundle index: artifact %s listed twice", id)
		}
		if !SafeFileName(a.File) {
			return fmt.Errorf("bundle index: artifact %s: unsafe file name %q", id, a.File)
		}
		if files[a.Arch+"/"+a.File] {
			return fmt.Errorf("bundle index: artifact %s: file name %q used twice", id, a.File)
		}
		files[a.Arch+"/"+a.File] = true
		if a.Size < 0 || a.Size > maxArtifactSize {
			return fmt.Errorf("bundle index: artifact %s: bad size %d", id, a.Size)
		}
		if !hexSHA256.MatchString(a.SHA256) {
			return fmt.Errorf("bundle index: artifact %s: bad sha256 %q", id, a.SHA256)
		}
		r := a.Recipe
		switch r.Kind {
		case KindWhole:
			if len(r.Sources) != 0 {
				return fmt.Errorf("bundle index: artifact %s: whole recipe with sources", id)
			}
			if err := checkDescriptor(r.Blob, MediaTypeWhole); err != nil {
				return fmt.Errorf("bundle index: artifact %s: %w", id, err)
			}
		case KindDelta, KindFormat:
			if r.Kind == KindFormat {
				if !knownFormat(r.Format) || r.Layout == nil {
					return fmt.Errorf("bundle index: artifact %s: unknown container format %q", id, r.Format)
				}
				if err := checkDescriptor(*r.Layout, MediaTypeLayout); err != nil {
					return fmt.Errorf("bundle index: artifact %s: %w", id, err)
				}
			} else if r.Format != "" || r.Layout != nil {
				return fmt.Errorf("bundle index: artifact %s: format fields in a delta recipe", id)
			}
			if err := checkDescriptor(r.Blob, MediaTypeDelta); err != nil {
				return fmt.Errorf("bundle index: artifact %s: %w", id, err)
			}
			if len(r.Sources) > 16 {
				return fmt.Errorf("bundle index: artifact %s: %d sources (max 16)", id, len(r.Sources))
			}
			for _, s := range r.Sources {
				if !seen[s.Artifact] {
					return fmt.Errorf("bundle index: artifact %s: source %q is not an earlier artifact", id, s.Artifact)
				}
				switch s.View {
				case "", ViewSquashfs:
				case ViewContent:
					if ix.Lookup(s.Artifact).Recipe.Kind != KindFormat {
						return fmt.Errorf("bundle index: artifact %s: source %s: content view of an artifact that is not split", id, s)
					}
				default:
					return fmt.Errorf("bundle index: artifact %s: source %s: unknown view %q", id, s.Artifact, s.View)
				}
			}
		default:
			return fmt.Errorf("bundle index: artifact %s: unknown recipe kind %q", id, r.Kind)
		}
		seen[id] = true
	}
	return nil
}

func checkDescriptor(d ocispec.Descriptor, mediaType string) error {
	if d.MediaType != mediaType {
		return fmt.Errorf("blob media type %q, want %q", d.MediaType, mediaType)
	}
	if d.Digest.Algorithm() != digest.SHA256 || d.Digest.Validate() != nil {
		return fmt.Errorf("bad blob digest %q", d.Digest)
	}
	if d.Size < 0 || d.Size > maxArtifactSize {
		return fmt.Errorf("bad blob size %d", d.Size)
	}
	return nil
}

// Lookup returns the artifact with the given ID, or nil.
func (ix *Index) Lookup(id string) *Artifact {
	for i := range ix.Artifacts {
		if ix.Artifacts[i].ID() == id {
			return &ix.Artifacts[i]
		}
	}
	return nil
}
