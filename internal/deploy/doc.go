// Package deploy holds no code: only tests that check the deployment files at the
// repository root (Dockerfile, docker-compose.yml), since no Docker engine runs in CI.
package deploy
