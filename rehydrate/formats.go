package rehydrate

import (
	"bytes"
	"io"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/cpio"
	"github.com/rehydrator/rehydrator/formats/gzip"
	"github.com/rehydrator/rehydrator/formats/iso9660"
	"github.com/rehydrator/rehydrator/formats/qcow2"
	"github.com/rehydrator/rehydrator/formats/tar"
	"github.com/rehydrator/rehydrator/formats/vhd"
	"github.com/rehydrator/rehydrator/formats/vhdx"
	"github.com/rehydrator/rehydrator/formats/vmdk"
)

// headerSize is how much of a file header detection looks at: an ISO's
// primary volume descriptor is at 32 KiB.
const headerSize = 64 << 10

// containers lists the container formats stored by content, in detection
// order; members of a container (the VMDK in an OVA, the gzip layer in an
// OCI archive, the files of an ISO) are split with the same list.
var containers = []formats.Format{
	{Name: "qcow2", Detect: byHeader(qcow2.Detect), Split: qcow2.Split},
	{Name: "vmdk", Detect: byHeader(vmdk.Detect), Split: vmdk.Split},
	{Name: "vhdx", Detect: byHeader(vhdx.Detect), Split: vhdx.Split},
	{Name: "vhd", Detect: vhdDetect, Split: vhd.Split},
	{Name: "iso9660", Detect: byHeader(iso9660.Detect), Split: iso9660.Split},
	{Name: "tar", Detect: byHeader(tar.Detect), Split: tar.Split},
	{Name: "cpio", Detect: byHeader(cpio.Detect), Split: cpio.Split},
	{Name: "gzip", Detect: byHeader(gzip.Detect), Split: gzip.Split},
}

// byHeader adapts a detector of a file's first bytes.
func byHeader(detect func([]byte) bool) func(io.ReaderAt, int64) bool {
	return func(src io.ReaderAt, size int64) bool {
		hdr := make([]byte, min(size, headerSize))
		n, _ := src.ReadAt(hdr, 0)
		return detect(hdr[:n])
	}
}

// vhdDetect finds a dynamic VHD by its header copy of the footer, a fixed
// one by the footer in its last 512 bytes.
func vhdDetect(src io.ReaderAt, size int64) bool {
	if byHeader(vhd.Detect)(src, size) {
		return true
	}
	if size < 512 {
		return false
	}
	tail := make([]byte, 512)
	n, _ := src.ReadAt(tail, size-512)
	return vhd.DetectFooter(tail[:n])
}

// mayBeContainer reports whether a file starting with hdr may be a
// container: worth a work copy to detect and split. A fixed VHD shows only
// in its last bytes, so the stream's format key says when to look there.
func mayBeContainer(hdr []byte, formatKey string) bool {
	if bareFormat(formatKey) == "vhd" {
		return true
	}
	for _, c := range containers {
		if c.Detect(bytes.NewReader(hdr), int64(len(hdr))) {
			return true
		}
	}
	return false
}

// detectFormat returns the container format of src, or nil.
func detectFormat(src io.ReaderAt, size int64) *formats.Format {
	for i := range containers {
		if containers[i].Detect(src, size) {
			return &containers[i]
		}
	}
	return nil
}

func knownFormat(name string) bool {
	for _, c := range containers {
		if c.Name == name {
			return true
		}
	}
	return false
}
