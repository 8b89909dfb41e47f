package rehydrate

import (
	"errors"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/delta"
	"github.com/rehydrator/rehydrator/formats/cpio"
	"github.com/rehydrator/rehydrator/formats/squashfs"
)

// openView returns the named view of src (see Source.View).
func openView(view string, src delta.Source) (delta.Source, error) {
	if view != ViewSquashfs {
		return nil, fmt.Errorf("unknown view %q", view)
	}
	img, err := findSquashfs(src)
	if err != nil {
		return nil, err
	}
	sq, err := squashfs.Open(img, img.Size())
	if err != nil {
		return nil, err
	}
	return sq.Files(), nil
}

// findSquashfs returns the squashfs image in src: src itself, or the one
// squashfs member of a newc cpio archive (a PXE rootfs).
func findSquashfs(src delta.Source) (*io.SectionReader, error) {
	hdr := make([]byte, 4096)
	n, err := src.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	hdr = hdr[:n]
	if squashfs.Detect(hdr) {
		return io.NewSectionReader(src, 0, src.Size()), nil
	}
	if !cpio.Detect(hdr) {
		return nil, errors.New("neither a squashfs image nor a cpio archive")
	}
	members, err := cpio.Members(src, src.Size())
	if err != nil {
		return nil, err
	}
	var found *io.SectionReader
	for _, m := range members {
		if m.Size < 4096 {
			continue
		}
		n, err := src.ReadAt(hdr[:4096], m.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if squashfs.Detect(hdr[:n]) {
			if found != nil {
				return nil, errors.New("cpio archive holds more than one squashfs image")
			}
			found = io.NewSectionReader(src, m.Offset, m.Size)
		}
	}
	if found == nil {
		return nil, errors.New("cpio archive holds no squashfs image")
	}
	return found, nil
}
