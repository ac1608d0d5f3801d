// Package suitelint holds tests about the test suite itself, run with every other test:
// every RPC is called by some test, and no test asserts from a goroutine it spawned.
// It reads the repository's *_test.go files with go/ast; it has no code of its own.
package suitelint
