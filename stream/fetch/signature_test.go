package fetch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
)

// gpgHome is a temporary GnuPG home with keys made by the real gpg.
type gpgHome struct {
	t   *testing.T
	dir string
}

func newGPG(t *testing.T) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg is needed in CI")
		}
		t.Skip("gpg not installed")
	}
	// A short path: gpg-agent's socket lives in it.
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", dir, "--kill", "gpg-agent").Run()
		os.RemoveAll(dir)
	})
	return g
}

// run runs gpg in g's home and returns its standard output.
func (g *gpgHome) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", g.dir, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.dir)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// key makes a signing key for uid.
func (g *gpgHome) key(uid, algo string) {
	g.run(nil, "--quick-gen-key", uid, algo, "sign", "never")
}

// sign returns a detached signature of data by uid's key.
func (g *gpgHome) sign(uid string, data []byte, armor bool) []byte {
	args := []string{"--local-user", uid, "--detach-sign"}
	if armor {
		args = append(args, "--armor")
	}
	return g.run(data, append(args, "-o", "-")...)
}

func TestSignatures(t *testing.T) {
	g := newGPG(t)
	g.key("Release <release@example.com>", "rsa2048")
	g.key("Other <other@example.com>", "ed25519")
	other := newGPG(t)
	other.key("Stranger <stranger@example.com>", "ed25519")

	// The keyring holds the release key only; read it both ways.
	binKeys, err := ReadKeyring(bytes.NewReader(g.run(nil, "--export", "release@example.com")))
	if err != nil {
		t.Fatal(err)
	}
	armored := g.run(nil, "--export", "--armor", "release@example.com")
	keyring, err := ReadKeyring(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	if len(binKeys) != 1 || len(keyring) != 1 || binKeys[0].PrimaryKey.KeyId != keyring[0].PrimaryKey.KeyId {
		t.Fatalf("keyrings: %d and %d keys", len(binKeys), len(keyring))
	}
	both := append(armored, g.run(nil, "--export", "--armor", "other@example.com")...)
	if two, err := ReadKeyring(bytes.NewReader(both)); err != nil || len(two) != 2 {
		t.Fatalf("two armored blocks: %d keys, %v", len(two), err)
	}
	if _, err := ReadKeyring(strings.NewReader("not a key")); err == nil {
		t.Error("ReadKeyring accepted garbage")
	}

	s := newServer(t)
	data := content(size)
	cases := []struct {
		name    string
		sig     []byte
		wantErr string // "" for success
	}{
		{"binary", g.sign("release@example.com", data, false), ""},
		{"armored", g.sign("release@example.com", data, true), ""},
		{"other bytes", g.sign("release@example.com", data[1:], false), "bad signature"},
		{"unknown key", other.sign("stranger@example.com", data, true), "bad signature"},
		{"not a signature", []byte("<html>oops</html>"), "bad signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := File{
				Name:         "f",
				URL:          s.add("/"+c.name, data),
				SHA256:       sum(data),
				SignatureURL: s.add("/"+c.name+".sig", c.sig),
			}
			opt := quick(nil)
			opt.Keyring = keyring
			err := Fetch(context.Background(), dir, []File{f}, opt)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := cacheFiles(t, dir); len(got) != 2 || got[0] != "sha256/"+f.SHA256 || got[1] != "sha256/"+f.SHA256+".sig" {
					t.Errorf("cache holds %q, want the file and its signature", got)
				}
				// A second call needs no network.
				n := len(s.requests())
				if err := Fetch(context.Background(), dir, []File{f}, opt); err != nil {
					t.Fatal(err)
				}
				if len(s.requests()) != n {
					t.Error("second Fetch made requests")
				}
				return
			}
			var serr *SignatureError
			if !errors.As(err, &serr) {
				t.Fatalf("error %v, want a SignatureError", err)
			}
			t.Log(err)
			containsAll(t, err.Error(), "fetch f ("+f.URL+"): ", c.wantErr, f.SignatureURL)
			if c.name == "unknown key" {
				if !errors.Is(err, pgperrors.ErrUnknownIssuer) || !strings.Contains(err.Error(), "by key ") {
					t.Errorf("error %v does not name the unknown key", err)
				}
			}
			wantCache(t, dir)
		})
	}

	t.Run("no signature URL", func(t *testing.T) {
		opt := quick(nil)
		opt.Keyring = keyring
		err := Fetch(context.Background(), t.TempDir(), []File{{Name: "f", URL: s.URL + "/binary", SHA256: sum(data)}}, opt)
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), "no signature URL") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("cached without signature", func(t *testing.T) {
		// A file cached by a call without a keyring gets its signature
		// checked, and stored, by a call with one.
		dir := t.TempDir()
		f := File{Name: "f", URL: s.URL + "/binary", SHA256: sum(data), SignatureURL: s.URL + "/binary.sig"}
		if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); err != nil {
			t.Fatal(err)
		}
		opt := quick(nil)
		opt.Keyring = keyring
		if err := Fetch(context.Background(), dir, []File{f}, opt); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(Path(dir, f.SHA256) + ".sig"); err != nil {
			t.Error(err)
		}
		f.SignatureURL = s.URL + "/other bytes.sig"
		if err := os.Remove(Path(dir, f.SHA256) + ".sig"); err != nil {
			t.Fatal(err)
		}
		err := Fetch(context.Background(), dir, []File{f}, opt)
		var serr *SignatureError
		if !errors.As(err, &serr) {
			t.Errorf("error %v, want a SignatureError", err)
		}
	})

	t.Run("resumed", func(t *testing.T) {
		// The signature is checked over the bytes of both attempts.
		dir := t.TempDir()
		sig := g.sign("release@example.com", data, false)
		f := File{Name: "f", URL: s.add("/resumed", data, cutAt(size/2)), SHA256: sum(data), SignatureURL: s.add("/resumed.sig", sig)}
		opt := quick(nil)
		opt.Keyring = keyring
		if err := Fetch(context.Background(), dir, []File{f}, opt); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(Path(dir, f.SHA256)); err != nil {
			t.Error(err)
		}
		// And over a partial file left by an earlier run.
		dir = t.TempDir()
		writePartial(t, dir, f.SHA256, data[:size/3])
		if err := Fetch(context.Background(), dir, []File{f}, opt); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "sha256", f.SHA256)); err != nil {
			t.Error(err)
		}
	})
}
