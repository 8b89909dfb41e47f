// Package stream parses and validates Fedora CoreOS stream metadata: the
// JSON document that lists, for one stream (stable, testing, next, ...), every
// downloadable artifact of the current release for each architecture and
// platform, with its location, signature and checksums.
//
// The document has this shape:
//
//	{
//	  "stream": "stable",
//	  "metadata": {"last-modified": "...", "generator": "..."},
//	  "architectures": {
//	    ARCH: {
//	      "artifacts": {
//	        PLATFORM: {
//	          "release": "42.20251012.3.0",
//	          "formats": {
//	            FORMAT: {
//	              ROLE: {"location": URL, "signature": URL, "sha256": HEX, "uncompressed-sha256": HEX}
//	            }
//	          }
//	        }
//	      },
//	      "images": {...}
//	    }
//	  }
//	}
//
// [Parse] keeps the exact bytes it was given (see [Stream.Raw]) so that the
// metadata can be stored and reproduced bit for bit, and rejects documents
// whose artifacts could not be written safely to a local directory: every
// artifact's file name (see [Artifact.Name]) is a plain, non-traversing file
// name, unique within its architecture.
//
// A Stream is not modified by any of its methods and may be used from several
// goroutines at once, as long as no goroutine modifies it.
package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is matched, with [errors.Is], by every error that [Parse] and
// [Stream.Validate] return because the metadata is malformed or unsafe.
var ErrInvalid = errors.New("invalid stream metadata")

// Stream is parsed Fedora CoreOS stream metadata.
//
// A Stream obtained from [Parse] also remembers the exact bytes it was parsed
// from; see [Stream.Raw]. Modifying the exported fields does not change those
// bytes.
type Stream struct {
	// Stream is the stream's name, such as "stable".
	Stream string `json:"stream"`
	// Metadata describes when and by what the document was generated.
	Metadata Metadata `json:"metadata"`
	// Architectures maps an architecture name, such as "x86_64", to its
	// artifacts and images.
	Architectures map[string]Arch `json:"architectures"`

	raw []byte
}

// Metadata is the "metadata" object of a stream document.
type Metadata struct {
	// LastModified is the time the document was generated, as written in it
	// (RFC 3339 in practice; not checked).
	LastModified string `json:"last-modified"`
	// Generator names the program that generated the document.
	Generator string `json:"generator"`
}

// Arch is everything a stream lists for one architecture.
type Arch struct {
	// Artifacts maps a platform name, such as "metal" or "aws", to the files
	// published for it.
	Artifacts map[string]Platform `json:"artifacts"`
	// Images is the architecture's "images" object (cloud image IDs,
	// container references, ...), kept verbatim and not interpreted.
	Images json.RawMessage `json:"images,omitempty"`
}

// Platform is the set of files published for one platform of one
// architecture.
type Platform struct {
	// Release is the Fedora CoreOS release the files belong to, such as
	// "42.20251012.3.0".
	Release string `json:"release"`
	// Formats maps a format key, such as "raw.xz" or "pxe", to the files of
	// that format keyed by role ("disk", "kernel", "initramfs", "rootfs", or
	// any other role a future stream may add).
	Formats map[string]map[string]File `json:"formats"`
}

// File is one downloadable file as the stream describes it.
type File struct {
	// Location is the URL the file is downloaded from.
	Location string `json:"location"`
	// Signature is the URL of the file's detached signature. It is not
	// required.
	Signature string `json:"signature"`
	// SHA256 is the SHA-256 of the file as downloaded, as 64 lowercase hex
	// digits.
	SHA256 string `json:"sha256"`
	// UncompressedSHA256 is, for a compressed file, the SHA-256 of its
	// decompressed contents, as 64 lowercase hex digits. It is empty when the
	// stream does not give one.
	UncompressedSHA256 string `json:"uncompressed-sha256,omitempty"`
}

// Parse decodes and validates stream metadata.
//
// Besides the rules of [Stream.Validate], Parse rejects documents that are
// not valid UTF-8, that do not hold exactly one JSON object, or in which an
// object has two keys that are equal or differ only in letter case
// (encoding/json would silently keep only one of them, and other tools might
// keep the other). Unknown keys are ignored.
//
// Parse keeps its own copy of data; see [Stream.Raw]. Every error it returns
// matches [ErrInvalid].
func Parse(data []byte) (*Stream, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("stream: %w: document is not valid UTF-8", ErrInvalid)
	}
	var s Stream
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("stream: %w: decoding JSON: %w", ErrInvalid, err)
	}
	if err := checkKeys(data); err != nil {
		return nil, fmt.Errorf("stream: %w: %w", ErrInvalid, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.raw = slices.Clone(data)
	return &s, nil
}

// Raw returns a copy of the exact bytes given to [Parse], or nil for a Stream
// that was not made by Parse.
func (s *Stream) Raw() []byte {
	return slices.Clone(s.raw)
}

// Validate reports whether s is well-formed and safe to materialize. It
// checks that:
//
//   - the stream name is a safe name (see below);
//   - there is at least one architecture, and each has at least one artifact;
//   - every architecture, platform, format and role key and every release is
//     a safe name;
//   - every file has a location that is a URL reference with a non-empty
//     path, no "." or ".." path segment, and a last path segment that,
//     percent-decoded, is a safe name (this is [Artifact.Name]);
//   - [Artifact.OutputName] is a safe name too (so "...xz" is rejected);
//   - sha256 is 64 lowercase hex digits, and so is uncompressed-sha256 when
//     present;
//   - within one architecture, no two artifacts would write the same file:
//     the names and output names of all its artifacts are pairwise distinct
//     (an artifact's own name may equal its own output name).
//
// A safe name is non-empty, at most 255 bytes, valid UTF-8, not "." or "..",
// and contains no "/", no "\" and no control character (NUL included).
//
// Problems are checked in the order of [Stream.Artifacts] and only the first
// one is reported. The error matches [ErrInvalid].
func (s *Stream) Validate() error {
	if err := checkName(s.Stream); err != nil {
		return invalidf("stream name %q: %v", s.Stream, err)
	}
	if len(s.Architectures) == 0 {
		return invalidf("no architectures")
	}
	for _, arch := range slices.Sorted(maps.Keys(s.Architectures)) {
		if err := s.validateArch(arch); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stream) validateArch(arch string) error {
	if err := checkName(arch); err != nil {
		return invalidf("architecture %q: %v", arch, err)
	}
	a := s.Architectures[arch]
	// written maps every file name an artifact of this architecture may
	// produce to the ID of that artifact.
	written := make(map[string]string)
	n := 0
	for _, platform := range slices.Sorted(maps.Keys(a.Artifacts)) {
		p := a.Artifacts[platform]
		where := arch + "/" + platform
		if err := checkName(platform); err != nil {
			return invalidf("%s: platform %q: %v", arch, platform, err)
		}
		if p.Release == "" {
			return invalidf("%s: no release", where)
		}
		if err := checkName(p.Release); err != nil {
			return invalidf("%s: release %q: %v", where, p.Release, err)
		}
		for _, format := range slices.Sorted(maps.Keys(p.Formats)) {
			if err := checkName(format); err != nil {
				return invalidf("%s: format %q: %v", where, format, err)
			}
			for _, role := range slices.Sorted(maps.Keys(p.Formats[format])) {
				if err := checkName(role); err != nil {
					return invalidf("%s/%s: role %q: %v", where, format, role, err)
				}
				art := Artifact{
					Arch:     arch,
					Platform: platform,
					Release:  p.Release,
					Format:   format,
					Role:     role,
					File:     p.Formats[format][role],
				}
				if err := validateArtifact(art, written); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return invalidf("%s: no artifacts", arch)
	}
	return nil
}

// validateArtifact checks one artifact and records the names it writes in
// written, which maps file names to artifact IDs.
func validateArtifact(a Artifact, written map[string]string) error {
	id := a.ID()
	f := a.File
	if f.Location == "" {
		return invalidf("%s: no location", id)
	}
	name, err := baseName(f.Location)
	if err != nil {
		return invalidf("%s: location %q: %v", id, f.Location, err)
	}
	out := trimCompression(name)
	if err := checkName(out); err != nil {
		return invalidf("%s: location %q: output name %q: %v", id, f.Location, out, err)
	}
	if !isSHA256(f.SHA256) {
		return invalidf("%s: sha256 %q is not 64 lowercase hex digits", id, f.SHA256)
	}
	if f.UncompressedSHA256 != "" && !isSHA256(f.UncompressedSHA256) {
		return invalidf("%s: uncompressed-sha256 %q is not 64 lowercase hex digits", id, f.UncompressedSHA256)
	}
	for _, n := range []string{name, out} {
		if other, ok := written[n]; ok && other != id {
			return invalidf("%s: file name %q is also used by %s", id, n, other)
		}
		written[n] = id
	}
	return nil
}

// invalidf returns an error that matches ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("stream: %w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// isSHA256 reports whether s is 64 lowercase hex digits.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Arches returns the architecture names, sorted.
func (s *Stream) Arches() []string {
	return slices.Sorted(maps.Keys(s.Architectures))
}

// Releases returns the distinct releases of all platforms of the given
// architectures (none: of all architectures), sorted as strings.
func (s *Stream) Releases(arches ...string) []string {
	var rs []string
	for arch, a := range s.Architectures {
		if len(arches) > 0 && !slices.Contains(arches, arch) {
			continue
		}
		for _, p := range a.Artifacts {
			rs = append(rs, p.Release)
		}
	}
	slices.Sort(rs)
	return slices.Compact(rs)
}

// PickArches checks the architectures a user asked for against the
// stream's: it returns them sorted and without duplicates, all of the
// stream's when want is empty, and an error naming the first one the
// stream does not have.
func (s *Stream) PickArches(want []string) ([]string, error) {
	have := s.Arches()
	if len(want) == 0 {
		return have, nil
	}
	for _, a := range want {
		if !slices.Contains(have, a) {
			return nil, fmt.Errorf("architecture %q is not in the stream (it has %s)", a, strings.Join(have, ", "))
		}
	}
	arches := slices.Clone(want)
	slices.Sort(arches)
	return slices.Compact(arches), nil
}

// Artifacts returns every file the stream lists, flattened, sorted by
// architecture, platform, format and role (each compared as a string).
func (s *Stream) Artifacts() []Artifact {
	var out []Artifact
	for _, arch := range slices.Sorted(maps.Keys(s.Architectures)) {
		a := s.Architectures[arch]
		for _, platform := range slices.Sorted(maps.Keys(a.Artifacts)) {
			p := a.Artifacts[platform]
			for _, format := range slices.Sorted(maps.Keys(p.Formats)) {
				roles := p.Formats[format]
				for _, role := range slices.Sorted(maps.Keys(roles)) {
					out = append(out, Artifact{
						Arch:     arch,
						Platform: platform,
						Release:  p.Release,
						Format:   format,
						Role:     role,
						File:     roles[role],
					})
				}
			}
		}
	}
	return out
}
