//go:build !unix

package testrelease

import "errors"

// lockFile is only implemented on Unix, where mkrelease.sh runs.
func lockFile(string) (func(), error) {
	return nil, errors.New("testrelease needs a Unix system")
}
