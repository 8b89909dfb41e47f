package image

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options configure registry access and platform choice.
type Options struct {
	// Username and Password are registry credentials. When empty, they come
	// from REHYDRATOR_REGISTRY_USERNAME and REHYDRATOR_REGISTRY_PASSWORD,
	// else from the auth files containers tools and docker use
	// ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
	// ~/.config/containers/auth.json, then docker's config.json and its
	// credential helpers). Explicit and environment credentials are sent
	// to every registry an operation talks to (both ends of a Mirror).
	Username, Password string
	// Insecure allows plain HTTP and self-signed TLS certificates.
	Insecure bool
	// Platform, "os/arch[/variant]", picks a manifest from an image index.
	// Empty means this machine's (runtime.GOOS/runtime.GOARCH), or the first
	// manifest when none matches: every platform holds the same bundle.
	Platform string
	// UserAgent is sent to registries, if set.
	UserAgent string
}

// keychain resolves credentials: explicit, then environment, then auth files.
func (o Options) keychain() authn.Keychain {
	if o.Username != "" || o.Password != "" {
		return staticKeychain{Username: o.Username, Password: o.Password}
	}
	if u, p := os.Getenv("REHYDRATOR_REGISTRY_USERNAME"), os.Getenv("REHYDRATOR_REGISTRY_PASSWORD"); u != "" || p != "" {
		return staticKeychain{Username: u, Password: p}
	}
	return authn.NewMultiKeychain(containersKeychain{}, authn.DefaultKeychain)
}

// transport is the HTTP transport for registries: proxies from the
// environment, TLS verification unless Insecure, and response bytes counted
// into n.
func (o Options) transport(n *atomic.Int64) http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if o.Insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for
	}
	return &countingTransport{base: t, n: n}
}

// remoteOptions are go-containerregistry's options for o.
func (o Options) remoteOptions(ctx context.Context, n *atomic.Int64) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(o.transport(n)),
	}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	return opts
}

// platform parses Platform; explicit reports whether it was given.
func (o Options) platform() (p v1.Platform, explicit bool, err error) {
	if o.Platform == "" {
		return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}, false, nil
	}
	pp, err := parsePlatform(o.Platform)
	if err != nil {
		return v1.Platform{}, false, err
	}
	return *pp, true, nil
}

// parsePlatform parses "os/arch[/variant]".
func parsePlatform(s string) (*v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" || strings.Count(s, "/") > 2 || strings.Contains(s, ":") {
		return nil, fmt.Errorf("platform %q: want os/arch[/variant], such as linux/amd64", s)
	}
	return p, nil
}

// countingTransport counts response body bytes.
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingReadCloser{rc: resp.Body, n: t.n}
	}
	return resp, err
}

type countingReadCloser struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReadCloser) Close() error { return c.rc.Close() }

// staticKeychain gives the same credentials for every registry.
type staticKeychain authn.AuthConfig

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig(k)), nil
}

// containersKeychain reads the auth files of containers tools (podman,
// skopeo, buildah), which docker's keychain reads only when docker has no
// config of its own.
type containersKeychain struct{}

// authFiles are the containers auth files, in the order the tools read them.
func authFiles() []string {
	var files []string
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		files = append(files, f)
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "containers", "auth.json"))
	}
	return files
}

func (containersKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, f := range authFiles() {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth file %s: %w", f, err)
		}
		var cfg struct {
			Auths map[string]struct {
				Auth          string `json:"auth"`
				IdentityToken string `json:"identitytoken"`
			} `json:"auths"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("auth file %s: %w", f, err)
		}
		entries := map[string]int{} // normalised key -> index in keys
		keys := make([]string, 0, len(cfg.Auths))
		for k := range cfg.Auths {
			entries[normalizeAuthKey(k)] = len(keys)
			keys = append(keys, k)
		}
		for _, want := range authKeys(r) {
			i, ok := entries[want]
			if !ok {
				continue
			}
			e := cfg.Auths[keys[i]]
			if e.IdentityToken != "" {
				return authn.FromConfig(authn.AuthConfig{IdentityToken: e.IdentityToken}), nil
			}
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth file %s: entry %s: %w", f, keys[i], err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("auth file %s: entry %s: auth is not user:password", f, keys[i])
			}
			return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
		}
	}
	return authn.Anonymous, nil
}

// authKeys are the auth file keys that apply to r, most specific first:
// registry/ns/repo, registry/ns, registry.
func authKeys(r authn.Resource) []string {
	reg := normalizeAuthKey(r.RegistryStr())
	full := normalizeAuthKey(r.String())
	var keys []string
	for k := full; k != reg && strings.HasPrefix(k, reg+"/"); k = k[:strings.LastIndex(k, "/")] {
		keys = append(keys, k)
	}
	return append(keys, reg)
}

// normalizeAuthKey strips a scheme and a docker v1 path, and maps Docker
// Hub's aliases to one name.
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(strings.TrimSuffix(k, "/"), "/v1")
	host, rest, _ := strings.Cut(k, "/")
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		host = name.DefaultRegistry
	}
	if rest == "" {
		return host
	}
	return host + "/" + rest
}
