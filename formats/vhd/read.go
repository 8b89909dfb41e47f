package vhd

import (
	"errors"
	"fmt"
	"io"
)

var errShort = errors.New("file shorter than its stated size")

// readAt fills p from src at off.
func readAt(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errShort
	}
	return fmt.Errorf("vhd: reading %d bytes at %#x: %w", len(p), off, err)
}
