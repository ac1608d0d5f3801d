package suitelint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fatalMethods stop a test (runtime.Goexit): from any goroutine but the test's they stop
// nothing, and the test carries on or hangs.
var fatalMethods = map[string]bool{"Fatal": true, "Fatalf": true, "FailNow": true, "Skip": true, "Skipf": true, "SkipNow": true}

// asserts reports whether call is an assertion that must run in the test's goroutine:
// require.X or assert.X (testify's packages, under whatever name the file gives them), a
// fatal method of a test, or a call of one of the package's helpers that makes one.
func asserts(call *ast.CallExpr, testify map[string]bool, helpers map[string]bool) (string, bool) {
	switch fun := call.Fun.(type) {
	case *ast.SelectorExpr:
		if id, ok := fun.X.(*ast.Ident); ok && testify[id.Name] {
			return id.Name + "." + fun.Sel.Name, true
		}
		if fatalMethods[fun.Sel.Name] {
			return "." + fun.Sel.Name, true
		}
		if helpers[fun.Sel.Name] {
			return "." + fun.Sel.Name + " (asserts)", true
		}
	case *ast.Ident:
		if helpers[fun.Name] {
			return fun.Name + " (asserts)", true
		}
	}
	return "", false
}

// spawned returns the function literals a file runs outside the test's goroutine: the
// bodies of go statements, of X.Go(...) (sync.WaitGroup, errgroup), of http.HandlerFunc
// (server goroutines), and the conditions of testify's Eventually and Never (run on a
// goroutine of their own; EventuallyWithT is fine: it asserts on its CollectT).
func spawned(f *ast.File, testify map[string]bool) []*ast.FuncLit {
	var out []*ast.FuncLit
	lits := func(args ...ast.Expr) {
		for _, a := range args {
			if lit, ok := a.(*ast.FuncLit); ok {
				out = append(out, lit)
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			lits(n.Call.Fun)
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, _ := sel.X.(*ast.Ident)
			switch {
			case sel.Sel.Name == "Go":
				lits(n.Args...)
			case sel.Sel.Name == "HandlerFunc" && id != nil && id.Name == "http":
				lits(n.Args...)
			case (sel.Sel.Name == "Eventually" || sel.Sel.Name == "Never" || sel.Sel.Name == "Eventuallyf" || sel.Sel.Name == "Neverf") &&
				id != nil && testify[id.Name]:
				lits(n.Args...)
			}
		}
		return true
	})
	return out
}

// assertingHelpers names the functions and methods declared in a package's test files
// that assert, directly or through one another (by name: close enough within a package).
func assertingHelpers(files []*ast.File) map[string]bool {
	bodies := map[string][]*ast.BlockStmt{}
	testifyOf := map[*ast.BlockStmt]map[string]bool{}
	for _, f := range files {
		tf := testifyNames(f)
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil && !strings.HasPrefix(fd.Name.Name, "Test") {
				bodies[fd.Name.Name] = append(bodies[fd.Name.Name], fd.Body)
				testifyOf[fd.Body] = tf
			}
		}
	}
	helpers := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, bs := range bodies {
			if helpers[name] {
				continue
			}
			for _, b := range bs {
				ast.Inspect(b, func(n ast.Node) bool {
					if call, ok := n.(*ast.CallExpr); ok {
						if _, yes := asserts(call, testifyOf[b], helpers); yes {
							helpers[name] = true
						}
					}
					return !helpers[name]
				})
			}
			changed = changed || helpers[name]
		}
	}
	return helpers
}

func testifyNames(f *ast.File) map[string]bool {
	out := map[string]bool{}
	for name, path := range importNames(f) {
		if path == "github.com/stretchr/testify/require" || path == "github.com/stretchr/testify/assert" {
			out[name] = true
		}
	}
	return out
}

// goroutineAsserts lists, as "file:line: what", the assertions made inside function
// literals that run outside the test's goroutine, in one package's test files.
func goroutineAsserts(fset *token.FileSet, files []*ast.File, names []string) []string {
	helpers := assertingHelpers(files)
	var out []string
	for i, f := range files {
		testify := testifyNames(f)
		for _, lit := range spawned(f, testify) {
			ast.Inspect(lit.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if what, yes := asserts(call, testify, helpers); yes {
						out = append(out, fmt.Sprintf("%s:%d: %s", names[i], fset.Position(call.Pos()).Line, what))
					}
				}
				return true
			})
		}
	}
	return out
}

// No test asserts from a goroutine it spawned: such a failure cannot stop the test (or,
// in testify's Eventually, leaves the condition's goroutine dead and the wait running
// out). Goroutines collect errors; the test goroutine asserts them.
func TestNoAssertionsInSpawnedGoroutines(t *testing.T) {
	t.Parallel()
	byDir := map[string][]testFile{}
	for _, tf := range testFiles(t) {
		dir := filepath.Dir(tf.path)
		byDir[dir] = append(byDir[dir], tf)
	}
	var found []string
	for _, tfs := range byDir {
		// One file set per package, so positions resolve in every file.
		fset := token.NewFileSet()
		var files []*ast.File
		var names []string
		for _, tf := range tfs {
			f, err := parser.ParseFile(fset, filepath.Join(repoRoot(t), tf.path), nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			files, names = append(files, f), append(names, tf.path)
		}
		found = append(found, goroutineAsserts(fset, files, names)...)
	}
	sort.Strings(found)
	require.Empty(t, found, "assertions in spawned goroutines (collect errors and assert in the test goroutine):\n  %s", strings.Join(found, "\n  "))
}

// The checker finds assertions in each kind of spawned function, directly and through
// helpers, and leaves the test goroutine's alone.
func TestGoroutineAssertChecker(t *testing.T) {
	t.Parallel()
	const src = `package x

import (
	"net/http"
	"sync"
	"testing"

	must "github.com/stretchr/testify/require"
	"github.com/stretchr/testify/assert"
)

func helper(t *testing.T)  { must.True(t, true) }
func indirect(t *testing.T) { helper(t) }
func harmless(t *testing.T) { t.Helper() }

func TestX(t *testing.T) {
	must.NoError(t, nil) // the test's goroutine: fine
	var wg sync.WaitGroup
	wg.Go(func() { must.NoError(t, nil) })
	go func() { t.Fatal("x") }()
	go func() { indirect(t) }()
	go func() { harmless(t); t.Errorf("reported, not fatal") }()
	_ = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { assert.Equal(t, 1, 1) })
	must.Eventually(t, func() bool { must.NoError(t, nil); return true }, 0, 0)
	must.EventuallyWithT(t, func(c *assert.CollectT) { must.NoError(c, nil) }, 0, 0)
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x_test.go", src, parser.SkipObjectResolution)
	require.NoError(t, err)
	got := goroutineAsserts(fset, []*ast.File{f}, []string{"x_test.go"})
	require.Equal(t, []string{
		"x_test.go:19: must.NoError",
		"x_test.go:20: .Fatal",
		"x_test.go:21: indirect (asserts)",
		"x_test.go:23: assert.Equal",
		"x_test.go:24: must.NoError",
	}, got)
}
