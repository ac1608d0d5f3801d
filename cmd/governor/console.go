package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// consoleDir is where `governor dev` built the web console. The API serves it from there:
// the bundle embedded in this binary was compiled in before the build ran.
var consoleDir string

// buildConsole builds the web console when governor runs from a checkout of the
// repository (scripts/web.sh skips the work when web/ has not changed since the last
// build) and returns the folder it is in; "" outside a checkout, where the embedded bundle
// is all there is.
func buildConsole(ctx context.Context, logf func(string, ...any)) (string, error) {
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "web", "package.json")); err == nil {
			if _, err := os.Stat(filepath.Join(root, "scripts", "web.sh")); err == nil {
				break
			}
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", nil
		}
		root = parent
	}
	logf("building the web console: scripts/web.sh build (npm ci against web/package-lock.json, cached by its hash; vite build into console/dist; skipped when web/ is unchanged)")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "web.sh"), "build")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/web.sh build: %w", err)
	}
	return filepath.Join(root, "console", "dist"), nil
}
