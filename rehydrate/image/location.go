package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// kind is a location's transport.
type kind int

const (
	kindDir           kind = iota // a plain bundle directory
	kindOCI                       // oci:DIR[:TAG]
	kindOCIArchive                // oci-archive:FILE[:TAG]
	kindDockerArchive             // docker-archive:FILE[:REF]
	kindDocker                    // docker://REF
)

// location is a parsed source or destination.
type location struct {
	raw  string
	kind kind
	path string         // directory or file
	tag  string         // oci, oci-archive: ref name; docker-archive: repo tag
	ref  name.Reference // docker
}

func (l location) String() string { return l.raw }

// parseLocation parses the location forms of the package doc. Like
// containers tools, FILE and DIR end at the first colon after the prefix.
func parseLocation(s string, opt Options) (location, error) {
	loc := location{raw: s}
	for _, p := range []struct {
		prefix string
		kind   kind
	}{{"oci:", kindOCI}, {"oci-archive:", kindOCIArchive}, {"docker-archive:", kindDockerArchive}} {
		if rest, ok := strings.CutPrefix(s, p.prefix); ok {
			loc.kind = p.kind
			loc.path, loc.tag, _ = strings.Cut(rest, ":")
			if loc.path == "" {
				return loc, fmt.Errorf("%s: no path after %q", s, p.prefix)
			}
			return loc, nil
		}
	}
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		var nopts []name.Option
		if opt.Insecure {
			nopts = append(nopts, name.Insecure)
		}
		ref, err := name.ParseReference(rest, nopts...)
		if err != nil {
			return loc, fmt.Errorf("%s: bad image reference: %w", s, err)
		}
		loc.kind, loc.ref = kindDocker, ref
		return loc, nil
	}
	if before, _, ok := strings.Cut(s, ":"); ok && !strings.ContainsAny(before, "/.") && before != "" {
		return loc, fmt.Errorf("%s: unknown transport %q (want oci:, oci-archive:, docker-archive:, docker:// or a directory)", s, before+":")
	}
	if s == "" {
		return loc, fmt.Errorf("empty location")
	}
	loc.kind, loc.path = kindDir, s
	return loc, nil
}
