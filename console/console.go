// Package console serves Governor's web console: the single-page app that web/ builds
// into dist/ (scripts/web.sh), embedded in the binary at compile time. dist/ holds only a
// placeholder in git, so the binary builds before the console does; it then serves a page
// saying how to build it.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var embedded embed.FS

// Options say where the bundle comes from.
type Options struct {
	// Dir serves the bundle from a folder at request time (`governor dev`, which builds it
	// while running) instead of the embedded one.
	Dir string
	// FS serves this file system (tests). Dir wins when both are set.
	FS fs.FS
}

// Handler serves the console: the bundle's files, and index.html for every other path
// that looks like a client route. Paths of the API's namespaces are never the app: an
// unknown RPC or a mistyped /metrics gets a 404, not a page.
func Handler(opts Options) http.Handler {
	files := opts.FS
	switch {
	case opts.Dir != "":
		files = os.DirFS(opts.Dir)
	case files == nil:
		sub, err := fs.Sub(embedded, "dist")
		if err != nil {
			panic(err) // the embed pattern guarantees the folder
		}
		files = sub
	}
	return &handler{files: files}
}

type handler struct {
	files fs.FS
	gz    sync.Map // etag -> gzipped body
}

// reserved are the path prefixes of everything the API serves; the console never answers
// them with its page.
var reserved = []string{"/governor.", "/grpc.", "/metrics", "/healthz", "/readyz", "/livez", "/debug/", "/api/"}

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	// The page is revalidated every time (ETag), so a new build shows on the next load.
	cacheRevalidate = "no-cache"
	// Inline styles come from React's style attributes; nothing else is inline.
	contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
		"frame-ancestors 'none'; form-action 'self'"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	for _, prefix := range reserved {
		if strings.HasPrefix(p, prefix) {
			http.NotFound(w, r)
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	for _, seg := range strings.Split(name, "/") {
		// Dotfiles are build bookkeeping (.keep, .build-hash), not the app.
		if strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	if name != "" && name != "index.html" {
		body, err := fs.ReadFile(h.files, name)
		if err == nil {
			cache := cacheRevalidate
			if strings.HasPrefix(name, "assets/") {
				// Vite names every file under assets/ by its content hash.
				cache = cacheImmutable
			}
			h.serve(w, r, name, body, cache)
			return
		}
		if !errors.Is(err, fs.ErrNotExist) {
			// A folder of the bundle is a client route like any other; anything else is
			// a broken bundle.
			if st, serr := fs.Stat(h.files, name); serr != nil || !st.IsDir() {
				http.Error(w, "reading the console bundle: "+err.Error(), http.StatusInternalServerError)
				return
			}
		} else if path.Ext(name) != "" {
			// A missing file, not a route: answering with the page would hand a script
			// tag HTML and hide the broken reference.
			http.NotFound(w, r)
			return
		}
	}
	index, err := fs.ReadFile(h.files, "index.html")
	if err != nil {
		notBuilt(w)
		return
	}
	pageHeaders(w)
	h.serve(w, r, "index.html", index, cacheRevalidate)
}

func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, name string, body []byte, cache string) {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(name))
	hdr.Set("Cache-Control", cache)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if compressible(name) && len(body) > 1024 {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			gz := h.gzipped(etag, body)
			hdr.Set("Content-Encoding", "gzip")
			hdr.Set("ETag", strings.TrimSuffix(etag, `"`)+`-gz"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(gz))
			return
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (h *handler) gzipped(etag string, body []byte) []byte {
	if v, ok := h.gz.Load(etag); ok {
		return v.([]byte)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	v, _ := h.gz.LoadOrStore(etag, buf.Bytes())
	return v.([]byte)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// Fixed types for what Vite emits, so the answer does not depend on the host's mime.types.
var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
	".webmanifest": "application/manifest+json",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := types[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".html", ".js", ".mjs", ".css", ".json", ".map", ".svg", ".txt", ".webmanifest":
		return true
	}
	return false
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Governor: console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The console is not built into this binary</h1>
<p>The API works (Connect, gRPC and gRPC-Web on this address). To get the web console, build
it and then the binary:</p>
<pre>scripts/web.sh build   # npm ci against web/package-lock.json, vite build into console/dist
go build ./cmd/governor</pre>
<p><code>make dev</code> (<code>governor dev</code>) does the first step by itself.</p>
</body></html>
`

func notBuilt(w http.ResponseWriter) {
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(notBuiltPage))
}
