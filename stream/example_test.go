package stream_test

import (
	"fmt"
	"log"

	"github.com/rehydrator/rehydrator/stream"
)

func Example() {
	doc := []byte(`{
  "stream": "stable",
  "metadata": {"last-modified": "2026-11-01T00:00:00Z", "generator": "example"},
  "architectures": {
    "x86_64": {
      "artifacts": {
        "metal": {
          "release": "42.20251012.3.0",
          "formats": {
            "4k.raw.xz": {"disk": {
              "location": "https://example.org/42.20251012.3.0/x86_64/fedora-coreos-42.20251012.3.0-metal4k.x86_64.raw.xz",
              "sha256": "1111111111111111111111111111111111111111111111111111111111111111"}},
            "pxe": {"kernel": {
              "location": "https://example.org/42.20251012.3.0/x86_64/fedora-coreos-42.20251012.3.0-live-kernel.x86_64",
              "sha256": "2222222222222222222222222222222222222222222222222222222222222222"}}
          }
        },
        "qemu": {
          "release": "42.20251012.3.0",
          "formats": {
            "qcow2.xz": {"disk": {
              "location": "https://example.org/42.20251012.3.0/x86_64/fedora-coreos-42.20251012.3.0-qemu.x86_64.qcow2.xz",
              "sha256": "3333333333333333333333333333333333333333333333333333333333333333"}}
          }
        }
      }
    }
  }
}`)
	s, err := stream.Parse(doc)
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range s.Artifacts() {
		fmt.Printf("%-26s %-8s %-4s %s\n", a.ID(), a.Selector(), a.Compression(), a.OutputName())
	}
	// Output:
	// x86_64/metal/4k.raw.xz/disk metal4k  xz   fedora-coreos-42.20251012.3.0-metal4k.x86_64.raw
	// x86_64/metal/pxe/kernel    pxe           fedora-coreos-42.20251012.3.0-live-kernel.x86_64
	// x86_64/qemu/qcow2.xz/disk  qemu     xz   fedora-coreos-42.20251012.3.0-qemu.x86_64.qcow2
}

func ExampleParse_invalid() {
	_, err := stream.Parse([]byte(`{"stream":"stable","architectures":{"x86_64":{"artifacts":{"qemu":{
		"release":"42.1","formats":{"qcow2.xz":{"disk":{
		"location":"https://example.org/..%2F..%2Fetc%2Fpasswd",
		"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}}}}}}}`))
	fmt.Println(err)
	// Output:
	// stream: invalid stream metadata: x86_64/qemu/qcow2.xz/disk: location "https://example.org/..%2F..%2Fetc%2Fpasswd": URL path has a ".." segment
}
