package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	// lockPoll is how often a process waiting for a partial file another
	// process holds checks whether it was released.
	lockPoll = 200 * time.Millisecond
	// bufSize is the size of the buffer a download copies through.
	bufSize = 256 << 10
)

// fetchFile brings f into the cache in dir and reports whether it already
// was there.
func (c *fetcher) fetchFile(ctx context.Context, dir string, f File) (cached bool, err error) {
	final := Path(dir, f.SHA256)
	if ok, err := exists(final); err != nil {
		return false, err
	} else if ok {
		return true, c.checkCached(ctx, dir, f, nil)
	}
	var sig []byte
	if c.keyring != nil {
		if sig, err = c.get(ctx, f, f.SignatureURL, MaxSignatureSize); err != nil {
			return false, fmt.Errorf("signature %s: %w", f.SignatureURL, err)
		}
		// Fail before downloading when the signer is unknown.
		if err := signerKnown(c.keyring, sig, f.SignatureURL); err != nil {
			return false, err
		}
	}
	partial := filepath.Join(dir, "partial", f.SHA256)
	file, err := lockPartial(ctx, partial)
	if err != nil {
		return false, err
	}
	d := &download{
		c:     c,
		f:     f,
		file:  file,
		path:  partial,
		meta:  partial + ".meta",
		final: final,
		sig:   sig,
		h:     sha256.New(),
		buf:   make([]byte, bufSize),
	}
	defer d.close()
	// Another process may have finished the file while this one waited.
	if ok, err := exists(final); err != nil {
		return false, err
	} else if ok {
		d.discard()
		return true, c.checkCached(ctx, dir, f, sig)
	}
	if err := d.load(); err != nil {
		return false, err
	}
	return false, c.retry(ctx, f, d.attempt)
}

// exists reports whether a file is at path.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// checkCached checks the signature of the cached file f when a keyring is
// set: with sig if not nil, else with the signature stored next to the file
// by an earlier call, else with one fetched from f.SignatureURL. A good
// signature is stored next to the file, so later calls need no network.
// The file is read whole, but left in place when the check fails: it does
// have the SHA-256 it is filed under.
func (c *fetcher) checkCached(ctx context.Context, dir string, f File, sig []byte) error {
	if c.keyring == nil {
		return nil
	}
	final := Path(dir, f.SHA256)
	sigPath := final + ".sig"
	if sig == nil {
		if stored, err := os.ReadFile(sigPath); err == nil && c.checkFile(final, stored, f.SignatureURL) == nil {
			return nil
		}
		var err error
		if sig, err = c.get(ctx, f, f.SignatureURL, MaxSignatureSize); err != nil {
			return fmt.Errorf("signature %s: %w", f.SignatureURL, err)
		}
	}
	if err := c.checkFile(final, sig, f.SignatureURL); err != nil {
		return err
	}
	return writeFileAtomic(sigPath, sig, filepath.Join(dir, "partial"))
}

// checkFile checks sig against the contents of the file at path.
func (c *fetcher) checkFile(path string, sig []byte, sigURL string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	if err := checkSignature(c.keyring, file, sig, sigURL); err != nil {
		return fmt.Errorf("checking cached file %s: %w", path, err)
	}
	return nil
}

// signerKnown returns a *SignatureError when sig holds something other
// than signature packets, or none that names a signing key of keyring. The
// signature itself is not checked.
func signerKnown(keyring openpgp.EntityList, sig []byte, sigURL string) error {
	var r io.Reader = bytes.NewReader(sig)
	if bytes.HasPrefix(bytes.TrimSpace(sig), armorStart) {
		block, err := armor.Decode(r)
		if err != nil {
			return nil // leave it to checkSignature to report
		}
		r = block.Body
	}
	packets := packet.NewReader(r)
	found := false
	for {
		p, err := packets.Next()
		if err != nil {
			if !found && err != io.EOF {
				return &SignatureError{URL: sigURL, Err: fmt.Errorf("not an OpenPGP signature: %w", err)}
			}
			break
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return &SignatureError{URL: sigURL, Err: fmt.Errorf("not an OpenPGP signature: holds a %T packet", p)}
		}
		found = true
		if s.IssuerKeyId != nil && len(keyring.KeysByIdUsage(*s.IssuerKeyId, packet.KeyFlagSign)) > 0 {
			return nil
		}
	}
	if !found {
		return &SignatureError{URL: sigURL, Err: errors.New("no OpenPGP signature found")}
	}
	return &SignatureError{URL: sigURL, Issuer: issuer(sig), Err: pgperrors.ErrUnknownIssuer}
}

// lockPartial opens the partial file at path, creating it if needed, and
// locks it, waiting while another process holds it. A process finishing
// with a partial file renames or removes it before letting go, so after
// getting the lock lockPartial checks that path still names the file, and
// starts over if not.
func lockPartial(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening partial file: %w", err)
		}
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if ok {
			same, err := names(path, f)
			if err != nil {
				f.Close()
				return nil, err
			}
			if same {
				return f, nil
			}
			f.Close()
			continue
		}
		f.Close()
		if err := sleep(ctx, lockPoll); err != nil {
			return nil, fmt.Errorf("waiting for another process downloading to %s: %w", path, err)
		}
	}
}

// names reports whether path names the open file f.
func names(path string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// download is the state of one file's download, kept across attempts. It
// owns the locked partial file.
type download struct {
	c     *fetcher
	f     File
	file  *os.File // the locked partial file
	path  string   // of file
	meta  string   // path of the sidecar holding val
	final string   // path in the cache

	sig   []byte    // detached signature, when the keyring is set
	check *sigCheck // checks sig over the bytes of file; nil without keyring
	h     hash.Hash // SHA-256 of the bytes of file
	have  int64     // length of file, all of it hashed and checked

	resumed   bool // the last response continued bytes already in file
	restarted bool // file was emptied once after failing its SHA-256
	gone      bool // file was renamed into the cache, or removed
	val       validator
	buf       []byte
}

// validator is what the sidecar of a partial file holds: the validators the
// server sent with the partial's bytes, for If-Range.
type validator struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last-modified,omitempty"`
}

// ifRange returns the If-Range value to send when resuming from u, or "".
func (v validator) ifRange(u string) string {
	switch {
	case v.URL != u:
		return ""
	case v.ETag != "" && !strings.HasPrefix(v.ETag, "W/"):
		return v.ETag
	}
	return v.LastModified
}

// load hashes (and passes to the signature check) the bytes an earlier
// attempt left in the partial file, and reads its sidecar.
func (d *download) load() error {
	if d.c.keyring != nil {
		d.check = startSigCheck(d.c.keyring, d.sig, d.f.SignatureURL)
	}
	info, err := d.file.Stat()
	if err != nil {
		return err
	}
	if info.Size() == 0 {
		os.Remove(d.meta)
		return nil
	}
	if b, err := os.ReadFile(d.meta); err == nil {
		_ = json.Unmarshal(b, &d.val) // a damaged sidecar only costs If-Range
	}
	n, err := io.CopyBuffer(digester{d}, io.NewSectionReader(d.file, 0, info.Size()), d.buf)
	if err != nil {
		return fmt.Errorf("reading partial file %s: %w", d.path, err)
	}
	d.have = n
	return nil
}

// digester writes to the hash and signature check of a download.
type digester struct{ d *download }

func (w digester) Write(p []byte) (int, error) {
	w.d.h.Write(p)
	if w.d.check != nil {
		w.d.check.Write(p)
	}
	return len(p), nil
}

// reset empties the partial file, to download the file from its start.
func (d *download) reset() error {
	if err := d.file.Truncate(0); err != nil {
		return permanent(fmt.Errorf("emptying partial file: %w", err))
	}
	d.have = 0
	d.h.Reset()
	if d.check != nil {
		d.check.abort()
		d.check = startSigCheck(d.c.keyring, d.sig, d.f.SignatureURL)
	}
	return nil
}

// discard removes the partial file and its sidecar; the lock is held until
// close.
func (d *download) discard() {
	if !d.gone {
		os.Remove(d.path)
		os.Remove(d.meta)
		d.gone = true
	}
}

// close ends the signature check, removes a partial file that holds
// nothing, and releases the lock.
func (d *download) close() {
	if d.check != nil {
		d.check.abort()
		d.check = nil
	}
	if d.have == 0 {
		d.discard()
	}
	d.file.Close()
}

// attempt makes one attempt at downloading the rest of the file.
func (d *download) attempt(ctx context.Context) error {
	if u, err := url.Parse(d.f.URL); err == nil && u.Scheme == "file" {
		return d.attemptFile(ctx, u)
	}
	w := d.c.watch(ctx)
	defer w.stop()
	req, err := d.c.newRequest(w.ctx, d.f.URL)
	if err != nil {
		return err
	}
	// Ranges count bytes of what is stored, so ask for no content coding.
	req.Header.Set("Accept-Encoding", "identity")
	if d.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.have))
		if v := d.val.ifRange(d.f.URL); v != "" {
			req.Header.Set("If-Range", v)
		}
	}
	resp, err := d.c.client.Do(req)
	if err != nil {
		return w.err(transportError(err))
	}
	defer resp.Body.Close()
	w.kick()

	var size int64
	switch resp.StatusCode {
	case http.StatusOK:
		// The whole file: the server ignored the range, or the file
		// changed since the partial's bytes were fetched.
		if d.have > 0 {
			if err := d.reset(); err != nil {
				return err
			}
		}
		d.resumed = false
		size = resp.ContentLength
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, total, err := contentRange(cr)
		if err != nil || start != d.have || d.have == 0 {
			if err := d.reset(); err != nil {
				return err
			}
			return fmt.Errorf("asked for bytes from %d, got Content-Range %q; starting over", d.have, cr)
		}
		d.resumed = true
		size = total
	case http.StatusRequestedRangeNotSatisfiable:
		if d.have == 0 {
			return permanent(&HTTPError{StatusCode: resp.StatusCode})
		}
		_, total, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			total = -1
		}
		if total >= 0 && d.have > total {
			have := d.have
			if err := d.reset(); err != nil {
				return err
			}
			return &waitError{err: fmt.Errorf("partial file has %d bytes, more than the file's %d; starting over", have, total), exact: true}
		}
		// Nothing is missing: the partial file is complete, or wrong.
		d.resumed = true
		return d.finish(total)
	default:
		return statusError(resp)
	}
	d.saveValidator(resp)
	d.c.rep.Start(d.f, d.have, size)
	if err := d.copy(ctx, w.reader(resp.Body)); err != nil {
		err = w.err(err)
		var (
			perm *permanentError
			idle *idleError
		)
		if ctx.Err() != nil || errors.As(err, &perm) || errors.As(err, &idle) {
			return err
		}
		return fmt.Errorf("receiving byte %d: %w", d.have, err)
	}
	return d.finish(size)
}

// attemptFile makes one attempt at copying the rest of the file from the
// file URL u.
func (d *download) attemptFile(ctx context.Context, u *url.URL) error {
	p, err := filePath(u)
	if err != nil {
		return permanent(err)
	}
	src, err := os.Open(p)
	if err != nil {
		return permanent(err)
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return permanent(err)
	}
	size := info.Size()
	if d.have > size {
		if err := d.reset(); err != nil {
			return err
		}
	}
	d.resumed = d.have > 0
	if _, err := src.Seek(d.have, io.SeekStart); err != nil {
		return permanent(err)
	}
	d.c.rep.Start(d.f, d.have, size)
	if err := d.copy(ctx, src); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return permanent(fmt.Errorf("reading %s: %w", p, err))
	}
	return d.finish(size)
}

// copy appends what r yields to the partial file, hashing it on the way.
// Errors writing the file are permanent; errors of r are returned as they
// are.
func (d *download) copy(ctx context.Context, r io.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(d.buf)
		if n > 0 {
			if _, err := d.file.WriteAt(d.buf[:n], d.have); err != nil {
				return permanent(fmt.Errorf("writing partial file: %w", err))
			}
			digester{d}.Write(d.buf[:n])
			d.have += int64(n)
			d.c.rep.Progress(d.f, int64(n))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish verifies the partial file, which should now hold size bytes (-1:
// unknown), and moves it into the cache.
func (d *download) finish(size int64) error {
	if size >= 0 && d.have < size {
		return fmt.Errorf("connection closed after %d of %d bytes", d.have, size)
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); got != d.f.SHA256 {
		if d.resumed && !d.restarted {
			// The bytes kept from an earlier response may be what is
			// wrong (the file changed on the server, a crash left
			// garbage): try once more from the start.
			d.restarted = true
			if err := d.reset(); err != nil {
				return err
			}
			return &waitError{err: fmt.Errorf("sha256 mismatch after resuming (got %s); discarded the partial file", got), exact: true}
		}
		d.discard()
		return permanent(&MismatchError{Got: got, Want: d.f.SHA256})
	}
	if err := d.file.Sync(); err != nil {
		return permanent(fmt.Errorf("syncing partial file: %w", err))
	}
	if d.check != nil {
		err := d.check.finish()
		d.check = nil
		if err != nil {
			d.discard()
			return permanent(fmt.Errorf("%w (file deleted)", err))
		}
		if err := writeFileAtomic(d.final+".sig", d.sig, filepath.Dir(d.path)); err != nil {
			return permanent(err)
		}
	}
	if err := os.Rename(d.path, d.final); err != nil {
		return permanent(fmt.Errorf("moving into the cache: %w", err))
	}
	d.gone = true
	os.Remove(d.meta)
	syncDir(filepath.Dir(d.final))
	return nil
}

// saveValidator remembers the validators of resp, in memory and in the
// sidecar. The sidecar only saves a later run a full download when the
// file changed on the server (the SHA-256 check would catch it anyway), so
// failing to write it is not an error.
func (d *download) saveValidator(resp *http.Response) {
	v := validator{URL: d.f.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if v == d.val {
		return
	}
	d.val = v
	if v.ETag == "" && v.LastModified == "" {
		os.Remove(d.meta)
		return
	}
	if b, err := json.Marshal(v); err == nil {
		_ = os.WriteFile(d.meta, b, 0o644)
	}
}

// contentRange parses a Content-Range header, "bytes FIRST-LAST/TOTAL" or
// "bytes */TOTAL", returning FIRST (-1 for "*") and TOTAL (-1 for "*").
func contentRange(s string) (start, total int64, err error) {
	bad := fmt.Errorf("malformed Content-Range %q", s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, bad
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, bad
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || total >= 0 && end >= total {
		return 0, 0, bad
	}
	return start, total, nil
}

// writeFileAtomic writes data to path through a temporary file in tmpDir,
// which must be on the same file system.
func writeFileAtomic(path string, data []byte, tmpDir string) error {
	tmp, err := os.CreateTemp(tmpDir, "tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable. It is best effort: some file
// systems do not sync directories.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
