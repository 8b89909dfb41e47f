package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyringSize bounds what ReadKeyring reads.
const maxKeyringSize = 16 << 20

// armorStart begins every ASCII-armored OpenPGP block.
var armorStart = []byte("-----BEGIN PGP ")

// ReadKeyring reads OpenPGP public keys, armored (one or more blocks, as
// "gpg --export --armor" writes them) or binary (as "gpg --export" does). It
// fails if r holds no usable key.
func ReadKeyring(r io.Reader) (openpgp.EntityList, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	if len(data) > maxKeyringSize {
		return nil, fmt.Errorf("reading keyring: %w: more than %d bytes", ErrTooLarge, maxKeyringSize)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), armorStart) {
		keys, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("reading keyring: %w", err)
		}
		return nonEmpty(keys)
	}
	var keys openpgp.EntityList
	rest := data
	for {
		i := bytes.Index(rest, armorStart)
		if i < 0 {
			break
		}
		rest = rest[i:]
		block := rest
		if j := bytes.Index(rest[len(armorStart):], armorStart); j >= 0 {
			block = rest[:len(armorStart)+j]
		}
		rest = rest[len(block):]
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("reading keyring: %w", err)
		}
		keys = append(keys, el...)
	}
	return nonEmpty(keys)
}

func nonEmpty(keys openpgp.EntityList) (openpgp.EntityList, error) {
	if len(keys) == 0 {
		return nil, errors.New("reading keyring: no keys found")
	}
	return keys, nil
}

// checkSignature checks that sig, a detached signature, armored or binary,
// of the bytes read from data, is good and made by a key of keyring. Its
// error is a *SignatureError (but for errors reading data).
func checkSignature(keyring openpgp.EntityList, data io.Reader, sig []byte, sigURL string) error {
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(sig), armorStart) {
		_, err = openpgp.CheckArmoredDetachedSignature(keyring, data, bytes.NewReader(sig), nil)
	} else {
		_, err = openpgp.CheckDetachedSignature(keyring, data, bytes.NewReader(sig), nil)
	}
	if err == nil {
		return nil
	}
	var rerr *readError
	if errors.As(err, &rerr) {
		return rerr.err
	}
	return &SignatureError{URL: sigURL, Issuer: issuer(sig), Err: err}
}

// issuer describes the key that signature packets in sig claim to be made
// by, or returns "".
func issuer(sig []byte) string {
	var r io.Reader = bytes.NewReader(sig)
	if bytes.HasPrefix(bytes.TrimSpace(sig), armorStart) {
		block, err := armor.Decode(r)
		if err != nil {
			return ""
		}
		r = block.Body
	}
	p, err := packet.Read(r)
	if err != nil {
		return ""
	}
	s, ok := p.(*packet.Signature)
	switch {
	case !ok:
		return ""
	case len(s.IssuerFingerprint) > 0:
		return fmt.Sprintf("key %X", s.IssuerFingerprint)
	case s.IssuerKeyId != nil:
		return fmt.Sprintf("key 0x%016X", *s.IssuerKeyId)
	}
	return ""
}

// readError marks an error of the signed data's reader, so that
// checkSignature does not mistake it for a bad signature.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

type markReader struct{ r io.Reader }

func (m markReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// errAborted ends a sigCheck whose data will not be complete.
var errAborted = errors.New("download restarted")

// sigCheck checks a signature over bytes written to it as they arrive, so
// that a downloaded file need not be read back. It runs the check in a
// goroutine fed through a pipe; finish or abort must be called to end it.
type sigCheck struct {
	pw     *io.PipeWriter
	result chan error
	ended  bool
}

func startSigCheck(keyring openpgp.EntityList, sig []byte, sigURL string) *sigCheck {
	pr, pw := io.Pipe()
	s := &sigCheck{pw: pw, result: make(chan error, 1)}
	go func() {
		err := checkSignature(keyring, markReader{pr}, sig, sigURL)
		// The check may end before reading everything (an unknown key
		// is known at once); make further writes fail instead of block.
		pr.CloseWithError(errAborted)
		s.result <- err
	}()
	return s
}

// Write passes p to the check. It never fails: once the check has ended,
// its outcome is what finish returns.
func (s *sigCheck) Write(p []byte) (int, error) {
	if !s.ended {
		if _, err := s.pw.Write(p); err != nil {
			s.ended = true
		}
	}
	return len(p), nil
}

// finish says all bytes were written and returns the check's outcome.
func (s *sigCheck) finish() error {
	s.pw.Close()
	return <-s.result
}

// abort stops the check.
func (s *sigCheck) abort() {
	s.pw.CloseWithError(errAborted)
	<-s.result
}
