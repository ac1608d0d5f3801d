package suitelint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/governor-hq/governor/gen/governor/v1" // registers the API's descriptors
)

const connectImport = "connectrpc.com/connect"

// rpc is one method of one of the API's services.
type rpc struct {
	service, method string
	// clientStreams: the generated client method takes only a context (client and bidi
	// streams); otherwise it takes a context and a *connect.Request.
	clientStreams bool
}

// apiRPCs lists every method of every service of package governor.v1, from the
// generated descriptors.
func apiRPCs(t *testing.T) []rpc {
	t.Helper()
	var out []rpc
	protoregistry.GlobalFiles.RangeFilesByPackage("governor.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				out = append(out, rpc{service: string(sd.Name()), method: string(md.Name()), clientStreams: md.IsStreamingClient()})
			}
		}
		return true
	})
	require.NotEmpty(t, out, "no governor.v1 services registered")
	return out
}

// clientCall is a call that looks like one of a generated Connect client's methods.
type clientCall struct {
	method string
	args   int
}

// clientCalls finds the calls in a file that have the shape of a generated Connect
// client's method calls: X.Method(ctx, req) where req is a *connect.Request (made with
// connect.NewRequest right there, held in a variable assigned from it, or a parameter of
// that type), or X.Method(ctx) for client streams. Calls on packages (pkg.Func), calls in
// comments or strings and other methods of the same name (a query's Method(ctx, db))
// do not count.
func clientCalls(f *ast.File) []clientCall {
	imports := importNames(f)
	connectName := ""
	for name, path := range imports {
		if path == connectImport {
			connectName = name
		}
	}
	isNewRequest := func(e ast.Expr) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		fun := call.Fun
		if ix, ok := fun.(*ast.IndexExpr); ok { // connect.NewRequest[T](...)
			fun = ix.X
		}
		sel, ok := fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "NewRequest" {
			return false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return ok && connectName != "" && pkg.Name == connectName
	}
	isRequestType := func(e ast.Expr) bool {
		star, ok := e.(*ast.StarExpr)
		if !ok {
			return false
		}
		x := star.X
		if ix, ok := x.(*ast.IndexExpr); ok {
			x = ix.X
		}
		sel, ok := x.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Request" {
			return false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return ok && connectName != "" && pkg.Name == connectName
	}
	// Names that hold requests somewhere in the file (flow-insensitive: good enough for
	// tests, where a name like `req` means one thing).
	requestVars := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) == len(n.Rhs) {
				for i, r := range n.Rhs {
					if id, ok := n.Lhs[i].(*ast.Ident); ok && isNewRequest(r) {
						requestVars[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if (i < len(n.Values) && isNewRequest(n.Values[i])) || (n.Type != nil && isRequestType(n.Type)) {
					requestVars[name.Name] = true
				}
			}
		case *ast.Field:
			if isRequestType(n.Type) {
				for _, name := range n.Names {
					requestVars[name.Name] = true
				}
			}
		}
		return true
	})
	var out []clientCall
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok {
			if _, isPkg := imports[id.Name]; isPkg {
				return true
			}
		}
		switch len(call.Args) {
		case 1:
			out = append(out, clientCall{method: sel.Sel.Name, args: 1})
		case 2:
			req := call.Args[1]
			id, isIdent := req.(*ast.Ident)
			if isNewRequest(req) || (isIdent && requestVars[id.Name]) {
				out = append(out, clientCall{method: sel.Sel.Name, args: 2})
			}
		}
		return true
	})
	return out
}

// Every RPC of the API is called by at least one test, through the generated client. A
// new RPC without a test fails here, by name.
func TestEveryRPCIsCalledByATest(t *testing.T) {
	t.Parallel()
	called := map[string]map[int]bool{} // method name -> argument counts seen
	for _, tf := range testFiles(t) {
		for _, c := range clientCalls(tf.file) {
			if called[c.method] == nil {
				called[c.method] = map[int]bool{}
			}
			called[c.method][c.args] = true
		}
	}
	var missing []string
	rpcs := apiRPCs(t)
	for _, r := range rpcs {
		args := 2
		if r.clientStreams {
			args = 1
		}
		if !called[r.method][args] {
			missing = append(missing, r.service+"/"+r.method)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "RPCs no test calls through the generated client (add a test that calls and checks each):\n  %s",
		strings.Join(missing, "\n  "))
	t.Logf("%d RPCs, each called by a test", len(rpcs))
}

// The matcher finds client calls in the shapes tests use, and nothing else.
func TestClientCallMatcher(t *testing.T) {
	t.Parallel()
	const src = `package x

import (
	"context"

	c "connectrpc.com/connect"

	"github.com/governor-hq/governor/db/dbsqlc"
)

func f(ctx context.Context, client, q, stream any) {
	client.AdmitRun(ctx, c.NewRequest(&v1.AdmitRunRequest{}))
	req := c.NewRequest(&v1.GetRunRequest{})
	client.GetRun(ctx, req)
	var typed *c.Request[v1.ListRunsRequest]
	client.ListRuns(ctx, typed)
	client.Upload(ctx)
	q.ListAgents(ctx, pool)          // a query, not a client call
	dbsqlc.ListUsers(ctx, req)       // a package's function
	// client.ListLimits(ctx, c.NewRequest(nil))
	_ = "client.DeleteLimit(ctx, c.NewRequest(nil))"
	client.GetLimit(ctx, other, req) // three arguments
}

func g(ctx context.Context, r *c.Request[v1.WatchEventsRequest]) { client.WatchEvents(ctx, r) }
`
	f, err := parser.ParseFile(token.NewFileSet(), "x_test.go", src, parser.ParseComments)
	require.NoError(t, err)
	got := map[string]int{}
	for _, c := range clientCalls(f) {
		got[c.method] = c.args
	}
	require.Equal(t, map[string]int{"AdmitRun": 2, "GetRun": 2, "ListRuns": 2, "WatchEvents": 2, "Upload": 1}, got)
}
