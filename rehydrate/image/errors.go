package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// Kinds of failure a user can act on. Errors from this package match one of
// them with errors.Is where it applies; the underlying cause stays reachable
// with errors.As (a *transport.Error, a *rehydrate.DigestError, ...).
var (
	// ErrNotFound: an unknown tag or repository, or a missing manifest or layer.
	ErrNotFound = errors.New("not found")
	// ErrAuth: the registry refused the credentials (HTTP 401 or 403).
	ErrAuth = errors.New("authentication failed")
	// ErrUnreachable: the registry could not be reached (refused, unresolvable,
	// timed out, untrusted TLS certificate).
	ErrUnreachable = errors.New("registry unreachable")
	// ErrDigest: content does not match its digest or size.
	ErrDigest = errors.New("digest mismatch")
)

// locError is a failure at a location: a short message naming the location,
// its kind and its cause.
type locError struct {
	loc  string
	kind error
	msg  string
	err  error
}

func (e *locError) Error() string { return e.loc + ": " + e.msg }

func (e *locError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// classify turns err, met while handling what ("tag \"x\"", "layer
// sha256:...") at loc, into a short message of a known kind where it can.
func classify(loc, what string, err error) error {
	if err == nil {
		return nil
	}
	var le *locError
	if errors.As(err, &le) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", loc, what, err)
	}
	mk := func(kind error, msg string) error { return &locError{loc: loc, kind: kind, msg: msg, err: err} }

	var de *rehydrate.DigestError
	if errors.As(err, &de) {
		if de.Got == "" {
			return mk(ErrDigest, fmt.Sprintf("%s: size mismatch (read %d bytes; truncated or corrupted)", what, de.Size))
		}
		return mk(ErrDigest, fmt.Sprintf("%s: content has digest %s (corrupted)", what, de.Got))
	}
	// go-containerregistry's verifying reader has no exported error type.
	if s := err.Error(); strings.Contains(s, "error verifying") || strings.Contains(s, "does not match requested digest") {
		return mk(ErrDigest, fmt.Sprintf("%s: content does not match its digest (corrupted in the registry or in transit)", what))
	}
	// Before HTTP errors: for a loopback registry go-containerregistry
	// tries plain HTTP after HTTPS failed, and returns both errors.
	if untrustedCert(err) {
		return mk(ErrUnreachable, certMessage)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		var detail []string
		for _, d := range te.Errors {
			codes[d.Code] = true
			detail = append(detail, string(d.Code))
		}
		status := fmt.Sprintf("HTTP %d", te.StatusCode)
		if len(detail) > 0 {
			status += " " + strings.Join(detail, ", ")
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || codes[transport.UnauthorizedErrorCode]:
			return mk(ErrAuth, fmt.Sprintf("%s: authentication failed: wrong or missing username/password (%s)", what, status))
		case te.StatusCode == http.StatusForbidden || codes[transport.DeniedErrorCode]:
			return mk(ErrAuth, fmt.Sprintf("%s: access denied: the credentials do not allow this (%s)", what, status))
		case codes[transport.NameUnknownErrorCode]:
			return mk(ErrNotFound, fmt.Sprintf("%s: repository not found (%s)", what, status))
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.BlobUnknownErrorCode]:
			return mk(ErrNotFound, fmt.Sprintf("%s not found (%s)", what, status))
		}
		return mk(nil, fmt.Sprintf("%s: registry error %s", what, status))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return mk(ErrNotFound, what+" is missing")
	}
	if msg := networkProblem(err); msg != "" {
		return mk(ErrUnreachable, msg)
	}
	return fmt.Errorf("%s: %s: %w", loc, what, err)
}

// networkProblem describes err if it is a failure to reach a registry.
func networkProblem(err error) string {
	var (
		dnsErr *net.DNSError
		netErr net.Error
		opErr  *net.OpError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "cannot connect to the registry (connection refused): is it running?"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve registry host %q", dnsErr.Name)
	case untrustedCert(err):
		return certMessage
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the registry speaks plain HTTP (disable TLS verification to use it)"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "the registry did not answer in time"
	case errors.As(err, &opErr):
		return "cannot reach the registry: " + opErr.Error()
	}
	return ""
}

const certMessage = "the registry's TLS certificate is not trusted (for a local registry with a self-signed certificate, disable TLS verification)"

// untrustedCert reports whether err is a failed TLS certificate check.
func untrustedCert(err error) bool {
	var (
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
	)
	return errors.As(err, &certErr) || errors.As(err, &uaErr) || errors.As(err, &hostErr) || errors.As(err, &invErr)
}
