package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

var bundle = fstest.MapFS{
	"index.html":                {Data: []byte(`<!doctype html><div id="root"></div><script type="module" src="/assets/index-abc123.js"></script>`)},
	"assets/index-abc123.js":    {Data: []byte(strings.Repeat("console.log('governor');\n", 200))},
	"assets/index-abc123.css":   {Data: []byte("body{margin:0}")},
	"assets/logo-ff00.png":      {Data: []byte("\x89PNG\r\n\x1a\n")},
	"favicon.svg":               {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	".build-hash":               {Data: []byte("deadbeef")},
	"assets/fonts/inter.woff2":  {Data: []byte("wOF2")},
	"assets/chunk-9f.js.map":    {Data: []byte(`{"version":3}`)},
	"assets/nested/.hidden.txt": {Data: []byte("no")},
}

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAssetsHaveTypesAndAreImmutable(t *testing.T) {
	t.Parallel()
	h := Handler(Options{FS: bundle})
	for path, typ := range map[string]string{
		"/assets/index-abc123.js":   "text/javascript; charset=utf-8",
		"/assets/index-abc123.css":  "text/css; charset=utf-8",
		"/assets/logo-ff00.png":     "image/png",
		"/assets/fonts/inter.woff2": "font/woff2",
		"/assets/chunk-9f.js.map":   "application/json",
	} {
		w := get(t, h, http.MethodGet, path)
		require.Equal(t, http.StatusOK, w.Code, path)
		require.Equal(t, typ, w.Header().Get("Content-Type"), path)
		require.Equal(t, "public, max-age=31536000, immutable", w.Header().Get("Cache-Control"), path)
		require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"), path)
		require.NotEmpty(t, w.Header().Get("ETag"), path)
	}
	// Files outside assets/ have no hash in their name: revalidated.
	w := get(t, h, http.MethodGet, "/favicon.svg")
	require.Equal(t, "image/svg+xml", w.Header().Get("Content-Type"))
	require.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
}

func TestClientRoutesGetThePage(t *testing.T) {
	t.Parallel()
	h := Handler(Options{FS: bundle})
	page, _ := bundle.ReadFile("index.html")
	for _, path := range []string{"/", "/index.html", "/activity", "/incidents?incident=inc_1", "/policies/rules", "/assets", "/assets/"} {
		w := get(t, h, http.MethodGet, path)
		require.Equal(t, http.StatusOK, w.Code, path)
		require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"), path)
		require.Equal(t, "no-cache", w.Header().Get("Cache-Control"), path)
		require.Contains(t, w.Header().Get("Content-Security-Policy"), "script-src 'self'", path)
		require.Contains(t, w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Equal(t, "DENY", w.Header().Get("X-Frame-Options"), path)
		require.Equal(t, string(page), w.Body.String(), path)
	}
	head := get(t, h, http.MethodHead, "/activity")
	require.Equal(t, http.StatusOK, head.Code)
	require.Empty(t, head.Body.String())
	// A revalidation of an unchanged page is a 304.
	etag := get(t, h, http.MethodGet, "/").Header().Get("ETag")
	require.Equal(t, http.StatusNotModified, get(t, h, http.MethodGet, "/activity", "If-None-Match", etag).Code)
}

func TestWhatIsNeverThePage(t *testing.T) {
	t.Parallel()
	h := Handler(Options{FS: bundle})
	for _, path := range []string{
		"/governor.v1.NoSuchService/Call", "/governor.v1.AccountService/NoSuchMethod", "/grpc.health.v1.Health/Nope",
		"/grpc.reflection.v1.ServerReflection/X", "/metrics/extra", "/healthz", "/readyz", "/livez", "/debug/pprof/",
		"/api/v1/runs", "/assets/missing-123.js", "/missing.css", "/robots.txt", "/.build-hash", "/assets/nested/.hidden.txt",
		"/.env", "/assets/../.build-hash",
	} {
		w := get(t, h, http.MethodGet, path)
		require.Equal(t, http.StatusNotFound, w.Code, path)
		require.NotContains(t, w.Body.String(), `id="root"`, path)
	}
	w := get(t, h, http.MethodPost, "/activity")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
}

func TestGzipWhenAsked(t *testing.T) {
	t.Parallel()
	h := Handler(Options{FS: bundle})
	plain := get(t, h, http.MethodGet, "/assets/index-abc123.js")
	require.Empty(t, plain.Header().Get("Content-Encoding"))
	require.Equal(t, "Accept-Encoding", plain.Header().Get("Vary"))
	zipped := get(t, h, http.MethodGet, "/assets/index-abc123.js", "Accept-Encoding", "br, gzip")
	require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
	require.Less(t, zipped.Body.Len(), plain.Body.Len()/4)
	zr, err := gzip.NewReader(bytes.NewReader(zipped.Body.Bytes()))
	require.NoError(t, err)
	body, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, plain.Body.String(), string(body))
	require.NotEqual(t, plain.Header().Get("ETag"), zipped.Header().Get("ETag"), "each encoding has its own ETag")
	require.Empty(t, get(t, h, http.MethodGet, "/assets/index-abc123.js", "Accept-Encoding", "gzip;q=0").Header().Get("Content-Encoding"))
	// Small and already-compressed files go as they are.
	require.Empty(t, get(t, h, http.MethodGet, "/assets/logo-ff00.png", "Accept-Encoding", "gzip").Header().Get("Content-Encoding"))
}

func TestNotBuiltSaysHowToBuild(t *testing.T) {
	t.Parallel()
	h := Handler(Options{FS: fstest.MapFS{".keep": {}}})
	w := get(t, h, http.MethodGet, "/activity")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Body.String(), "scripts/web.sh build")
	require.Equal(t, http.StatusNotFound, get(t, h, http.MethodGet, "/assets/index.js").Code)
}

// governor dev serves the folder it builds into, so a rebuild shows on the next load.
func TestServesAFolderAsItChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := Handler(Options{Dir: dir})
	require.Equal(t, http.StatusServiceUnavailable, get(t, h, http.MethodGet, "/").Code)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>first</p>"), 0o644))
	require.Equal(t, "<p>first</p>", get(t, h, http.MethodGet, "/").Body.String())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>second</p>"), 0o644))
	require.Equal(t, "<p>second</p>", get(t, h, http.MethodGet, "/activity").Body.String())
}

// The embedded bundle is whatever scripts/web.sh built before compiling: either a real
// app whose page references only files it has, or the placeholder.
func TestEmbeddedBundleIsConsistent(t *testing.T) {
	t.Parallel()
	h := Handler(Options{})
	w := get(t, h, http.MethodGet, "/")
	if w.Code == http.StatusServiceUnavailable {
		require.Contains(t, w.Body.String(), "scripts/web.sh build")
		return
	}
	require.Equal(t, http.StatusOK, w.Code)
	page := w.Body.String()
	refs := 0
	for _, part := range strings.Split(page, `"/assets/`)[1:] {
		ref := "/assets/" + part[:strings.IndexByte(part, '"')]
		a := get(t, h, http.MethodGet, ref)
		require.Equal(t, http.StatusOK, a.Code, ref)
		require.Equal(t, "public, max-age=31536000, immutable", a.Header().Get("Cache-Control"), ref)
		refs++
	}
	require.Positive(t, refs, "the page loads the app's assets")
}
