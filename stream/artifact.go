package stream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen is the longest file name, in bytes, that common file systems
// accept.
const maxNameLen = 255

// Artifact is one downloadable file of the release, flattened out of the
// stream's nested maps.
type Artifact struct {
	// Arch is the architecture, such as "x86_64".
	Arch string
	// Platform is the platform, such as "metal" or "aws".
	Platform string
	// Release is the platform's release, such as "42.20251012.3.0".
	Release string
	// Format is the format key, such as "raw.xz", "4k.raw.xz", "iso" or
	// "pxe".
	Format string
	// Role is the file's role within its format: "disk", "kernel",
	// "initramfs", "rootfs", or another role a stream may add.
	Role string
	// File is the stream's description of the file.
	File File
}

// Name returns the file name of the artifact: the last segment of the path of
// File.Location, with any query and fragment removed, percent-decoded.
//
// Name returns "" when the location is not a URL, has an empty path, has a
// "." or ".." path segment, or when the decoded name is not a safe file name
// (see [Stream.Validate]); it never returns a name that contains a path
// separator or that is "." or "..". For the artifacts of a Stream that passes
// Validate it is never "".
func (a Artifact) Name() string {
	name, err := baseName(a.File.Location)
	if err != nil {
		return ""
	}
	return name
}

// OutputName returns the name of the file the artifact becomes once
// decompressed: [Artifact.Name] without a trailing ".xz", ".gz" or ".zip"
// (only those; "x.tar.gz" gives "x.tar", "x.ova" gives "x.ova").
//
// A name with any other suffix, such as ".zst" or ".bz2", is its own output
// name: a compression rehydrator does not know is not undone, and the file
// is handled as downloaded.
//
// OutputName returns "" when Name does, or when removing the suffix leaves a
// name that is not safe (as for "..xz"). For the artifacts of a Stream that
// passes Validate it is never "".
func (a Artifact) OutputName() string {
	name := a.Name()
	if name == "" {
		return ""
	}
	out := trimCompression(name)
	if checkName(out) != nil {
		return ""
	}
	return out
}

// Compression returns the compression of the file as downloaded, from the
// suffix of [Artifact.Name]: "xz" for ".xz", "gz" for ".gz", "zip" for ".zip",
// and "" for anything else (including when Name is "").
func (a Artifact) Compression() string {
	return compressionOf(a.Name())
}

// ID returns a stable identifier of the artifact within its stream,
// "ARCH/PLATFORM/FORMAT/ROLE", such as "x86_64/metal/pxe/kernel". In a Stream
// that passes Validate none of the parts contains "/", so the ID is
// unambiguous.
func (a Artifact) ID() string {
	return a.Arch + "/" + a.Platform + "/" + a.Format + "/" + a.Role
}

// Selector returns the name a user gives to pick this artifact's disk image
// on the command line. It is the platform name (such as "qemu" or "aws"),
// except for:
//
//   - the "metal" platform's 4K-sector disk, format "4k.raw" or "4k.raw.*"
//     (such as "4k.raw.xz"): "metal4k";
//   - the live ISO, format "iso": "iso";
//   - the PXE files, format "pxe" (every role: kernel, initramfs, rootfs):
//     "pxe".
//
// Several artifacts may share a selector (the PXE files do); a selector names
// a group of files, not necessarily one.
func (a Artifact) Selector() string {
	switch {
	case a.Format == "iso":
		return "iso"
	case a.Format == "pxe":
		return "pxe"
	case a.Platform == "metal" && (a.Format == "4k.raw" || strings.HasPrefix(a.Format, "4k.raw.")):
		return "metal4k"
	default:
		return a.Platform
	}
}

// splitCompression splits name into the name without a trailing ".xz", ".gz"
// or ".zip" and the compression that suffix stands for ("xz", "gz", "zip").
// A name without one of those suffixes is returned whole, with "".
func splitCompression(name string) (base, compression string) {
	for _, c := range []string{"xz", "gz", "zip"} {
		if base, ok := strings.CutSuffix(name, "."+c); ok {
			return base, c
		}
	}
	return name, ""
}

func compressionOf(name string) string {
	_, c := splitCompression(name)
	return c
}

func trimCompression(name string) string {
	base, _ := splitCompression(name)
	return base
}

// baseName returns the percent-decoded last path segment of the URL
// reference loc, or an error saying why it has no safe one.
func baseName(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	if u.Opaque != "" {
		return "", errors.New("URL has no hierarchical path")
	}
	if u.Path == "" {
		return "", errors.New("URL has an empty path")
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("URL path has a %q segment", seg)
		}
	}
	// Take the last segment from the still-encoded text, so that an encoded
	// "/" ("%2F") stays inside the segment and is caught by checkName below.
	// url.Parse has accepted loc, so the text before any '#' and then any
	// '?' ends with the path, and since the path is not empty and not
	// opaque, the last '/' of that text, if any, is in the path.
	raw, _, _ := strings.Cut(loc, "#")
	raw, _, _ = strings.Cut(raw, "?")
	seg := raw[strings.LastIndexByte(raw, '/')+1:]
	name, err := url.PathUnescape(seg)
	if err != nil {
		return "", err
	}
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("file name %q: %w", name, err)
	}
	return name, nil
}

// checkName returns an error if name is not a safe name: non-empty, at most
// maxNameLen bytes, valid UTF-8, not "." or "..", and free of "/", "\" and
// control characters.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case name == "." || name == "..":
		return errors.New("is a relative directory reference")
	case len(name) > maxNameLen:
		return fmt.Errorf("longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case strings.ContainsAny(name, `/\`):
		return errors.New("contains a path separator")
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New("contains a control character")
	}
	return nil
}
