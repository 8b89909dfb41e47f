package rehydrate

import (
	"io"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/qcow2"
	"github.com/rehydrator/rehydrator/formats/vmdk"
)

// splitter is a container format that package formats can split.
type splitter struct {
	name   string
	detect func(header []byte) bool
	split  func(src io.ReaderAt, size int64, b *formats.Builder) error
}

// splitters lists the container formats stored by content, detected by magic.
var splitters = []splitter{
	{"qcow2", qcow2.Detect, qcow2.Split},
	{"vmdk", vmdk.Detect, vmdk.Split},
}

// detectFormat returns the splitter whose magic header starts, or nil.
func detectFormat(header []byte) *splitter {
	for i := range splitters {
		if splitters[i].detect(header) {
			return &splitters[i]
		}
	}
	return nil
}

func knownFormat(name string) bool {
	for _, s := range splitters {
		if s.name == name {
			return true
		}
	}
	return false
}
