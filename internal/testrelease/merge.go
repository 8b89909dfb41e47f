package testrelease

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/stream"
)

// Merge combines releases (directories as [Dir] and [Mini] return them),
// which must be of distinct architectures and of the same stream, into one
// multi-architecture release. It returns the stream metadata listing every
// architecture of them (stream name and metadata from the first; each
// architecture's object verbatim; indented like the scripts' output), and a
// function that gives an artifact's download path in its own directory, for
// rehydrate.DehydrateOptions.Locate.
func Merge(tb testing.TB, dirs ...string) (streamJSON []byte, locate func(stream.Artifact) string) {
	tb.Helper()
	type doc struct {
		Stream        string                     `json:"stream"`
		Metadata      json.RawMessage            `json:"metadata"`
		Architectures map[string]json.RawMessage `json:"architectures"`
	}
	var merged doc
	where := map[string]string{} // arch -> release directory
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, StreamFile))
		if err != nil {
			tb.Fatalf("testrelease: %v", err)
		}
		var d doc
		if err := json.Unmarshal(data, &d); err != nil {
			tb.Fatalf("testrelease: %s: %v", dir, err)
		}
		if merged.Architectures == nil {
			merged = doc{Stream: d.Stream, Metadata: d.Metadata, Architectures: map[string]json.RawMessage{}}
		} else if d.Stream != merged.Stream {
			tb.Fatalf("testrelease: %s is of stream %q, not %q", dir, d.Stream, merged.Stream)
		}
		for arch, a := range d.Architectures {
			if other, ok := where[arch]; ok {
				tb.Fatalf("testrelease: %s and %s both have architecture %s", other, dir, arch)
			}
			where[arch] = dir
			merged.Architectures[arch] = a
		}
	}
	// encoding/json sorts map keys: the output does not depend on the
	// order of dirs beyond the stream header.
	out, err := json.Marshal(merged)
	if err != nil {
		tb.Fatalf("testrelease: %v", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		tb.Fatalf("testrelease: %v", err)
	}
	buf.WriteByte('\n')
	if _, err := stream.Parse(buf.Bytes()); err != nil {
		tb.Fatalf("testrelease: merged stream: %v", err)
	}
	return buf.Bytes(), func(a stream.Artifact) string {
		return filepath.Join(where[a.Arch], a.Name())
	}
}
