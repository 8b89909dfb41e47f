package fetch

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

var (
	// ErrInvalidFile is matched, with errors.Is, by the error for a File
	// that cannot be fetched as given: a malformed SHA256, an unsupported
	// URL, or no SignatureURL when signatures are required.
	ErrInvalidFile = errors.New("invalid file")
	// ErrIdleTimeout is matched by the error of an attempt during which
	// nothing arrived for [Options.Timeout].
	ErrIdleTimeout = errors.New("idle timeout")
	// ErrTooLarge is matched by the error of [Get] for a document larger
	// than its limit, and of [Fetch] for a signature larger than
	// [MaxSignatureSize].
	ErrTooLarge = errors.New("too large")
)

// Error is the error for one file, or one [Get], that failed.
type Error struct {
	// Name is the File's Name; "" for Get.
	Name string
	// URL is the URL the file was fetched from.
	URL string
	// Err is what went wrong.
	Err error
}

func (e *Error) Error() string {
	if e.Name == "" || e.Name == e.URL {
		return fmt.Sprintf("fetch %s: %v", e.URL, e.Err)
	}
	return fmt.Sprintf("fetch %s (%s): %v", e.Name, e.URL, e.Err)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// HTTPError is a response whose status is not a success.
type HTTPError struct {
	// StatusCode is the response's status code, such as 404.
	StatusCode int
}

func (e *HTTPError) Error() string {
	if text := http.StatusText(e.StatusCode); text != "" {
		return fmt.Sprintf("HTTP %d %s", e.StatusCode, text)
	}
	return fmt.Sprintf("HTTP %d", e.StatusCode)
}

// Temporary reports whether the status may go away if the request is
// repeated: 408, 429 and 5xx.
func (e *HTTPError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// MismatchError is a downloaded file whose SHA-256 is not the expected one.
// The file has been deleted.
type MismatchError struct {
	// Got is the SHA-256 of the bytes received, Want the expected one.
	Got, Want string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("sha256 mismatch: got %s, want %s (file deleted)", e.Got, e.Want)
}

// SignatureError is a signature that does not verify with the keyring.
type SignatureError struct {
	// URL is where the signature came from.
	URL string
	// Issuer describes the key the signature claims to be made by, such as
	// "key 0x1234567890ABCDEF", or "" when the signature does not say.
	Issuer string
	// Err is the OpenPGP error.
	Err error
}

func (e *SignatureError) Error() string {
	by := ""
	if e.Issuer != "" {
		by = " by " + e.Issuer
	}
	return fmt.Sprintf("bad signature %s%s: %v", e.URL, by, e.Err)
}

// Unwrap returns e.Err.
func (e *SignatureError) Unwrap() error { return e.Err }

// idleError is the cause of an attempt canceled by its idle timer.
type idleError struct{ d time.Duration }

func (e *idleError) Error() string {
	return fmt.Sprintf("idle timeout: nothing received for %v", e.d)
}

func (e *idleError) Is(target error) bool { return target == ErrIdleTimeout }

// Timeout reports true, as net.Error's Timeout does.
func (e *idleError) Timeout() bool { return true }

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks err as not worth retrying.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// waitError is a transient error that sets the wait before the next
// attempt: exactly d when exact (0 for "restart now"), else at least d (a
// server's Retry-After).
type waitError struct {
	err   error
	d     time.Duration
	exact bool
}

func (e *waitError) Error() string { return e.err.Error() }
func (e *waitError) Unwrap() error { return e.err }
