// Package image ships a rehydrator bundle as a runnable container image and
// reads it back from any registry, OCI layout or archive, without podman.
//
// # Image shape
//
// [Write] turns a bundle directory (an OCI layout written by
// rehydrate.Dehydrate) and one static rehydrator binary per platform into an
// OCI image. Per platform, the image manifest lists:
//
//   - layer 0: the binary as /rehydrator (mode 0755), a gzip-compressed tar
//     (application/vnd.oci.image.layer.v1.tar+gzip), annotated
//     io.rehydrator.layer=binary;
//   - layer 1: the bundle's small files, an uncompressed tar annotated
//     io.rehydrator.layer=metadata: the directories /tmp (1777) and
//     /usr/share/rehydrator/bundle/, the bundle's oci-layout and index.json,
//     and blobs/sha256/<hex> for the bundle manifest, its config, the bundle
//     index and the stream metadata;
//   - one layer per remaining bundle blob (the whole, delta and layout blobs,
//     in the bundle manifest's order): an uncompressed tar
//     (application/vnd.oci.image.layer.v1.tar) holding the one file
//     usr/share/rehydrator/bundle/blobs/sha256/<hex>, annotated with
//     io.rehydrator.blob.digest (sha256:<hex>) and io.rehydrator.blob.size,
//     so a reader maps bundle blobs to layers from the manifest alone.
//
// The config (application/vnd.oci.image.config.v1+json) has the entrypoint
// ["/rehydrator"] (the container's arguments are rehydrator's), the
// environment REHYDRATOR_BUNDLE=/usr/share/rehydrator/bundle and TMPDIR=/tmp,
// the working directory /tmp, the platform's os/architecture/variant, and
// the labels io.rehydrator.stream, io.rehydrator.releases and
// io.rehydrator.architectures (comma-separated) from the bundle config.
// Several platforms make an OCI image index with one manifest per platform;
// they differ only in layer 0 and the config, and share every data layer.
//
// Everything is deterministic: tar headers have mtime 0, uid/gid 0, no user
// names, modes 0644/0755; the config's created time is the Unix epoch; JSON is
// encoded in a fixed field order. Identical bundle blobs therefore give
// identical layer digests in every build, and registries store them once.
// Data layers are stored uncompressed: their content already is compressed,
// and a reader can stream the one file out of the tar while checking both the
// layer digest and the bundle blob digest.
//
// # Locations
//
// Destinations ([Write], [Mirror]) are oci:DIR[:TAG] (an OCI image layout
// directory, created if needed, blobs added by digest and index.json
// replaced atomically), oci-archive:FILE[:TAG] (a tar of such a layout,
// written to a temporary file and renamed into place when complete) and
// docker://REGISTRY/REPO[:TAG] (pushed with go-containerregistry). Sources
// ([Open], [Mirror]) are those, plus docker-archive:FILE[:REF] (docker save
// or podman save output) and, for [Open], a plain bundle directory.
// A TAG in oci: and oci-archive: locations is the layout's
// org.opencontainers.image.ref.name; without one, a layout must list
// exactly one image.
//
// # Reading
//
// [Open] fetches the image manifest (through the index, picking
// [Options.Platform]) and nothing else; [Source.Bundle] then fetches layer 1
// and, as artifacts are rehydrated, only the layers of the bundle blobs they
// read, each verified against its layer digest and its bundle blob digest.
// Random access to a blob (the seekable-zstd base) reads a local layer in
// place after verifying it once, or spools a verified copy of a remote one
// to an unlinked temporary file. A docker-archive carries no annotations:
// the first tar header of each of its layers stands in for them. Other
// images without them (built with the Containerfile, or converted by other
// tools) are read by extracting the bundle from all their layers into a
// temporary directory. A location whose manifest is the
// bundle manifest itself (a bundle pushed as an OCI artifact, or an OCI
// layout that is a bundle) is read blob by blob.
package image

// Paths inside the image.
const (
	// BinaryPath is where the rehydrator binary lives in the image.
	BinaryPath = "/rehydrator"
	// BundlePath is where the bundle lives in the image.
	BundlePath = "/usr/share/rehydrator/bundle"
)

// Annotations on image manifest layer descriptors.
const (
	// AnnotationLayer marks layer 0 ("binary") and layer 1 ("metadata").
	AnnotationLayer = "io.rehydrator.layer"
	// AnnotationBlobDigest is the digest of the bundle blob a data layer holds.
	AnnotationBlobDigest = "io.rehydrator.blob.digest"
	// AnnotationBlobSize is the size in bytes of the bundle blob a data layer holds.
	AnnotationBlobSize = "io.rehydrator.blob.size"
)

// Labels in the image config, from the bundle config.
const (
	// LabelStream is the stream name, such as "stable".
	LabelStream = "io.rehydrator.stream"
	// LabelReleases lists the releases in the bundle, comma-separated.
	LabelReleases = "io.rehydrator.releases"
	// LabelArchitectures lists the bundle's architectures, comma-separated.
	LabelArchitectures = "io.rehydrator.architectures"
)

// Values of AnnotationLayer.
const (
	layerBinary   = "binary"
	layerMetadata = "metadata"
)

// bundlePrefix is BundlePath as a tar member prefix.
const bundlePrefix = "usr/share/rehydrator/bundle/"

// Size bounds for what is read into memory.
const (
	// maxManifestSize bounds manifests, indexes and configs.
	maxManifestSize = 8 << 20
	// maxMetadataLayer bounds layer 1 (index, stream metadata, manifest, config).
	maxMetadataLayer = 256 << 20
	// maxMetadataFile bounds one file of layer 1 (rehydrate's metadata limit).
	maxMetadataFile = 64 << 20
	// maxTreeDepth bounds nested indexes.
	maxTreeDepth = 4
)
